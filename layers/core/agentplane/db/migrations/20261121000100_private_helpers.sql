-- Helpers that policies and triggers call. They live in a schema the API never exposes;
-- the security definer ones pin search_path to '' and name every object in full.

create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role, agent_runner;

-- Keeps updated_at honest on every table that has one.
create function private.set_updated_at() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- Organization roles are ordered: a policy asks for "at least" a role.
create function private.role_rank(role text) returns integer
  language sql immutable parallel safe
  set search_path = ''
  as $$
    select case role
      when 'viewer' then 1
      when 'member' then 2
      when 'admin' then 3
      when 'owner' then 4
      else 0
    end
  $$;

-- The caller's runner identity: runner tokens map to claims
-- {role: agent_runner, agent_id, session_id}; policies `to agent_runner` read them here.
create function private.runner_agent_id() returns uuid
  language sql stable
  set search_path = ''
  as $$
    select nullif(auth.jwt() ->> 'agent_id', '')::uuid
  $$;

-- A user seen for the first time with a valid token gets an auth.users row (on vanilla
-- PostgreSQL; on Supabase the row already exists). Callers get no write access to
-- auth.users: this inserts exactly the caller's own id and email, nothing else.
create function private.ensure_user() returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  uid uuid := auth.uid();
begin
  if uid is null then
    raise exception 'no subject in request.jwt.claims' using errcode = '28000';
  end if;
  if not exists (select 1 from auth.users u where u.id = uid) then
    insert into auth.users (id, email)
    values (uid, nullif(auth.jwt() ->> 'email', ''))
    on conflict (id) do nothing;
  end if;
end
$$;

-- Foreign keys are checked without RLS, so a reference to a row of another scope (an
-- agent from a conversation, a connection from an agent config, a template from a skill)
-- could point at a row the caller may not see. This trigger, with the caller's rights,
-- requires the referenced row to be visible when the reference is set or changed.
-- Arguments: the referencing column, the referenced table.
create function private.require_visible_reference() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  column_name text := tg_argv[0];
  target regclass := tg_argv[1]::regclass;
  new_ref uuid := (to_jsonb(new) ->> column_name)::uuid;
  old_ref uuid;
  visible boolean;
begin
  if tg_op = 'UPDATE' then
    old_ref := (to_jsonb(old) ->> column_name)::uuid;
  end if;
  if new_ref is null or new_ref is not distinct from old_ref then
    return new;
  end if;
  execute format('select exists (select 1 from %s where id = $1)', target)
    into visible using new_ref;
  if not visible then
    raise exception '%.% refers to % %, which the caller may not see',
      tg_table_name, column_name, target, new_ref
      using errcode = '42501';
  end if;
  return new;
end
$$;

revoke all on all functions in schema private from public;
grant execute on function private.set_updated_at() to authenticated, service_role, agent_runner;
grant execute on function private.role_rank(text) to authenticated, service_role, agent_runner;
grant execute on function private.runner_agent_id() to agent_runner, service_role;
grant execute on function private.ensure_user() to authenticated;
grant execute on function private.require_visible_reference()
  to authenticated, service_role, agent_runner;
