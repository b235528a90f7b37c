-- The action audit log becomes trigger-written and hash-chained, and runner tokens can be
-- authenticated without a service-role connection.
--
-- Every status transition of an agent action (and its proposal) appends one row to
-- agent_action_events, written by a trigger on agent_actions in the same statement, so
-- the log cannot miss a transition and no caller can write an event of their own. Each
-- row carries the hash of the previous row of the same action; `agentplane audit
-- verify` recomputes the chains.

-- The hash of one event: SHA-256 over its fields in a fixed layout. `created_at` enters
-- as integer microseconds since the epoch and `detail` as jsonb's text form, which
-- `agentplane audit verify` reproduces independently.
create function private.action_event_hash(
  prev_hash text,
  action_id uuid,
  from_status text,
  to_status text,
  actor_id uuid,
  actor_role text,
  created_at timestamptz,
  detail jsonb
) returns text
  language sql immutable parallel safe
  set search_path = ''
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

create function private.record_action_event() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  previous text;
  at timestamptz := clock_timestamp();
  role text := coalesce(nullif(auth.role(), ''), 'service_role');
  detail jsonb;
begin
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  if role not in ('authenticated', 'agent_runner', 'service_role') then
    role := 'service_role';
  end if;
  detail := jsonb_strip_nulls(jsonb_build_object(
    'payload_sha256', case when tg_op = 'INSERT' then new.payload_sha256 end,
    'source', case when tg_op = 'INSERT' then new.source end,
    'reason', case when new.status in ('approved', 'rejected', 'cancelled')
                   then new.decision_reason end,
    'session_id', new.session_id,
    'fencing_token', case when new.status in ('claimed', 'succeeded', 'failed')
                          then new.fencing_token end,
    'attempt', new.attempt
  ));
  -- Transitions of one action are serialised by its row lock, so "the latest row" is
  -- well defined here.
  select e.hash into previous
    from public.agent_action_events e
   where e.action_id = new.id
   order by e.id desc
   limit 1;
  insert into public.agent_action_events
    (organization_id, action_id, actor_id, actor_role, from_status, to_status, detail,
     created_at, prev_hash, hash)
  values
    (new.organization_id, new.id, auth.uid(), role,
     case when tg_op = 'UPDATE' then old.status end, new.status, detail, at, previous,
     private.action_event_hash(previous, new.id,
       case when tg_op = 'UPDATE' then old.status end, new.status, auth.uid(), role, at,
       detail));
  return null;
end
$$;
revoke all on function private.action_event_hash(text, uuid, text, text, uuid, text, timestamptz, jsonb)
  from public;
revoke all on function private.record_action_event() from public;
grant execute on function private.action_event_hash(text, uuid, text, text, uuid, text, timestamptz, jsonb)
  to service_role;

create trigger agent_actions_record_event
  after insert or update of status on public.agent_actions
  for each row execute function private.record_action_event();

-- Nobody appends events directly any more: the trigger is the only writer.
drop policy "Members can append to the audit log" on public.agent_action_events;
drop policy "Runners can append to their agent's audit log" on public.agent_action_events;
drop policy "Server jobs can append to the audit log" on public.agent_action_events;
revoke insert on public.agent_action_events from authenticated, agent_runner, service_role;

-- An approved or claimed action always carries the approval's signature: runners refuse
-- anything unsigned, and no code path may approve without signing.
alter table public.agent_actions
  add constraint agent_actions_approval_signed
  check (status not in ('approved', 'claimed') or approval_signature is not null);

-- Runner tokens: the bearer's SHA-256 maps to its agent, checked before any runner
-- transaction starts. Callable by anon (a runner has no user identity), returns only the
-- ids of a live token and records its use at most once a minute.
create function private.authenticate_runner(token_hash text)
  returns table (token_id uuid, agent_id uuid, organization_id uuid)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  return query
    update public.agent_runner_tokens t
       set last_used_at = now()
     where t.token_hash = authenticate_runner.token_hash
       and t.revoked_at is null
       and (t.expires_at is null or t.expires_at > now())
       and (t.last_used_at is null or t.last_used_at < now() - interval '1 minute')
    returning t.id, t.agent_id, t.organization_id;
  if not found then
    return query
      select t.id, t.agent_id, t.organization_id
        from public.agent_runner_tokens t
       where t.token_hash = authenticate_runner.token_hash
         and t.revoked_at is null
         and (t.expires_at is null or t.expires_at > now());
  end if;
end
$$;
revoke all on function private.authenticate_runner(text) from public;
grant usage on schema private to anon;
grant execute on function private.authenticate_runner(text) to anon;
