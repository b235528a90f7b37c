-- The history of every agent's system prompt (organization-scoped, like agent_configs).
--
-- A trigger on agent_configs appends a version whenever a config is created or its
-- system_prompt changes, whoever writes it (PUT /agents/{id}/config, an adopted mirror
-- report, a restore, plain SQL), and stores the version's number in
-- agent_configs.prompt_version. Like the action audit log, versions are written only by
-- that trigger (security definer): members write them by writing the config, which its
-- own policies allow to members and up; no API role inserts, edits or deletes a version,
-- so `created_by` and `source` say who and why.
--
-- Why a version was made is a transaction-local setting the domain code sets just before
-- its UPDATE (`agentplane.prompt_source` = adopt | restore, `agentplane.prompt_source_id`
-- = the report id | the restored version's number); without one it is an 'edit'. The
-- trigger clears both, so a later write in the same transaction is an edit again.

create table public.agent_prompt_versions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  version integer not null check (version >= 1),
  system_prompt text not null check (length(system_prompt) <= 100000),
  source text not null default 'edit' check (source in ('edit', 'adopt', 'restore')),
  -- The mirror report of an adopt, the restored version's number of a restore.
  source_id text check (
    case source
      when 'edit' then source_id is null
      when 'adopt' then source_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      else source_id ~ '^[1-9][0-9]{0,9}$'
    end
  ),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  -- clock_timestamp(): versions are listed in (created_at, id) order, and two versions
  -- of one transaction (an adopt, then a restore) must not share the transaction's now().
  created_at timestamptz not null default clock_timestamp(),
  -- Two writers of one agent cannot both take a number (see the trigger's lock).
  unique (agent_id, version),
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade
);
create index agent_prompt_versions_organization_id_idx
  on public.agent_prompt_versions (organization_id);
create index agent_prompt_versions_agent_id_idx
  on public.agent_prompt_versions (agent_id, created_at, id);

alter table public.agent_prompt_versions enable row level security;
alter table public.agent_prompt_versions force row level security;
grant select on public.agent_prompt_versions to anon, authenticated;
grant select, insert, update, delete on public.agent_prompt_versions to service_role;

create policy "Members can view prompt versions of their organizations"
  on public.agent_prompt_versions for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Server jobs can manage prompt versions"
  on public.agent_prompt_versions for all to service_role
  using (true) with check (true);

-- The current version's number; null only between this migration's two statements.
alter table public.agent_configs add column prompt_version integer;

-- The existing prompts are everyone's version 1.
insert into public.agent_prompt_versions
  (organization_id, agent_id, version, system_prompt, source, created_by, created_at)
select organization_id, agent_id, 1, system_prompt, 'edit', null, updated_at
  from public.agent_configs;
update public.agent_configs set prompt_version = 1;

create function private.record_prompt_version() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  why text := coalesce(nullif(current_setting('agentplane.prompt_source', true), ''), 'edit');
  why_id text := nullif(current_setting('agentplane.prompt_source_id', true), '');
begin
  -- A plain edit that leaves the prompt as it was is no version; an adopt or a restore
  -- is one even then, since it records a decision.
  if tg_op = 'UPDATE' and why = 'edit'
     and new.system_prompt is not distinct from old.system_prompt then
    new.prompt_version := old.prompt_version;  -- the number is the trigger's alone
    return new;
  end if;
  perform set_config('agentplane.prompt_source', '', true),
          set_config('agentplane.prompt_source_id', '', true);
  -- An UPDATE's before-row trigger runs with the config row locked (a concurrent writer
  -- waits here, then reads the committed number); an INSERT races only on the config's
  -- primary key. unique (agent_id, version) refuses whatever slips through.
  -- Reads the unique index on (agent_id, version).
  select coalesce(max(v.version), 0) + 1 into new.prompt_version
    from public.agent_prompt_versions v
   where v.agent_id = new.agent_id;
  insert into public.agent_prompt_versions
    (organization_id, agent_id, version, system_prompt, source, source_id, created_by)
  values
    (new.organization_id, new.agent_id, new.prompt_version, new.system_prompt, why,
     case when why = 'edit' then null else why_id end, (select auth.uid()));
  return new;
end
$$;
revoke all on function private.record_prompt_version() from public;

create trigger agent_configs_record_prompt_version
  before insert or update of system_prompt, prompt_version on public.agent_configs
  for each row execute function private.record_prompt_version();

alter table public.agent_configs alter column prompt_version set not null;

-- Turns record which version answered: the assistant message's prompt_version.
alter table public.messages add column prompt_version integer check (prompt_version >= 1);

-- The endpoint of a turn also names the prompt version it sends; otherwise as in
-- 20261122000700_turn_endpoint_ownership.sql (a new result column needs drop + create).
drop function private.agent_model_endpoint(uuid);
create function private.agent_model_endpoint(target_agent uuid)
  returns table (
    organization_id uuid,
    model text,
    system_prompt text,
    temperature numeric,
    allowed_tools text[],
    connection_id uuid,
    provider text,
    base_url text,
    connection_model text,
    connection_is_callers boolean,
    prompt_version integer
  )
  language sql stable security definer
  set search_path = ''
  as $$
    select a.organization_id, c.model, c.system_prompt, c.temperature, c.allowed_tools,
           c.connection_id, k.provider, k.base_url, k.model,
           k.user_id = (select auth.uid()), c.prompt_version
      from public.agents a
      join public.agent_configs c on c.agent_id = a.id
      left join public.agent_connections k on k.id = c.connection_id
     where a.id = target_agent
       and a.organization_id = any (private.org_ids('member'))
  $$;
revoke all on function private.agent_model_endpoint(uuid) from public;
grant execute on function private.agent_model_endpoint(uuid) to authenticated;
