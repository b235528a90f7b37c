-- Template bundles (user-scoped, authored by user_id): skills and seed memory that
-- another user installs as copies into their own rows. Public bundles are readable by
-- every authenticated user; only the author changes or deletes one.

create table public.templates (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text not null default '' check (length(description) <= 4000),
  is_public boolean not null default false,
  bundle jsonb not null default '{"skills": [], "memory": []}' check (jsonb_typeof(bundle) = 'object'),
  installs integer not null default 0 check (installs >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index templates_user_id_idx on public.templates (user_id, created_at, id);
create index templates_public_idx on public.templates (created_at, id) where is_public;

alter table public.skills
  add constraint skills_source_template_fk
  foreign key (source_template_id) references public.templates (id) on delete set null;
create index skills_source_template_id_idx on public.skills (source_template_id)
  where source_template_id is not null;
-- A skill can name as its source only a template the user can see (theirs, or public).
create trigger skills_source_template_visible
  before insert or update of source_template_id on public.skills
  for each row execute function private.require_visible_reference('source_template_id', 'public.templates');

create trigger templates_set_updated_at before update on public.templates
  for each row execute function private.set_updated_at();

alter table public.templates enable row level security;
alter table public.templates force row level security;
grant select on public.templates to anon;
grant select, insert, update, delete on public.templates to authenticated, service_role;

create policy "Users can view their own and public templates"
  on public.templates for select to authenticated
  using (user_id = (select auth.uid()) or is_public);
create policy "Users can create their own templates"
  on public.templates for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Authors can update their templates"
  on public.templates for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Authors can delete their templates"
  on public.templates for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage templates"
  on public.templates for all to service_role
  using (true) with check (true);
