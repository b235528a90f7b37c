-- Mirror reports that run: the period and analyzer asked for, progress, the suggested
-- prompt's diff and rationale, what the analyzer noted, and a deadline for the cron.
--
-- A report is queued by POST /mirror-reports or the nightly schedule, run by an async
-- invocation of the mirror function (in-process locally), and ends succeeded or failed;
-- either way the connection is free for its next report. A report still `running` past
-- its deadline (its function died) is failed by the heartbeat cron, through the partial
-- index below.

alter table public.mirror_reports
  add column since timestamptz,
  add column until timestamptz,
  add column requested_analyzer text not null default 'auto'
    check (requested_analyzer in ('auto', 'heuristic', 'llm')),
  add column agent_id uuid references public.agents (id) on delete set null,
  add column progress jsonb not null default '{}' check (jsonb_typeof(progress) = 'object'),
  add column suggested_prompt_diff text,
  add column prompt_changes jsonb not null default '[]'
    check (jsonb_typeof(prompt_changes) = 'array'),
  add column notes jsonb not null default '[]' check (jsonb_typeof(notes) = 'array'),
  add column dropped_evidence integer not null default 0 check (dropped_evidence >= 0),
  add column action_count integer not null default 0 check (action_count >= 0),
  add column adopted_at timestamptz,
  add column adopted_prompt_version integer,
  add constraint mirror_reports_period check (since is null or until is null or since < until);

create index mirror_reports_running_started_idx on public.mirror_reports (started_at)
  where status = 'running';
