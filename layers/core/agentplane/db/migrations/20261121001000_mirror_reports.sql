-- Mirror reports: an analysis of a connection's conversations (user-scoped). Each finding
-- in strengths/weaknesses/recommendations is {title, detail, evidence: [message ids]}.

create table public.mirror_reports (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  connection_id uuid not null,
  status text not null default 'queued' check (status in ('queued', 'running', 'succeeded', 'failed')),
  analyzer text check (analyzer in ('llm', 'heuristic')),
  strengths jsonb not null default '[]' check (jsonb_typeof(strengths) = 'array'),
  weaknesses jsonb not null default '[]' check (jsonb_typeof(weaknesses) = 'array'),
  recommendations jsonb not null default '[]' check (jsonb_typeof(recommendations) = 'array'),
  suggested_prompt text,
  message_count integer not null default 0 check (message_count >= 0),
  error text,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- A report analyses one of its owner's own connections, never another user's.
  foreign key (connection_id, user_id)
    references public.agent_connections (id, user_id) on delete cascade
);
create index mirror_reports_user_id_idx on public.mirror_reports (user_id, created_at, id);
create index mirror_reports_connection_id_idx on public.mirror_reports (connection_id, created_at);

create trigger mirror_reports_set_updated_at before update on public.mirror_reports
  for each row execute function private.set_updated_at();

alter table public.mirror_reports enable row level security;
alter table public.mirror_reports force row level security;
grant select on public.mirror_reports to anon;
grant select, insert, update, delete on public.mirror_reports to authenticated, service_role;

create policy "Users can view their own mirror reports"
  on public.mirror_reports for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can create their own mirror reports"
  on public.mirror_reports for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own mirror reports"
  on public.mirror_reports for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own mirror reports"
  on public.mirror_reports for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage mirror reports"
  on public.mirror_reports for all to service_role
  using (true) with check (true);
