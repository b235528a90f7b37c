-- Runner sessions, the agent-action queue and its append-only audit log.
-- People (authenticated) see their organizations' rows; a runner (agent_runner) sees
-- only its own agent's; the heartbeat cron works as service_role.

create table public.agent_sessions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  runner_token_id uuid,
  socket_id text not null default '' check (length(socket_id) <= 200),
  status text not null default 'online' check (status in ('online', 'offline', 'busy')),
  last_heartbeat timestamptz not null default now(),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  ended_at timestamptz,
  unique (id, agent_id),
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade,
  -- A session runs on one of its own agent's tokens.
  foreign key (runner_token_id, agent_id)
    references public.agent_runner_tokens (id, agent_id) on delete set null (runner_token_id)
);
create index agent_sessions_organization_id_idx on public.agent_sessions (organization_id);
create index agent_sessions_agent_id_idx on public.agent_sessions (agent_id, created_at, id);
-- The reaper reads only sessions that are still live: its work follows what is stale.
create index agent_sessions_live_heartbeat_idx on public.agent_sessions (last_heartbeat)
  where status <> 'offline';

create table public.agent_actions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  status text not null default 'pending' check (status in (
    'pending', 'approved', 'rejected', 'expired', 'cancelled', 'claimed', 'succeeded', 'failed'
  )),
  -- {tool, args}: immutable from insert on (trigger below), hashed as canonical JSON.
  payload jsonb not null check (
    jsonb_typeof(payload) = 'object'
    and jsonb_typeof(payload -> 'tool') = 'string'
    and jsonb_typeof(coalesce(payload -> 'args', '{}'::jsonb)) = 'object'
  ),
  payload_sha256 text not null check (payload_sha256 ~ '^[0-9a-f]{64}$'),
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  source text not null default 'user' check (source in ('user', 'brain', 'workflow')),
  proposed_by uuid references auth.users (id) on delete set null default auth.uid(),
  expires_at timestamptz not null,
  decided_by uuid references auth.users (id) on delete set null,
  decided_at timestamptz,
  decision_reason text check (length(decision_reason) <= 2000),
  approval_signature text,
  approval_expires_at timestamptz,
  session_id uuid,
  lease_expires_at timestamptz,
  fencing_token bigint not null default 0,
  attempt integer not null default 0 check (attempt >= 0),
  max_attempts integer not null default 3 check (max_attempts between 1 and 100),
  output jsonb,
  finished_at timestamptz,
  workflow_run_id uuid,
  workflow_node_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id),
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade,
  -- Only a session of the action's own agent can hold its lease.
  foreign key (session_id, agent_id)
    references public.agent_sessions (id, agent_id) on delete set null (session_id),
  constraint agent_actions_claimed_has_lease check (
    status <> 'claimed' or (lease_expires_at is not null and session_id is not null)
  )
);
create unique index agent_actions_idempotency_key on public.agent_actions (agent_id, idempotency_key)
  where idempotency_key is not null;
create index agent_actions_organization_id_idx on public.agent_actions (organization_id, created_at, id);
create index agent_actions_agent_id_idx on public.agent_actions (agent_id, created_at, id);
-- The runner's claim queue, the lease reaper and the TTL reaper each read one partial index.
create index agent_actions_approved_queue_idx on public.agent_actions (agent_id, created_at)
  where status = 'approved';
create index agent_actions_claimed_lease_idx on public.agent_actions (lease_expires_at)
  where status = 'claimed';
create index agent_actions_pending_ttl_idx on public.agent_actions (expires_at)
  where status = 'pending';

create function private.refuse_payload_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if new.payload is distinct from old.payload
     or new.payload_sha256 is distinct from old.payload_sha256 then
    raise exception 'the payload of action % is immutable', old.id
      using errcode = '42501', hint = 'propose a new action instead';
  end if;
  return new;
end
$$;
revoke all on function private.refuse_payload_change() from public;
create trigger agent_actions_payload_immutable before update on public.agent_actions
  for each row execute function private.refuse_payload_change();

create table public.agent_action_events (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  action_id uuid not null,
  actor_id uuid,
  actor_role text not null check (actor_role in ('authenticated', 'agent_runner', 'service_role')),
  from_status text,
  to_status text not null,
  detail jsonb not null default '{}' check (jsonb_typeof(detail) = 'object'),
  created_at timestamptz not null default now(),
  -- Each row carries the hash of the previous row of the same action: a hash chain.
  prev_hash text check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text not null check (hash ~ '^[0-9a-f]{64}$'),
  foreign key (action_id, organization_id)
    references public.agent_actions (id, organization_id) on delete cascade
);
create index agent_action_events_organization_id_idx on public.agent_action_events (organization_id);
create index agent_action_events_action_id_idx on public.agent_action_events (action_id, id);

