-- Workflow runs on Step Functions: the pinned definition, approval gates in the action
-- queue, the task tokens of waiting nodes, and the transactional outbox of callbacks.
--
-- A waiting node (an `action` or `approval` node) writes its pending action and its task
-- token (workflow_waits) in one transaction. When that action reaches a final state,
-- the trigger below writes an outbox row in the same transaction as the decision or
-- result, whoever commits it (a person, a runner, the reaper); the workflows function's
-- dispatcher delivers it (SendTaskSuccess / SendTaskFailure) and records the outcome.
-- Starting and stopping executions go through the same outbox, so a run whose
-- StartExecution failed is retried instead of being left pending.

-- A run keeps a copy of the definition it started with: editing the workflow never
-- changes a run in flight. `executions` counts the executions the run has had (the
-- next one's name is `<run id>-<n>`); `output` is what its last nodes returned.
alter table public.workflow_runs
  add column definition jsonb not null default '{"nodes": [], "edges": []}' check (
    jsonb_typeof(definition -> 'nodes') = 'array'
    and jsonb_typeof(definition -> 'edges') = 'array'
  ),
  add column executions integer not null default 0 check (executions >= 0),
  add column output jsonb;

-- An approval node is a gate in the same queue and inbox as actions, decided by the
-- same routes, signed and audited like any decision; no runner ever claims it.
alter table public.agent_actions
  add column kind text not null default 'tool' check (kind in ('tool', 'approval')),
  add constraint agent_actions_gate_tool check (
    (kind = 'approval') = (payload ->> 'tool' = 'workflow.approval')
  );

create table public.workflow_waits (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  run_id uuid not null,
  node_id text not null check (length(node_id) between 1 and 64),
  attempt integer not null check (attempt >= 1),
  action_id uuid not null unique,
  kind text not null check (kind in ('action', 'approval')),
  -- The Step Functions task token: the server's alone, never shown to anybody.
  task_token text not null check (length(task_token) between 1 and 2048),
  execution_arn text,
  heartbeat_at timestamptz,
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id),
  foreign key (run_id, organization_id)
    references public.workflow_runs (id, organization_id) on delete cascade,
  -- (agent_actions is unique by id alone; a wait is the server's, written with its
  -- action's organization.)
  foreign key (action_id) references public.agent_actions (id) on delete cascade
);
create index workflow_waits_organization_id_idx on public.workflow_waits (organization_id);
create index workflow_waits_run_id_idx on public.workflow_waits (run_id);
-- The dispatcher's heartbeats read only the waits that are still open.
create index workflow_waits_open_idx on public.workflow_waits (heartbeat_at nulls first)
  where resolved_at is null;

create table public.workflow_outbox (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  run_id uuid not null,
  kind text not null check (kind in ('start', 'stop', 'success', 'failure')),
  wait_id uuid,
  node_id text,
  action_id uuid,
  -- start: {execution: n} (its name and input come from the run); stop: {cause};
  -- success/failure: what the action became ({action_status, output, reason, ...}).
  body jsonb not null default '{}' check (jsonb_typeof(body) = 'object'),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  delivered_at timestamptz,
  outcome text check (outcome in (
    'delivered', 'task_does_not_exist', 'task_timed_out', 'invalid_token',
    'execution_does_not_exist', 'execution_already_exists', 'gave_up'
  )),
  last_error text check (length(last_error) <= 2000),
  created_at timestamptz not null default now(),
  foreign key (run_id, organization_id)
    references public.workflow_runs (id, organization_id) on delete cascade,
  foreign key (wait_id, organization_id)
    references public.workflow_waits (id, organization_id) on delete cascade,
  constraint workflow_outbox_delivered_has_outcome check (
    (delivered_at is null) = (outcome is null)
  ),
  constraint workflow_outbox_start_names_an_execution check (
    kind <> 'start' or jsonb_typeof(body -> 'execution') = 'number'
  )
);
create index workflow_outbox_organization_id_idx on public.workflow_outbox (organization_id);
create index workflow_outbox_run_id_idx on public.workflow_outbox (run_id, id);
-- The dispatcher's queue: only what is still to deliver, soonest first.
create index workflow_outbox_due_idx on public.workflow_outbox (next_attempt_at, id)
  where delivered_at is null;

create trigger workflow_waits_set_updated_at before update on public.workflow_waits
  for each row execute function private.set_updated_at();

alter table public.workflow_waits enable row level security;
alter table public.workflow_waits force row level security;
alter table public.workflow_outbox enable row level security;
alter table public.workflow_outbox force row level security;

-- Task tokens are for the server only: no grant and no policy for people or runners.
grant select, insert, update, delete on public.workflow_waits to service_role;
create policy "Server jobs manage workflow waits"
  on public.workflow_waits for all to service_role
  using (true) with check (true);

-- People read a run's callbacks and their outcomes (never a token: that is in
-- workflow_waits); members write the start and stop rows of the runs they start,
-- resume and cancel.
grant select, insert on public.workflow_outbox to authenticated;
grant select, insert, update, delete on public.workflow_outbox to service_role;
create policy "Members can view workflow callbacks"
  on public.workflow_outbox for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can start and stop their organizations' runs"
  on public.workflow_outbox for insert to authenticated
  with check (
    organization_id = any ((select private.org_ids('member'))::uuid[])
    and kind in ('start', 'stop')
  );
create policy "Server jobs manage workflow callbacks"
  on public.workflow_outbox for all to service_role
  using (true) with check (true);

-- The callback of a waiting node, in the transaction that made its action final. An
-- approval gate is done when it is decided; an action when its runner's result is in
-- (or when it is rejected, expires or is cancelled). A cancelled run gets none: its
-- execution is being stopped.
create function private.enqueue_workflow_callback() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  w public.workflow_waits;
  succeeded boolean;
begin
  select * into w from public.workflow_waits
   where action_id = new.id and resolved_at is null
     for update;
  if not found then
    return null;
  end if;
  if w.kind = 'approval' then
    if new.status not in ('approved', 'rejected', 'expired', 'cancelled') then
      return null;
    end if;
    succeeded := new.status = 'approved';
  else
    if new.status not in ('succeeded', 'failed', 'rejected', 'expired', 'cancelled') then
      return null;
    end if;
    succeeded := new.status = 'succeeded';
  end if;
  update public.workflow_waits set resolved_at = now() where id = w.id;
  if exists (select from public.workflow_runs r where r.id = w.run_id and r.status = 'cancelled')
  then
    return null;
  end if;
  insert into public.workflow_outbox
    (organization_id, run_id, kind, wait_id, node_id, action_id, body)
  values (
    w.organization_id, w.run_id, case when succeeded then 'success' else 'failure' end,
    w.id, w.node_id, new.id,
    jsonb_strip_nulls(jsonb_build_object(
      'action_status', new.status,
      'output', new.output,
      'reason', new.decision_reason,
      'decided_by', new.decided_by,
      'decided_at', new.decided_at,
      'attempt', w.attempt))
  );
  return null;
end
$$;
revoke all on function private.enqueue_workflow_callback() from public;

create trigger agent_actions_workflow_callback
  after update of status on public.agent_actions
  for each row
  when (new.workflow_run_id is not null and new.status is distinct from old.status)
  execute function private.enqueue_workflow_callback();
