-- Memory graph nodes, skills and tasks (user-scoped: auth.uid() = user_id).

create table public.memory_nodes (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  connection_id uuid,
  parent_id uuid,
  kind text not null default 'note' check (kind in ('fact', 'preference', 'entity', 'event', 'note')),
  label text not null check (length(btrim(label)) between 1 and 500),
  content text not null default '' check (length(content) <= 100000),
  importance real not null default 0.5 check (importance between 0 and 1),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, user_id),
  foreign key (connection_id, user_id)
    references public.agent_connections (id, user_id) on delete set null (connection_id),
  foreign key (parent_id, user_id)
    references public.memory_nodes (id, user_id) on delete set null (parent_id)
);
create index memory_nodes_user_id_idx on public.memory_nodes (user_id, created_at, id);
create index memory_nodes_connection_id_idx on public.memory_nodes (connection_id)
  where connection_id is not null;
create index memory_nodes_parent_id_idx on public.memory_nodes (parent_id)
  where parent_id is not null;

create table public.skills (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text not null default '' check (length(description) <= 4000),
  instructions text not null default '' check (length(instructions) <= 100000),
  -- Lifecycle: draft -> active -> deprecated -> archived.
  status text not null default 'draft' check (status in ('draft', 'active', 'deprecated', 'archived')),
  version integer not null default 1 check (version >= 1),
  source_template_id uuid,
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index skills_user_id_idx on public.skills (user_id, created_at, id);

create table public.tasks (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  connection_id uuid,
  conversation_id uuid,
  title text not null check (length(btrim(title)) between 1 and 500),
  description text not null default '' check (length(description) <= 20000),
  status text not null default 'todo' check (status in ('todo', 'in_progress', 'blocked', 'done', 'cancelled')),
  priority smallint not null default 2 check (priority between 0 and 4),
  due_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (connection_id, user_id)
    references public.agent_connections (id, user_id) on delete set null (connection_id),
  foreign key (conversation_id, user_id)
    references public.conversations (id, user_id) on delete set null (conversation_id)
);
create index tasks_user_id_idx on public.tasks (user_id, created_at, id);
create index tasks_connection_id_idx on public.tasks (connection_id) where connection_id is not null;
create index tasks_conversation_id_idx on public.tasks (conversation_id) where conversation_id is not null;

-- A recall (last_used_at) is not an edit: only content changes move updated_at.
create trigger memory_nodes_set_updated_at
  before update of kind, label, content, importance, metadata, parent_id, connection_id
  on public.memory_nodes
  for each row execute function private.set_updated_at();
create trigger skills_set_updated_at before update on public.skills
  for each row execute function private.set_updated_at();
create trigger tasks_set_updated_at before update on public.tasks
  for each row execute function private.set_updated_at();

alter table public.memory_nodes enable row level security;
alter table public.memory_nodes force row level security;
grant select on public.memory_nodes to anon;
grant select, insert, update, delete on public.memory_nodes to authenticated, service_role;

create policy "Users can view their own memory nodes"
  on public.memory_nodes for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can create their own memory nodes"
  on public.memory_nodes for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own memory nodes"
  on public.memory_nodes for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own memory nodes"
  on public.memory_nodes for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage memory nodes"
  on public.memory_nodes for all to service_role
  using (true) with check (true);

alter table public.skills enable row level security;
alter table public.skills force row level security;
grant select on public.skills to anon;
grant select, insert, update, delete on public.skills to authenticated, service_role;

create policy "Users can view their own skills"
  on public.skills for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can create their own skills"
  on public.skills for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own skills"
  on public.skills for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own skills"
  on public.skills for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage skills"
  on public.skills for all to service_role
  using (true) with check (true);

alter table public.tasks enable row level security;
alter table public.tasks force row level security;
grant select on public.tasks to anon;
grant select, insert, update, delete on public.tasks to authenticated, service_role;

create policy "Users can view their own tasks"
  on public.tasks for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can create their own tasks"
  on public.tasks for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own tasks"
  on public.tasks for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own tasks"
  on public.tasks for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage tasks"
  on public.tasks for all to service_role
  using (true) with check (true);
