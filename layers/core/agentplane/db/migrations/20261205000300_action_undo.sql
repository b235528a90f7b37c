-- Undo: an action can be the inverse of an earlier one (POST /actions/{id}/undo proposes
-- it), linked back by `undo_of`, with the reason the person gave. An action is undone at
-- most once, and the link, like the payload, is fixed from insert on: it says what this
-- action was proposed to restore, which a reviewer approved knowing.

-- A plain key to the primary key: 20261129000400 dropped the unique (id,
-- organization_id) a composite key would need, for the queue's sake; the trigger below
-- keeps the link inside the agent. An undo is an action of the same agent, and goes
-- with it.
alter table public.agent_actions
  add column undo_of uuid references public.agent_actions (id) on delete cascade,
  add column undo_reason text,
  add constraint agent_actions_undo_of_not_self check (undo_of <> id),
  add constraint agent_actions_undo_reason_check check (
    undo_reason is null or (length(undo_reason) <= 2000 and undo_of is not null));
-- One undo per action; the API reads it to name the existing undo in its 409.
create unique index agent_actions_undo_of_key on public.agent_actions (undo_of)
  where undo_of is not null;

-- No role has UPDATE on these columns (the column grants of 20261122000400 name them for
-- nobody); this refuses it for the service role and the owner too, as for the payload.
create function private.refuse_undo_of_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if new.undo_of is distinct from old.undo_of
     or new.undo_reason is distinct from old.undo_reason then
    raise exception 'the undo link of action % is immutable', old.id
      using errcode = '42501', hint = 'propose a new action instead';
  end if;
  return new;
end
$$;
revoke all on function private.refuse_undo_of_change() from public;
create trigger agent_actions_undo_of_immutable
  before update of undo_of, undo_reason on public.agent_actions
  for each row execute function private.refuse_undo_of_change();

comment on column public.agent_actions.undo_of is
  'The action this one was proposed to undo (POST /actions/{id}/undo); immutable.';
comment on column public.agent_actions.undo_reason is
  'Why the person who asked for the undo did; immutable.';

-- An undo undoes an action of its own agent (so of its own organization): a member's
-- direct INSERT cannot link to an action of another agent, seen or not. Security
-- definer, to read the linked row whoever inserts; it runs only for undos.
create function private.require_undo_of_same_agent() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if not exists (
    select from public.agent_actions a where a.id = new.undo_of and a.agent_id = new.agent_id
  ) then
    raise exception 'action % is not an action of agent %', new.undo_of, new.agent_id
      using errcode = '23503';
  end if;
  return new;
end
$$;
revoke all on function private.require_undo_of_same_agent() from public;
create trigger agent_actions_undo_of_same_agent
  before insert on public.agent_actions
  for each row when (new.undo_of is not null)
  execute function private.require_undo_of_same_agent();
