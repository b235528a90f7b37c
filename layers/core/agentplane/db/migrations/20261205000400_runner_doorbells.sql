-- Runner doorbells (DESIGN.md §4.2): when an action becomes claimable (approved, or a
-- lost lease requeued to approved), its agent's runners with an open socket are told,
-- after commit. The trigger below writes the outbox row in the deciding transaction and
-- NOTIFYs it (PostgreSQL delivers a NOTIFY only at commit): a dev server's listener
-- rings its own sockets; in AWS the actions function's kick, or the heartbeat cron,
-- delivers the outbox through API Gateway's management API.

-- When the session's socket was opened (null: none, or it was closed); `socket_id` is
-- then the connection id.
alter table public.agent_sessions add column socket_connected_at timestamptz;
-- Who to ring: the live sessions of an agent that hold a socket; and a socket's session,
-- by its connection id (an AWS ping or $disconnect names nothing else).
create index agent_sessions_socket_idx on public.agent_sessions (agent_id)
  where socket_connected_at is not null and status <> 'offline';
create index agent_sessions_socket_id_idx on public.agent_sessions (socket_id)
  where socket_connected_at is not null;

create table public.runner_doorbells (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  agent_id uuid not null,
  action_id uuid not null,
  created_at timestamptz not null default now(),
  delivered_at timestamptz,
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade
);
create index runner_doorbells_organization_id_idx on public.runner_doorbells (organization_id);
-- The AWS dispatcher's queue: only what is still to ring, oldest first.
create index runner_doorbells_due_idx on public.runner_doorbells (id)
  where delivered_at is null;

alter table public.runner_doorbells enable row level security;
alter table public.runner_doorbells force row level security;

-- The server's alone: no person or runner reads or writes a doorbell.
grant select, insert, update, delete on public.runner_doorbells to service_role;
create policy "Server jobs manage runner doorbells"
  on public.runner_doorbells for all to service_role
  using (true) with check (true);

create function private.ring_runner_doorbell() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  doorbell_id bigint;
begin
  insert into public.runner_doorbells (organization_id, agent_id, action_id)
  values (new.organization_id, new.agent_id, new.id)
  returning id into doorbell_id;
  perform pg_notify('agentplane_runner_doorbell', json_build_object(
    'id', doorbell_id, 'agent_id', new.agent_id, 'action_id', new.id)::text);
  return null;
end
$$;
revoke all on function private.ring_runner_doorbell() from public;

create trigger agent_actions_ring_doorbell_on_insert
  after insert on public.agent_actions
  for each row
  when (new.status = 'approved' and new.kind = 'tool')
  execute function private.ring_runner_doorbell();

create trigger agent_actions_ring_doorbell
  after update of status on public.agent_actions
  for each row
  when (new.status = 'approved' and new.kind = 'tool' and old.status is distinct from 'approved')
  execute function private.ring_runner_doorbell();
