-- Skill versions (issue 14 point 4): an edit of a skill's name, description, category or
-- template prompt bumps `skills.version` (in the UPDATE, skills/service.py), and a trigger
-- keeps every version readable in `skill_versions`. Suggestions from a mirror report carry
-- their evidence (message/action ids) and the report they came from.
-- Pinned by tests/integration/api/test_skill_versions.py and test_rls_matrix.py.

alter table public.skills
  add column evidence jsonb not null default '[]' check (jsonb_typeof(evidence) = 'array'),
  add column source_report_id uuid,
  add constraint skills_id_user_id_key unique (id, user_id);

-- A suggestion names a report of its own owner's: a composite key over (id, user_id).
-- `if not exists`: the mirror work may add the same index for its own references.
create unique index if not exists mirror_reports_id_user_id_key
  on public.mirror_reports (id, user_id);
alter table public.skills
  add constraint skills_source_report_fk
  foreign key (source_report_id, user_id)
    references public.mirror_reports (id, user_id) on delete set null (source_report_id);
create index skills_source_report_id_idx on public.skills (source_report_id)
  where source_report_id is not null;

create table public.skill_versions (
  id uuid primary key default gen_random_uuid(),
  skill_id uuid not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  version integer not null check (version >= 1),
  name text not null,
  description text,
  category text,
  template_prompt text,
  score real not null,
  -- clock_timestamp: versions made in one transaction still list in the order made.
  created_at timestamptz not null default clock_timestamp(),
  unique (skill_id, version),
  foreign key (skill_id, user_id) references public.skills (id, user_id) on delete cascade
);
create index skill_versions_user_id_idx on public.skill_versions (user_id, created_at, id);
create index skill_versions_skill_id_idx on public.skill_versions (skill_id, created_at, id);

-- The only writer of skill_versions: a new skill's first version, and each update that
-- moved `version` (the service bumps it exactly when content changes).
create function private.record_skill_version() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  insert into public.skill_versions
    (skill_id, user_id, version, name, description, category, template_prompt, score)
  values
    (new.id, new.user_id, new.version, new.name, new.description, new.category,
     new.template_prompt, new.score);
  return null;
end;
$$;
revoke execute on function private.record_skill_version() from public;

create trigger skills_record_first_version
  after insert on public.skills
  for each row execute function private.record_skill_version();
create trigger skills_record_new_version
  after update of version on public.skills
  for each row when (new.version is distinct from old.version)
  execute function private.record_skill_version();

-- Skills made before this migration get their current content as their version.
insert into public.skill_versions
  (skill_id, user_id, version, name, description, category, template_prompt, score, created_at)
select id, user_id, version, name, description, category, template_prompt, score, updated_at
  from public.skills;

alter table public.skill_versions enable row level security;
alter table public.skill_versions force row level security;
-- Select only: the trigger writes versions, and they go only with their skill (cascade).
grant select on public.skill_versions to anon, authenticated, service_role;

create policy "Users can view their own skill versions"
  on public.skill_versions for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage skill versions"
  on public.skill_versions for all to service_role
  using (true) with check (true);
