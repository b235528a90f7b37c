-- An action's audit events leave with it through a trigger, not a foreign key.
--
-- The foreign key (action_id, organization_id) -> agent_actions ran its check query once
-- for every event written (four per action), and needed a unique index on agent_actions
-- (id, organization_id) that every UPDATE of an action maintained as well: together about
-- a fifth of the database's work per action in the queue benchmark.
--
-- What the key guaranteed still holds without it:
-- - an event names an existing action of its own organization: events are written only
--   by the audit triggers (security definer), which copy action_id and organization_id
--   from the action row itself; no API role may insert into agent_action_events;
-- - an action's events go when it goes: this statement-level trigger deletes them,
--   whether the action was deleted directly or by the cascade from its agent, project or
--   organization. The append-only guard lets those deletes through because the action
--   is gone by then, as it did for the foreign key's cascade.

alter table public.agent_action_events
  drop constraint agent_action_events_action_id_organization_id_fkey;
alter table public.agent_actions
  drop constraint agent_actions_id_organization_id_key;

create function private.delete_action_events() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  -- Reads agent_action_events_action_id_idx.
  delete from public.agent_action_events e
   using removed r
   where e.action_id = r.id;
  return null;
end
$$;
revoke all on function private.delete_action_events() from public;

create trigger agent_actions_delete_events
  after delete on public.agent_actions
  referencing old table as removed
  for each statement execute function private.delete_action_events();