-- Append-only for every role, the service role and the owner included (unless the
-- action itself is being deleted, with its agent, project or organization, which
-- cascades to its events).
create function private.refuse_event_change() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if tg_op = 'DELETE'
     and not exists (select 1 from public.agent_actions a where a.id = old.action_id)
  then
    return old;
  end if;
  raise exception 'agent_action_events is append-only'
    using errcode = '42501';
end
$$;
revoke all on function private.refuse_event_change() from public;
create trigger agent_action_events_append_only before update or delete on public.agent_action_events
  for each row execute function private.refuse_event_change();
create trigger agent_action_events_no_truncate before truncate on public.agent_action_events
  for each statement execute function private.refuse_event_change();

create trigger agent_sessions_set_updated_at before update on public.agent_sessions
  for each row execute function private.set_updated_at();
create trigger agent_actions_set_updated_at before update on public.agent_actions
  for each row execute function private.set_updated_at();

alter table public.agent_sessions enable row level security;
alter table public.agent_sessions force row level security;
alter table public.agent_actions enable row level security;
alter table public.agent_actions force row level security;
alter table public.agent_action_events enable row level security;
alter table public.agent_action_events force row level security;

grant select on public.agent_sessions, public.agent_actions, public.agent_action_events to anon;
grant select, delete on public.agent_sessions to authenticated;
grant select, insert, update on public.agent_actions to authenticated;
grant select, insert on public.agent_action_events to authenticated;
grant select, insert, update on public.agent_sessions to agent_runner;
grant select, update on public.agent_actions to agent_runner;
grant select, insert on public.agent_action_events to agent_runner;
grant select, insert, update, delete on public.agent_sessions, public.agent_actions to service_role;
grant select, insert on public.agent_action_events to service_role;

-- agent_sessions: runners write their own; people look and may remove dead ones.
create policy "Members can view runner sessions"
  on public.agent_sessions for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Admins can delete runner sessions"
  on public.agent_sessions for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Runners can view their agent's sessions"
  on public.agent_sessions for select to agent_runner
  using (agent_id = (select private.runner_agent_id()));
create policy "Runners can register sessions for their agent"
  on public.agent_sessions for insert to agent_runner
  with check (agent_id = (select private.runner_agent_id()));
create policy "Runners can update their agent's sessions"
  on public.agent_sessions for update to agent_runner
  using (agent_id = (select private.runner_agent_id()))
  with check (agent_id = (select private.runner_agent_id()));
create policy "Server jobs can manage runner sessions"
  on public.agent_sessions for all to service_role
  using (true) with check (true);

-- agent_actions: members propose and decide; viewers only look; nobody deletes the log.
create policy "Members can view actions"
  on public.agent_actions for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can propose actions"
  on public.agent_actions for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can decide actions"
  on public.agent_actions for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Runners can view their agent's actions"
  on public.agent_actions for select to agent_runner
  using (agent_id = (select private.runner_agent_id()));
create policy "Runners can claim and report their agent's actions"
  on public.agent_actions for update to agent_runner
  using (agent_id = (select private.runner_agent_id()))
  with check (agent_id = (select private.runner_agent_id()));
create policy "Server jobs can manage actions"
  on public.agent_actions for all to service_role
  using (true) with check (true);

-- agent_action_events
create policy "Members can view the audit log"
  on public.agent_action_events for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can append to the audit log"
  on public.agent_action_events for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Runners can view their agent's audit log"
  on public.agent_action_events for select to agent_runner
  using (exists (
    select 1 from public.agent_actions a
    where a.id = action_id and a.agent_id = (select private.runner_agent_id())
  ));
create policy "Runners can append to their agent's audit log"
  on public.agent_action_events for insert to agent_runner
  with check (exists (
    select 1 from public.agent_actions a
    where a.id = action_id and a.agent_id = (select private.runner_agent_id())
  ));
create policy "Server jobs can read the audit log"
  on public.agent_action_events for select to service_role
  using (true);
create policy "Server jobs can append to the audit log"
  on public.agent_action_events for insert to service_role
  with check (true);
