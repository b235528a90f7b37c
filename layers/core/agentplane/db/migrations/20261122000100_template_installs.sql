-- Installing a template: the installer copies its bundle into their own skills and
-- memory nodes (as themselves, under RLS), and the template's install count goes up by
-- one. The count lives on the author's row, which the installer may not update, so a
-- security definer function does that one increment and nothing else, and only for a
-- template the caller can see (their own, or a public one). Otherwise it returns null,
-- which the API answers as 404, like a template that does not exist.
--
-- The count is the server's to keep: authenticated users may write only the columns an
-- author chooses, so nobody sets installs (or the timestamps) directly, not even the
-- author through a PostgREST client.

create function private.record_template_install(template_id uuid) returns integer
  language sql volatile security definer
  set search_path = ''
  as $$
    -- One conditional UPDATE, no read-then-write: its row lock queues concurrent
    -- installs, and each adds one to the committed count. The visibility test repeats
    -- the select policy of public.templates, which the function's owner bypasses.
    update public.templates t
       set installs = t.installs + 1
     where t.id = record_template_install.template_id
       and (t.is_public or t.user_id = (select auth.uid()))
    returning t.installs
  $$;
revoke all on function private.record_template_install(uuid) from public;
grant execute on function private.record_template_install(uuid) to authenticated;

-- Column privileges replace the table-wide ones of 20261121001100_templates.sql for
-- authenticated; service_role keeps them all.
revoke insert, update on public.templates from authenticated;
grant insert (id, user_id, name, description, is_public, bundle)
  on public.templates to authenticated;
grant update (name, description, is_public, bundle) on public.templates to authenticated;
