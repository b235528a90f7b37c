-- Workflow DAGs and their runs (organization-scoped). A run keeps every node's status,
-- output and attempts in `state`, so a failed run resumes where it stopped.

create table public.workflows (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text not null default '' check (length(description) <= 4000),
  definition jsonb not null default '{"nodes": [], "edges": []}' check (
    jsonb_typeof(definition -> 'nodes') = 'array'
    and jsonb_typeof(definition -> 'edges') = 'array'
  ),
  version integer not null default 1 check (version >= 1),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id),
  foreign key (project_id, organization_id)
    references public.projects (id, organization_id) on delete cascade
);
create index workflows_organization_id_idx on public.workflows (organization_id, created_at, id);
create index workflows_project_id_idx on public.workflows (project_id, created_at, id);

create table public.workflow_runs (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  workflow_id uuid not null,
  workflow_version integer not null default 1,
  status text not null default 'pending' check (status in (
    'pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'
  )),
  input jsonb not null default '{}' check (jsonb_typeof(input) = 'object'),
  state jsonb not null default '{"nodes": {}}' check (jsonb_typeof(state) = 'object'),
  execution_arn text,
  error text,
  started_by uuid references auth.users (id) on delete set null default auth.uid(),
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id),
  foreign key (workflow_id, organization_id)
    references public.workflows (id, organization_id) on delete cascade
);
create index workflow_runs_organization_id_idx on public.workflow_runs (organization_id, created_at, id);
create index workflow_runs_workflow_id_idx on public.workflow_runs (workflow_id, created_at, id);

-- An action written by a workflow node points back at its run.
alter table public.agent_actions
  add constraint agent_actions_workflow_run_fk
  foreign key (workflow_run_id, organization_id)
  references public.workflow_runs (id, organization_id) on delete set null (workflow_run_id);
create index agent_actions_workflow_run_id_idx on public.agent_actions (workflow_run_id)
  where workflow_run_id is not null;

create trigger workflows_set_updated_at before update on public.workflows
  for each row execute function private.set_updated_at();
create trigger workflow_runs_set_updated_at before update on public.workflow_runs
  for each row execute function private.set_updated_at();

alter table public.workflows enable row level security;
alter table public.workflows force row level security;
alter table public.workflow_runs enable row level security;
alter table public.workflow_runs force row level security;
grant select on public.workflows, public.workflow_runs to anon;
grant select, insert, update, delete on public.workflows, public.workflow_runs
  to authenticated, service_role;

create policy "Members can view workflows"
  on public.workflows for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can create workflows"
  on public.workflows for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can update workflows"
  on public.workflows for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Admins can delete workflows"
  on public.workflows for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Server jobs can manage workflows"
  on public.workflows for all to service_role
  using (true) with check (true);

create policy "Members can view workflow runs"
  on public.workflow_runs for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can start workflow runs"
  on public.workflow_runs for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can resume and cancel workflow runs"
  on public.workflow_runs for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Admins can delete workflow runs"
  on public.workflow_runs for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Server jobs can manage workflow runs"
  on public.workflow_runs for all to service_role
  using (true) with check (true);
