-- The BYOK vault. A key belongs to one user inside one organization and is readable by
-- that user only, never by other members, admins or owners of the organization.
-- Envelope encryption: `ciphertext` (AES-256-GCM under a per-secret data key, `nonce`),
-- `wrapped_data_key` (the data key wrapped by KMS or the local master key `kek_id`).

create table public.user_keys (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  provider text not null check (provider in ('hermes', 'openrouter', 'nous', 'custom')),
  label text not null default '' check (length(label) <= 200),
  ciphertext bytea not null,
  nonce bytea not null check (octet_length(nonce) = 12),
  wrapped_data_key bytea not null,
  kek_id text not null check (length(kek_id) between 1 and 2048),
  last4 text not null check (length(last4) between 1 and 4),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_used_at timestamptz
);
create index user_keys_user_id_idx on public.user_keys (user_id, organization_id, provider);
create index user_keys_organization_id_idx on public.user_keys (organization_id);

create trigger user_keys_set_updated_at before update on public.user_keys
  for each row execute function private.set_updated_at();

alter table public.user_keys enable row level security;
alter table public.user_keys force row level security;
grant select on public.user_keys to anon;
grant select, insert, update, delete on public.user_keys to authenticated, service_role;

create policy "Users can view their own keys"
  on public.user_keys for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can store keys in organizations they belong to"
  on public.user_keys for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and organization_id = any ((select private.org_ids('viewer'))::uuid[])
  );
create policy "Users can update their own keys"
  on public.user_keys for update to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and organization_id = any ((select private.org_ids('viewer'))::uuid[])
  );
create policy "Users can delete their own keys"
  on public.user_keys for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can use keys for the work they do"
  on public.user_keys for all to service_role
  using (true) with check (true);
