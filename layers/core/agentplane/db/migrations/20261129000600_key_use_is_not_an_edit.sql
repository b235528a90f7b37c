-- Using a key is not editing it: `updated_at` of a vault key follows its stored fields,
-- not `last_used_at`, which every decrypt stamps. Before this, a key's updated_at moved
-- on every turn that used it, and `GET /keys` could not tell when it was last changed.
--
-- The trigger now names the columns whose change is an edit (all but the timestamps and
-- the id). A column added to user_keys later must be added here if changing it is an
-- edit.

drop trigger user_keys_set_updated_at on public.user_keys;
create trigger user_keys_set_updated_at
  before update of organization_id, user_id, provider, label, ciphertext, nonce,
    wrapped_data_key, kek_id, last4
  on public.user_keys
  for each row execute function private.set_updated_at();
