-- Projects, agents, their 1:1 configs and runner credentials (organization-scoped).
-- Every row carries organization_id so a policy is one indexed comparison; composite
-- foreign keys keep it equal to the parent's.

create table public.projects (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text not null default '' check (length(description) <= 4000),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id)
);
create index projects_organization_id_idx on public.projects (organization_id, created_at, id);

create table public.agents (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text not null default '' check (length(description) <= 4000),
  status text not null default 'active' check (status in ('active', 'paused', 'archived')),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id),
  foreign key (project_id, organization_id)
    references public.projects (id, organization_id) on delete cascade
);
create index agents_organization_id_idx on public.agents (organization_id, created_at, id);
create index agents_project_id_idx on public.agents (project_id, created_at, id);

create table public.agent_configs (
  agent_id uuid primary key,
  organization_id uuid not null,
  model text not null default '' check (length(model) <= 200),
  system_prompt text not null default '' check (length(system_prompt) <= 100000),
  temperature numeric(3, 2) not null default 0.7 check (temperature between 0 and 2),
  connection_id uuid references public.agent_connections (id) on delete set null,
  -- The tools this agent's model may propose (the runner still has its own allowlist).
  allowed_tools text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade
);
create index agent_configs_organization_id_idx on public.agent_configs (organization_id);
create index agent_configs_connection_id_idx on public.agent_configs (connection_id);

-- Runner tokens are shown once and stored as a SHA-256 of the token.
create table public.agent_runner_tokens (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  name text not null default '' check (length(name) <= 200),
  token_hash text not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
  token_prefix text not null check (length(token_prefix) between 4 and 16),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  unique (id, agent_id),
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade
);
create index agent_runner_tokens_organization_id_idx on public.agent_runner_tokens (organization_id);
create index agent_runner_tokens_agent_id_idx on public.agent_runner_tokens (agent_id, created_at, id);

create trigger projects_set_updated_at before update on public.projects
  for each row execute function private.set_updated_at();
create trigger agents_set_updated_at before update on public.agents
  for each row execute function private.set_updated_at();
create trigger agent_configs_set_updated_at before update on public.agent_configs
  for each row execute function private.set_updated_at();
-- A member attaches one of their own connections, never another user's.
create trigger agent_configs_connection_visible
  before insert or update of connection_id on public.agent_configs
  for each row execute function private.require_visible_reference('connection_id', 'public.agent_connections');

alter table public.projects enable row level security;
alter table public.projects force row level security;
alter table public.agents enable row level security;
alter table public.agents force row level security;
alter table public.agent_configs enable row level security;
alter table public.agent_configs force row level security;
alter table public.agent_runner_tokens enable row level security;
alter table public.agent_runner_tokens force row level security;

grant select on public.projects, public.agents, public.agent_configs, public.agent_runner_tokens
  to anon;
grant select, insert, update, delete
  on public.projects, public.agents, public.agent_configs, public.agent_runner_tokens
  to authenticated, service_role;
-- A runner reads its own agent and config.
grant select on public.agents, public.agent_configs to agent_runner;

-- projects
create policy "Members can view projects of their organizations"
  on public.projects for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can create projects"
  on public.projects for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can update projects"
  on public.projects for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Admins can delete projects"
  on public.projects for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Server jobs can manage projects"
  on public.projects for all to service_role
  using (true) with check (true);

-- agents
create policy "Members can view agents of their organizations"
  on public.agents for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can create agents"
  on public.agents for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can update agents"
  on public.agents for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Admins can delete agents"
  on public.agents for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Runners can view their own agent"
  on public.agents for select to agent_runner
  using (id = (select private.runner_agent_id()));
create policy "Server jobs can manage agents"
  on public.agents for all to service_role
  using (true) with check (true);

-- agent_configs
create policy "Members can view agent configs"
  on public.agent_configs for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can create agent configs"
  on public.agent_configs for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can update agent configs"
  on public.agent_configs for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Admins can delete agent configs"
  on public.agent_configs for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Runners can view their own agent's config"
  on public.agent_configs for select to agent_runner
  using (agent_id = (select private.runner_agent_id()));
create policy "Server jobs can manage agent configs"
  on public.agent_configs for all to service_role
  using (true) with check (true);

-- agent_runner_tokens: issuing a runner credential is a member's act; viewers see none.
create policy "Members can view runner tokens"
  on public.agent_runner_tokens for select to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can issue runner tokens"
  on public.agent_runner_tokens for insert to authenticated
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can revoke runner tokens"
  on public.agent_runner_tokens for update to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Members can delete runner tokens"
  on public.agent_runner_tokens for delete to authenticated
  using (organization_id = any ((select private.org_ids('member'))::uuid[]));
create policy "Server jobs can manage runner tokens"
  on public.agent_runner_tokens for all to service_role
  using (true) with check (true);
