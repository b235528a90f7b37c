-- Notifications: domain events in an outbox, published after commit (EventBridge in AWS,
-- a log line and an in-process bus locally), and organizations' webhooks that receive
-- them signed per the Standard Webhooks scheme, each delivery a row of its own.
--
-- An event is written in the transaction that made it true: every action transition is
-- a row of the audit log (agent_action_events), and the trigger below turns each into an
-- event (`action.proposed`, `action.approved`, ..., `action.failed`). Events that are no
-- status change (`action.escalated`) are written with private.emit_event. The events
-- dispatcher (agentplane/events/dispatcher.py) takes due events `for update skip locked`,
-- publishes them and stamps `published_at`; stamping it fans the event out into one
-- delivery per matching webhook of the event's own organization (a trigger, so no
-- caller can fan out across organizations), which the dispatcher then POSTs.

create table public.agent_events (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  -- Dotted lower-case names: `action.approved`.
  type text not null check (
    length(type) <= 100 and type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'
  ),
  data jsonb not null default '{}' check (jsonb_typeof(data) = 'object'),
  created_at timestamptz not null default now(),
  -- The publisher's bookkeeping (EventBridge may refuse or throttle).
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  published_at timestamptz,
  last_error text check (length(last_error) <= 2000),
  unique (id, organization_id)
);
create index agent_events_organization_id_idx on public.agent_events (organization_id, created_at);
-- The dispatcher's queue: only what is still to publish, soonest first.
create index agent_events_due_idx on public.agent_events (next_attempt_at, id)
  where published_at is null;

-- Whether a webhook's `events` list takes an event type: an exact type, `prefix.*`
-- (every type under the prefix) or `*`. starts_with, not LIKE: `_` is a LIKE wildcard.
create function private.event_matches(patterns text[], event_type text) returns boolean
  language sql immutable parallel safe
  set search_path = ''
  as $$
    select exists (
      select 1 from unnest(patterns) p
       where p = '*' or p = event_type
          or (p like '%.*' and starts_with(event_type, left(p, -1)))
    )
  $$;

-- Every entry of a webhook's `events` is a type or a pattern (agentplane/events/models.py
-- checks the same, naming the entry, before the database sees it).
create function private.event_patterns_valid(patterns text[]) returns boolean
  language sql immutable parallel safe
  set search_path = ''
  as $$
    select coalesce(bool_and(
      p is not null and length(p) <= 100
      and p ~ '^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$'
    ), false)
      from unnest(patterns) p
  $$;

create table public.webhooks (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  url text not null check (length(url) between 10 and 2000 and url ~ '^https?://[^\s]+$'),
  events text[] not null check (
    cardinality(events) between 1 and 50 and private.event_patterns_valid(events)
  ),
  description text not null default '' check (length(description) <= 500),
  -- The signing secret (`whsec_...`), envelope-encrypted the way the vault stores
  -- provider keys (agentplane/vault/crypto.py): AES-256-GCM under a data key wrapped by
  -- KMS (or the local keyring) with the context {organization_id, user_id = created_by}.
  -- Returned once, on creation; no role but the server's may read these columns.
  secret_ciphertext bytea not null,
  secret_nonce bytea not null,
  wrapped_data_key bytea not null,
  kek_id text not null check (length(kek_id) between 1 and 2048),
  created_by uuid not null default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id)
);
create index webhooks_organization_id_idx on public.webhooks (organization_id, created_at);

create table public.webhook_deliveries (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  webhook_id uuid not null,
  event_id uuid not null,
  event_type text not null,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_attempt_at timestamptz,
  last_status_code integer check (last_status_code between 100 and 599),
  last_error text check (length(last_error) <= 2000),
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  unique (webhook_id, event_id),
  -- A delivery, its webhook and its event are of one organization: the keys say so.
  foreign key (webhook_id, organization_id)
    references public.webhooks (id, organization_id) on delete cascade,
  foreign key (event_id, organization_id)
    references public.agent_events (id, organization_id) on delete cascade,
  constraint webhook_deliveries_delivered_when_delivered check (
    (status = 'delivered') = (delivered_at is not null)
  )
);
create index webhook_deliveries_organization_id_idx on public.webhook_deliveries (organization_id);
create index webhook_deliveries_event_id_idx on public.webhook_deliveries (event_id);
-- GET /webhooks/{id}/deliveries, newest first.
create index webhook_deliveries_webhook_idx on public.webhook_deliveries (webhook_id, created_at, id);
-- The dispatcher's queue of deliveries still to make.
create index webhook_deliveries_due_idx on public.webhook_deliveries (next_attempt_at, id)
  where status = 'pending';

create trigger webhooks_set_updated_at before update on public.webhooks
  for each row execute function private.set_updated_at();

alter table public.agent_events enable row level security;
alter table public.agent_events force row level security;
alter table public.webhooks enable row level security;
alter table public.webhooks force row level security;
alter table public.webhook_deliveries enable row level security;
alter table public.webhook_deliveries force row level security;

