-- Approval policy as data: which actions need how many approvals by whom, decided in the
-- database.
--
-- approval_policies (organization-scoped; admins write, members read) match an action by
-- scope (one agent, every agent of a project, or of the organization) and a tool name
-- pattern (`*` any run of characters). The most specific match wins: agent before
-- project before organization, then an exact tool name before a pattern, then the
-- longer literal part of the pattern, then the older policy. Every change bumps
-- `version`.
--
-- A proposal takes its policy's terms at insert (a BEFORE INSERT trigger on
-- agent_actions writes them into the action, whatever the INSERT said), so a later edit
-- changes no action in flight: the action records policy_id, policy_version, risk,
-- required_approvals, proposer_may_approve, approver_roles, auto_approve and its
-- escalation. Without a matching policy the default applies: one approval by an owner,
-- admin or member (the proposer too), the risk the API gave (the tool catalog's), no
-- auto-approval, no escalation.
--
-- Each approval is its own row of action_approvals (who, in which role, when, why),
-- written only through the rules of its BEFORE INSERT trigger: the action is pending and
-- not expired, the approver's organization role is one the action's policy allows, the
-- proposer approves only where the policy lets them, and one person approves once
-- (unique). The action's approval_count follows its rows, and the transition trigger
-- lets a person move an action from pending to approved only at the M-th approval (or,
-- for an auto-approving low-risk policy, as the policy itself: approved_by_policy), and
-- reject it only in a role the policy allows. The server signs what it approves; the
-- signature covers the policy id, its version and the risk (agentplane.actions.canonical).

create table public.approval_policies (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  -- Scope: an agent (its project_id is then the agent's), a project, or neither: the
  -- whole organization.
  project_id uuid,
  agent_id uuid,
  name text not null default '' check (length(name) <= 200),
  tool_pattern text not null default '*' check (tool_pattern ~ '^[A-Za-z0-9_.*-]{1,100}$'),
  risk text not null default 'medium' check (risk in ('low', 'medium', 'high', 'critical')),
  required_approvals integer not null default 1 check (required_approvals between 1 and 5),
  proposer_may_approve boolean not null default true,
  approver_roles text[] not null default '{owner,admin,member}' check (
    cardinality(approver_roles) between 1 and 3
    and approver_roles <@ array['owner', 'admin', 'member']
  ),
  -- Low risk only: the server approves what fits the constraints, as the policy.
  auto_approve boolean not null default false,
  auto_approve_constraints jsonb not null default '{}' check (
    jsonb_typeof(auto_approve_constraints) = 'object'
  ),
  ttl_seconds integer check (ttl_seconds between 10 and 604800),
  escalate_after_seconds integer check (escalate_after_seconds between 1 and 604800),
  escalate_to_role text check (escalate_to_role in ('owner', 'admin', 'member')),
  version integer not null default 1 check (version >= 1),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, organization_id),
  foreign key (project_id, organization_id)
    references public.projects (id, organization_id) on delete cascade,
  foreign key (agent_id, organization_id)
    references public.agents (id, organization_id) on delete cascade,
  constraint approval_policies_auto_approve_low_risk
    check (not auto_approve or (risk = 'low' and required_approvals = 1)),
  constraint approval_policies_escalation_complete
    check ((escalate_after_seconds is null) = (escalate_to_role is null))
);
create index approval_policies_organization_id_idx
  on public.approval_policies (organization_id, created_at, id);
create index approval_policies_agent_id_idx on public.approval_policies (agent_id)
  where agent_id is not null;
create index approval_policies_project_id_idx on public.approval_policies (project_id)
  where project_id is not null;

alter table public.approval_policies enable row level security;
alter table public.approval_policies force row level security;
grant select, insert, update, delete on public.approval_policies to authenticated;
grant select, insert, update, delete on public.approval_policies to service_role;

create policy "Members can view approval policies"
  on public.approval_policies for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Admins can create approval policies"
  on public.approval_policies for insert to authenticated
  with check (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Admins can change approval policies"
  on public.approval_policies for update to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]))
  with check (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Admins can delete approval policies"
  on public.approval_policies for delete to authenticated
  using (organization_id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Server jobs can manage approval policies"
  on public.approval_policies for all to service_role
  using (true) with check (true);

-- An agent's policy is scoped to its project too; version and created_by are the
-- database's; a change bumps the version.
create function private.approval_policy_write() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if new.agent_id is not null then
    select a.project_id into new.project_id from public.agents a where a.id = new.agent_id;
  end if;
  if tg_op = 'INSERT' then
    new.version := 1;
  else
    new.version := old.version + 1;
    new.created_by := old.created_by;
    new.created_at := old.created_at;
    new.organization_id := old.organization_id;
  end if;
  return new;
end
$$;
revoke all on function private.approval_policy_write() from public;
create trigger approval_policies_write
  before insert or update on public.approval_policies
  for each row execute function private.approval_policy_write();
create trigger approval_policies_set_updated_at before update on public.approval_policies
  for each row execute function private.set_updated_at();

-- A tool name matches a pattern: `*` is any run of characters, everything else itself
-- (the pattern's alphabet has no other LIKE metacharacter than `_`).
create function private.tool_matches(pattern text, tool text) returns boolean
  language sql immutable parallel safe
  as $$
    select tool like replace(replace(pattern, '_', '\_'), '*', '%')
  $$;

-- The policies that match an agent's tool, most specific first (the first one applies).
-- Invoker's rights: a person's `evaluate` sees only the policies and agents RLS shows
-- them; the proposal trigger (security definer) sees every one.
create function private.matching_policies(p_agent_id uuid, p_tool text)
  returns setof public.approval_policies
  language sql stable
  set search_path = ''
  as $$
    select p.*
      from public.agents a
      join public.approval_policies p
        on p.organization_id = a.organization_id
       and (p.agent_id = a.id
            or (p.agent_id is null and p.project_id = a.project_id)
            or (p.agent_id is null and p.project_id is null))
     where a.id = p_agent_id
       and private.tool_matches(p.tool_pattern, p_tool)
     order by (case when p.agent_id is not null then 3
                    when p.project_id is not null then 2 else 1 end) desc,
              (strpos(p.tool_pattern, '*') = 0) desc,
              length(replace(p.tool_pattern, '*', '')) desc,
              p.created_at, p.id
  $$;
revoke all on function private.matching_policies(uuid, text) from public;
grant execute on function private.matching_policies(uuid, text) to authenticated, service_role;

-- Whether an action's arguments fit an auto-approval's constraints: an object of
-- argument name -> rules, each rule one of
--   {"path_within": "<dir>"}  a relative path, no `..` segment, inside <dir> ("." = the
--                              workspace itself)
--   {"one_of": [values]}      the argument is one of these
--   {"max_length": n}         a string of at most n characters
-- An argument named in the constraints must be present; an unknown rule never fits.
create function private.args_fit(args jsonb, constraints jsonb) returns boolean
  language plpgsql immutable parallel safe
  set search_path = ''
  as $$
declare
  name text;
  rules jsonb;
  rule text;
  value jsonb;
  dir text;
  path text;
begin
  for name, rules in select * from jsonb_each(coalesce(constraints, '{}'::jsonb)) loop
    value := args -> name;
    if value is null or jsonb_typeof(rules) <> 'object' then
      return false;
    end if;
    for rule in select jsonb_object_keys(rules) loop
      if rule = 'path_within' then
        if jsonb_typeof(value) <> 'string' then return false; end if;
        path := value #>> '{}';
        dir := trim(trailing '/' from rules ->> 'path_within');
        if path ~ '^/' or path ~ '(^|/)\.\.(/|$)' or path ~ '\\' then return false; end if;
        if dir not in ('', '.') and path <> dir
           and left(path, length(dir) + 1) <> (dir || '/') then
          return false;
        end if;
      elsif rule = 'one_of' then
        if jsonb_typeof(rules -> 'one_of') <> 'array'
           or not (rules -> 'one_of') @> jsonb_build_array(value) then
          return false;
        end if;
      elsif rule = 'max_length' then
        if jsonb_typeof(value) <> 'string'
           or length(value #>> '{}') > (rules ->> 'max_length')::integer then
          return false;
        end if;
      else
        return false;
      end if;
    end loop;
  end loop;
  return true;
end
$$;

alter table public.agent_actions
  add column policy_id uuid references public.approval_policies (id) on delete set null,
  add column policy_version integer,
  add column risk text not null default 'medium'
    check (risk in ('low', 'medium', 'high', 'critical')),
  add column required_approvals integer not null default 1
    check (required_approvals between 1 and 5),
  add column proposer_may_approve boolean not null default true,
  add column approver_roles text[] not null default '{owner,admin,member}',
  add column auto_approve boolean not null default false,
  add column approved_by_policy uuid,
  add column approval_count integer not null default 0 check (approval_count >= 0),
  add column escalate_at timestamptz,
  add column escalate_to_role text check (escalate_to_role in ('owner', 'admin', 'member')),
  add column escalated_at timestamptz;
-- The escalation reaper reads pending actions due for escalation, soonest first.
create index agent_actions_escalation_idx on public.agent_actions (escalate_at)
  where status = 'pending' and escalated_at is null and escalate_at is not null;

-- The policy's terms, written into the action at proposal whatever the INSERT said.
create function private.apply_approval_policy() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  p public.approval_policies;
begin
  select * into p from private.matching_policies(new.agent_id, new.payload ->> 'tool') limit 1;
  new.approval_count := 0;
  new.approved_by_policy := null;
  new.escalated_at := null;
  if p.id is null then
    new.policy_id := null;
    new.policy_version := null;
    new.required_approvals := 1;
    new.proposer_may_approve := true;
    new.approver_roles := array['owner', 'admin', 'member'];
    new.auto_approve := false;
    new.escalate_at := null;
    new.escalate_to_role := null;
    return new;
  end if;
  new.policy_id := p.id;
  new.policy_version := p.version;
  new.risk := p.risk;
  new.required_approvals := p.required_approvals;
  new.proposer_may_approve := p.proposer_may_approve;
  new.approver_roles := p.approver_roles;
  new.auto_approve := p.auto_approve and p.risk = 'low' and new.kind = 'tool'
    and private.args_fit(coalesce(new.payload -> 'args', '{}'::jsonb), p.auto_approve_constraints);
  if p.ttl_seconds is not null then
    new.expires_at := least(new.expires_at, now() + make_interval(secs => p.ttl_seconds));
  end if;
  new.escalate_at := now() + make_interval(secs => p.escalate_after_seconds);
  new.escalate_to_role := p.escalate_to_role;
  return new;
end
$$;
revoke all on function private.apply_approval_policy() from public;
create trigger agent_actions_apply_policy
  before insert on public.agent_actions
  for each row execute function private.apply_approval_policy();

-- What an action was proposed under never changes (its signature covers it).
create function private.refuse_policy_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if (new.policy_id, new.policy_version, new.risk, new.required_approvals,
      new.proposer_may_approve, new.approver_roles, new.auto_approve)
     is distinct from
     (old.policy_id, old.policy_version, old.risk, old.required_approvals,
      old.proposer_may_approve, old.approver_roles, old.auto_approve)
     -- a deleted policy leaves its id null on the actions it decided; nothing else moves
     and not (new.policy_id is null and old.policy_id is not null
              and (new.policy_version, new.risk, new.required_approvals,
                   new.proposer_may_approve, new.approver_roles, new.auto_approve)
                  is not distinct from
                  (old.policy_version, old.risk, old.required_approvals,
                   old.proposer_may_approve, old.approver_roles, old.auto_approve)) then
    raise exception 'the approval terms of action % are immutable', old.id
      using errcode = '42501', hint = 'propose a new action instead';
  end if;
  return new;
end
$$;
revoke all on function private.refuse_policy_change() from public;
create trigger agent_actions_policy_immutable
  before update of policy_id, policy_version, risk, required_approvals, proposer_may_approve,
                   approver_roles, auto_approve
  on public.agent_actions
  for each row execute function private.refuse_policy_change();

create table public.action_approvals (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  -- The organization is the action's (the trigger reads it).
  action_id uuid not null references public.agent_actions (id) on delete cascade,
  approver_id uuid references auth.users (id) on delete set null default auth.uid(),
  approver_role text not null check (approver_role in ('owner', 'admin', 'member')),
  reason text check (length(reason) <= 2000),
  created_at timestamptz not null default now(),
  unique (action_id, approver_id)
);
create index action_approvals_organization_id_idx on public.action_approvals (organization_id);

alter table public.action_approvals enable row level security;
alter table public.action_approvals force row level security;
grant select, insert on public.action_approvals to authenticated;
grant select, insert, delete on public.action_approvals to service_role;

create policy "Members can view approvals"
  on public.action_approvals for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Members can approve as themselves"
  on public.action_approvals for insert to authenticated
  with check (
    approver_id = (select auth.uid())
    and organization_id = any ((select private.org_ids('member'))::uuid[])
  );
create policy "Server jobs can manage approvals"
  on public.action_approvals for all to service_role
  using (true) with check (true);

-- A person's role in an organization (null: not a member). The approval rules below ask
-- it of the approver; security definer, since it answers for the rule, not for RLS.
create function private.member_role(org uuid, person uuid) returns text
  language sql stable security definer
  set search_path = ''
  as $$
    select m.role from public.organization_members m
     where m.organization_id = org and m.user_id = person
  $$;
revoke all on function private.member_role(uuid, uuid) from public;
grant execute on function private.member_role(uuid, uuid) to authenticated, service_role;

-- An approval's rules (the API checks them first to refuse politely; this is the rule):
-- the action is pending and unexpired, the approver's role is one its policy allows, a
-- proposer approves only where allowed. The approver is the caller; their role and the
-- action's organization are read, not taken from the INSERT. Counts on the action.
create function private.record_approval() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  a public.agent_actions;
  member_role text;
begin
  select * into a from public.agent_actions where id = new.action_id for update;
  if a.id is null then
    raise exception 'no action %', new.action_id using errcode = '23503';
  end if;
  if a.status <> 'pending' or a.expires_at <= now() then
    raise exception 'action % is %; it cannot be approved', a.id,
      case when a.status = 'pending' then 'expired' else a.status end
      using errcode = '55000', hint = 'rule: pending';
  end if;
  if coalesce(nullif(auth.role(), ''), 'service_role') = 'authenticated' then
    new.approver_id := auth.uid();
  end if;
  member_role := private.member_role(a.organization_id, new.approver_id);
  if member_role is null or not member_role = any (a.approver_roles) then
    raise exception 'a % may not approve action % (its policy allows %)',
      coalesce(member_role, 'non-member'), a.id, array_to_string(a.approver_roles, ', ')
      using errcode = '42501', hint = 'rule: approver_roles';
  end if;
  if not a.proposer_may_approve and a.proposed_by = new.approver_id then
    raise exception 'the proposer of action % may not approve it', a.id
      using errcode = '42501', hint = 'rule: proposer_may_not_approve';
  end if;
  new.organization_id := a.organization_id;
  new.approver_role := member_role;
  new.created_at := now();
  return new;
end
$$;
revoke all on function private.record_approval() from public;
create trigger action_approvals_record
  before insert on public.action_approvals
  for each row execute function private.record_approval();

create function private.refuse_approval_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_op = 'DELETE' and not exists (select from public.agent_actions where id = old.action_id) then
    return old;  -- its action is being deleted (cascade)
  end if;
  raise exception 'approvals are append-only' using errcode = '42501';
end
$$;
revoke all on function private.refuse_approval_change() from public;
create trigger action_approvals_append_only
  before update or delete on public.action_approvals
  for each row execute function private.refuse_approval_change();

-- The state machine of 20261122000400, with the policy's part: a person approves only at
-- the M-th approval (or an auto-approving policy does, with no person as decider), and
-- rejects only in a role the policy allows.
create or replace function private.check_action_transition() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  role text := coalesce(nullif(auth.role(), ''), 'service_role');
  edge text := old.status || '>' || new.status;
  allowed text[];
  member_role text;
begin
  if new.status is not distinct from old.status then
    return new;
  end if;
  allowed := case role
    when 'authenticated' then
      array['pending>approved', 'pending>rejected', 'pending>cancelled', 'approved>cancelled']
    when 'agent_runner' then
      array['approved>claimed', 'claimed>succeeded', 'claimed>failed', 'claimed>approved']
    else
      array['pending>approved', 'pending>rejected', 'pending>cancelled', 'approved>cancelled',
            'approved>claimed', 'claimed>succeeded', 'claimed>failed', 'claimed>approved',
            'pending>expired', 'approved>expired']
  end;
  if not edge = any(allowed) then
    raise exception 'an action cannot go from % to % as %', old.status, new.status, role
      using errcode = '42501';
  end if;
  -- People's approvals (server jobs are the server's own code and sign what they approve).
  if edge = 'pending>approved' and role = 'authenticated' then
    if new.approved_by_policy is not null then
      if not (old.auto_approve and new.approved_by_policy = old.policy_id) then
        raise exception 'policy % does not auto-approve action %', new.approved_by_policy, old.id
          using errcode = '42501', hint = 'rule: auto_approve';
      end if;
    else
      -- The approvals themselves are counted, never a number someone wrote.
      new.approval_count := (select count(*) from public.action_approvals
                              where action_id = old.id);
      if new.approval_count < old.required_approvals then
        raise exception 'action % has % of % approvals', old.id, new.approval_count,
          old.required_approvals
          using errcode = '42501', hint = 'rule: required_approvals';
      end if;
    end if;
  end if;
  if role = 'authenticated' then
    if edge = 'pending>rejected' then
      member_role := private.member_role(old.organization_id, auth.uid());
      if member_role is null or not member_role = any (old.approver_roles) then
        raise exception 'a % may not reject action % (its policy allows %)',
          coalesce(member_role, 'non-member'), old.id, array_to_string(old.approver_roles, ', ')
          using errcode = '42501', hint = 'rule: approver_roles';
      end if;
    end if;
    -- A person's decision is recorded as their own, whatever the statement said; an
    -- auto-approval is the policy's, no person's.
    new.decided_by := case when new.approved_by_policy is not null then null else auth.uid() end;
  end if;
  return new;
end
$$;

grant update (approved_by_policy) on public.agent_actions to authenticated;

-- An approval that did not yet reach the policy's number: its action's approval_count
-- follows (what the inbox shows), recounted from the rows. The decision itself counts the
-- rows again in the transition trigger.
create function private.recount_approvals(ids uuid[]) returns setof public.agent_actions
  language sql security definer
  set search_path = ''
  as $$
    update public.agent_actions a
       set approval_count = (select count(*) from public.action_approvals x
                              where x.action_id = a.id)
     where a.id = any (ids) and a.status = 'pending'
       and a.organization_id = any ((select private.org_ids('member'))::uuid[])
    returning a.*
  $$;
revoke all on function private.recount_approvals(uuid[]) from public;
grant execute on function private.recount_approvals(uuid[]) to authenticated;

-- Whether the caller may reject an action under these roles (server jobs always may):
-- the decide path's filter, so a batch refuses one action instead of failing whole; the
-- transition trigger above is the rule.
create function private.may_reject(org uuid, roles text[]) returns boolean
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(nullif(auth.role(), ''), 'service_role') <> 'authenticated'
        or coalesce(private.member_role(org, auth.uid()) = any (roles), false)
  $$;
revoke all on function private.may_reject(uuid, text[]) from public;
grant execute on function private.may_reject(uuid, text[]) to authenticated, service_role;
