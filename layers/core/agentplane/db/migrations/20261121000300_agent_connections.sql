-- A user's connections to model providers (user-scoped: auth.uid() = user_id).

create table public.agent_connections (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  provider text not null check (provider in ('hermes', 'openrouter', 'nous', 'custom')),
  base_url text check (base_url ~ '^https?://[^\s]+$' and length(base_url) <= 2000),
  model text not null check (length(model) between 1 and 200),
  status text not null default 'active' check (status in ('active', 'inactive', 'error')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Referenced with user_id by the user's other rows, so they can only point at their own.
  unique (id, user_id),
  -- A custom provider has no default endpoint.
  constraint agent_connections_custom_needs_base_url check (provider <> 'custom' or base_url is not null)
);
create index agent_connections_user_id_idx on public.agent_connections (user_id, created_at, id);

create trigger agent_connections_set_updated_at before update on public.agent_connections
  for each row execute function private.set_updated_at();

alter table public.agent_connections enable row level security;
alter table public.agent_connections force row level security;
grant select on public.agent_connections to anon;
grant select, insert, update, delete on public.agent_connections to authenticated, service_role;

create policy "Users can view their own connections"
  on public.agent_connections for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can create their own connections"
  on public.agent_connections for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own connections"
  on public.agent_connections for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own connections"
  on public.agent_connections for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage connections"
  on public.agent_connections for all to service_role
  using (true) with check (true);