-- Events: people read their organizations' (what the audit log already shows them);
-- only triggers and the server write them.
grant select on public.agent_events to authenticated;
grant select, insert, update, delete on public.agent_events to service_role;
create policy "Members can view their organizations' events"
  on public.agent_events for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Server jobs publish events"
  on public.agent_events for all to service_role
  using (true) with check (true);

-- Webhooks: admins create and delete, members read. Column grants keep the secret's
-- columns from people: they may write them once (the insert) and never read them.
grant select (id, organization_id, url, events, description, created_by, created_at, updated_at)
  on public.webhooks to authenticated;
grant insert (id, organization_id, url, events, description,
              secret_ciphertext, secret_nonce, wrapped_data_key, kek_id)
  on public.webhooks to authenticated;
grant delete on public.webhooks to authenticated;
grant select, insert, update, delete on public.webhooks to service_role;
create policy "Members can view their organizations' webhooks"
  on public.webhooks for select to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Admins can create webhooks"
  on public.webhooks for insert to authenticated
  with check (
    organization_id = any ((select private.org_ids('admin'))::uuid[])
    and created_by = (select auth.uid())
  );
create policy "Admins can delete webhooks"
  on public.webhooks for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Server jobs read webhooks to sign deliveries"
  on public.webhooks for all to service_role
  using (true) with check (true);

-- Deliveries: the members who see a webhook see its deliveries; the server writes them.
grant select on public.webhook_deliveries to authenticated;
grant select, insert, update, delete on public.webhook_deliveries to service_role;
create policy "Members can view their organizations' webhook deliveries"
  on public.webhook_deliveries for select to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Server jobs deliver webhooks"
  on public.webhook_deliveries for all to service_role
  using (true) with check (true);

-- private.emit_event: write one event in the caller's transaction, for what is not a
-- status change of an action (`action.escalated`, written by the approval policy). It is
-- for the server and for other security definer functions (triggers), never for people:
-- only service_role may execute it. `type` must be a dotted lower-case name, `data` a JSON
-- object without secrets; it is published after commit like every other event.
-- Returns the event's id.
create function private.emit_event(organization_id uuid, type text, data jsonb)
  returns uuid
  language sql volatile security definer
  set search_path = ''
  as $$
    insert into public.agent_events (organization_id, type, data)
    values (emit_event.organization_id, emit_event.type, coalesce(emit_event.data, '{}'))
    returning id
  $$;
revoke all on function private.emit_event(uuid, text, jsonb) from public;
grant execute on function private.emit_event(uuid, text, jsonb) to service_role;

-- Each audit log row of a proposal, decision or result becomes an event, in the
-- statement that wrote it. The data names the action, its agent and tool, the
-- transition and who made it, and the audit row's detail less its fencing token (a
-- lease is the runner's business); never the payload's arguments or output.
create function private.emit_action_events() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  insert into public.agent_events (organization_id, type, data, created_at)
  select e.organization_id,
         'action.' || case when e.to_status = 'pending' then 'proposed' else e.to_status end,
         jsonb_strip_nulls(jsonb_build_object(
           'action_id', e.action_id,
           'agent_id', a.agent_id,
           'organization_id', e.organization_id,
           'tool', a.payload ->> 'tool',
           'payload_sha256', a.payload_sha256,
           'workflow_run_id', a.workflow_run_id,
           'from_status', e.from_status,
           'to_status', e.to_status,
           'actor_id', e.actor_id,
           'actor_role', e.actor_role,
           'detail', e.detail - 'fencing_token',
           'audit_event_id', e.id,
           'occurred_at', e.created_at)),
         e.created_at
    from inserted e
    join public.agent_actions a on a.id = e.action_id
   where (e.to_status = 'pending' and e.from_status is null)
      or e.to_status in ('approved', 'rejected', 'expired', 'cancelled', 'claimed',
                         'succeeded', 'failed')
   order by e.id;
  return null;
end
$$;
revoke all on function private.emit_action_events() from public;

create trigger agent_action_events_emit_events
  after insert on public.agent_action_events
  referencing new table as inserted
  for each statement execute function private.emit_action_events();

-- Publishing an event fans it out: one pending delivery per webhook of the event's own
-- organization whose `events` take its type (a webhook created later gets none of the
-- events published before it).
create function private.fan_out_event() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type)
  select new.organization_id, w.id, new.id, new.type
    from public.webhooks w
   where w.organization_id = new.organization_id
     and private.event_matches(w.events, new.type)
   order by w.id
  on conflict (webhook_id, event_id) do nothing;
  return null;
end
$$;
revoke all on function private.fan_out_event() from public;

create trigger agent_events_fan_out
  after update of published_at on public.agent_events
  for each row
  when (old.published_at is null and new.published_at is not null)
  execute function private.fan_out_event();
