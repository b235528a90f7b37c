-- The helpers every policy calls become cheap to call, and an UPDATE that does not name
-- the payload no longer runs the payload guard.
--
-- A SQL-language function that cannot be inlined (security definer, or with a SET
-- clause) is parsed and planned again on every call. The policies call org_ids() and
-- runner_agent_id() once per statement as an InitPlan, so every statement a person or a
-- runner sends paid that planning (about 0.2 ms each, up to four per UPDATE with
-- RETURNING). PL/pgSQL keeps the plans of its queries for the life of the connection,
-- so the pooled connections plan each helper once.
--
-- role_rank() names no table and no schema-qualified object: without the SET clause it is
-- inlined into org_ids()'s query instead of being called twice per membership row.

create or replace function private.role_rank(role text) returns integer
  language sql immutable parallel safe
  as $$
    select case role
      when 'viewer' then 1
      when 'member' then 2
      when 'admin' then 3
      when 'owner' then 4
      else 0
    end
  $$;

create or replace function private.org_ids(min_role text) returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return (
    select coalesce(array_agg(m.organization_id), '{}'::uuid[])
      from public.organization_members m
     where m.user_id = auth.uid()
       and private.role_rank(m.role) >= private.role_rank(min_role)
  );
end
$$;

create or replace function private.runner_agent_id() returns uuid
  language plpgsql stable
  set search_path = ''
  as $$
begin
  return nullif(auth.jwt() ->> 'agent_id', '')::uuid;
end
$$;

-- The payload guard fires only when an UPDATE names payload or payload_sha256 (or a
-- BEFORE trigger changes them): a statement that names neither cannot change them, so
-- decisions, claims and results no longer run it once per row. A direct UPDATE of the
-- payload, by any role, still meets it.
drop trigger agent_actions_payload_immutable on public.agent_actions;
create trigger agent_actions_payload_immutable
  before update of payload, payload_sha256 on public.agent_actions
  for each row execute function private.refuse_payload_change();
