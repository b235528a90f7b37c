-- The action state machine, enforced by the database for every caller, not only by the
-- API's conditional updates: people decide, runners claim and report, server jobs expire
-- and requeue. A direct UPDATE (PostgREST, psql) cannot take a shortcut.
--
--   pending  -> approved | rejected | cancelled        people (members and up)
--   approved -> cancelled                              people
--   approved -> claimed; claimed -> succeeded | failed | approved (release)   runners
--   pending | approved -> expired; claimed -> approved | failed (lost lease)  server jobs
--
-- Server jobs may also make every move above (the brain and workflows decide through
-- the service context).

create function private.check_action_transition() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  role text := coalesce(nullif(auth.role(), ''), 'service_role');
  edge text := old.status || '>' || new.status;
  allowed text[];
begin
  if new.status is not distinct from old.status then
    return new;
  end if;
  allowed := case role
    when 'authenticated' then
      array['pending>approved', 'pending>rejected', 'pending>cancelled', 'approved>cancelled']
    when 'agent_runner' then
      array['approved>claimed', 'claimed>succeeded', 'claimed>failed', 'claimed>approved']
    else
      array['pending>approved', 'pending>rejected', 'pending>cancelled', 'approved>cancelled',
            'approved>claimed', 'claimed>succeeded', 'claimed>failed', 'claimed>approved',
            'pending>expired', 'approved>expired']
  end;
  if not edge = any(allowed) then
    raise exception 'an action cannot go from % to % as %', old.status, new.status, role
      using errcode = '42501';
  end if;
  if role = 'authenticated' then
    -- A person's decision is recorded as their own, whatever the statement said.
    new.decided_by := auth.uid();
  end if;
  return new;
end
$$;
revoke all on function private.check_action_transition() from public;

create trigger agent_actions_transition
  before update of status on public.agent_actions
  for each row execute function private.check_action_transition();

-- Each role writes only the columns of its part of the loop.
revoke update on public.agent_actions from authenticated, agent_runner;
grant update (status, decided_by, decided_at, decision_reason, approval_expires_at,
              approval_signature, updated_at)
  on public.agent_actions to authenticated;
grant update (status, session_id, lease_expires_at, fencing_token, attempt, output,
              finished_at, updated_at)
  on public.agent_actions to agent_runner;
