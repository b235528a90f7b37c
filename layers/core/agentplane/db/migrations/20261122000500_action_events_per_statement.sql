-- The audit log is written once per statement instead of once per row.
--
-- A claim of 50 actions, or a batch of 50 results, used to run the PL/pgSQL event
-- function 50 times (each with its own look-up of the previous hash and its own
-- INSERT). Statement-level triggers with transition tables write the same rows with one
-- INSERT ... SELECT: the same fields, the same hash over them (private.action_event_hash),
-- the same chain. Every row of one statement gets the statement's clock_timestamp().
--
-- Transition tables cannot be combined with a column list (`update of status`), so the
-- UPDATE trigger fires for every UPDATE and keeps only the rows whose status changed.

-- The event hash, unchanged, made inlinable: a SQL function with a SET clause is run
-- through the function executor on every call, one without is expanded into the
-- calling query. It names only pg_catalog functions, which are found before any other
-- schema whatever the search_path, and it is STABLE because concat_ws and the cast of
-- a timestamptz are (its result still depends on its arguments alone).
create or replace function private.action_event_hash(
  prev_hash text,
  action_id uuid,
  from_status text,
  to_status text,
  actor_id uuid,
  actor_role text,
  created_at timestamptz,
  detail jsonb
) returns text
  language sql stable parallel safe
  as $$
    select encode(sha256(convert_to(concat_ws('|',
      coalesce(prev_hash, ''),
      action_id::text,
      coalesce(from_status, ''),
      to_status,
      coalesce(actor_id::text, ''),
      actor_role,
      (extract(epoch from created_at) * 1000000)::bigint::text,
      detail::text
    ), 'UTF8')), 'hex')
  $$;

-- An event's detail: what the transition to the row's status is about (a proposal
-- also records its payload hash and source). Inlined into the INSERT ... SELECT.
create function private.action_event_detail(n public.agent_actions, proposal boolean)
  returns jsonb
  language sql stable parallel safe
  as $$
    select jsonb_strip_nulls(jsonb_build_object(
      'payload_sha256', case when proposal then n.payload_sha256 end,
      'source', case when proposal then n.source end,
      'reason', case when n.status in ('approved', 'rejected', 'cancelled')
                     then n.decision_reason end,
      'session_id', n.session_id,
      'fencing_token', case when n.status in ('claimed', 'succeeded', 'failed')
                            then n.fencing_token end,
      'attempt', n.attempt))
  $$;
revoke all on function private.action_event_detail(public.agent_actions, boolean) from public;

create function private.record_action_events_inserted() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  at timestamptz := clock_timestamp();
  actor uuid := auth.uid();
  role text := coalesce(nullif(auth.role(), ''), 'service_role');
begin
  if role not in ('authenticated', 'agent_runner', 'service_role') then
    role := 'service_role';
  end if;
  insert into public.agent_action_events
    (organization_id, action_id, actor_id, actor_role, from_status, to_status, detail,
     created_at, prev_hash, hash)
  select n.organization_id, n.id, actor, role, null, n.status, d.detail, at, null,
         private.action_event_hash(null, n.id, null, n.status, actor, role, at, d.detail)
    from inserted n
   cross join lateral (select private.action_event_detail(n, true) as detail) d
   order by n.id;
  return null;
end
$$;

create function private.record_action_events_updated() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  at timestamptz := clock_timestamp();
  actor uuid := auth.uid();
  role text := coalesce(nullif(auth.role(), ''), 'service_role');
begin
  if role not in ('authenticated', 'agent_runner', 'service_role') then
    role := 'service_role';
  end if;
  -- Transitions of one action are serialised by its row lock, and one statement
  -- updates a row at most once, so "the latest row" of each chain is well defined.
  insert into public.agent_action_events
    (organization_id, action_id, actor_id, actor_role, from_status, to_status, detail,
     created_at, prev_hash, hash)
  select n.organization_id, n.id, actor, role, o.status, n.status, d.detail, at, p.hash,
         private.action_event_hash(p.hash, n.id, o.status, n.status, actor, role, at,
                                   d.detail)
    from updated n
    join previous o on o.id = n.id
   cross join lateral (select private.action_event_detail(n, false) as detail) d
    left join lateral (
      select e.hash
        from public.agent_action_events e
       where e.action_id = n.id
       order by e.id desc
       limit 1
    ) p on true
   where n.status is distinct from o.status
   order by n.id;
  return null;
end
$$;
revoke all on function private.record_action_events_inserted() from public;
revoke all on function private.record_action_events_updated() from public;

drop trigger agent_actions_record_event on public.agent_actions;
drop function private.record_action_event();

create trigger agent_actions_record_events_inserted
  after insert on public.agent_actions
  referencing new table as inserted
  for each statement execute function private.record_action_events_inserted();
create trigger agent_actions_record_events_updated
  after update on public.agent_actions
  referencing old table as previous new table as updated
  for each statement execute function private.record_action_events_updated();
