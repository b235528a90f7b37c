-- Two guards around agent turns.
--
-- 1. The endpoint of an agent tells whether its connection is the caller's own. A turn
--    sends the caller's key to the endpoint, so a base URL set by another user must not
--    receive it (a member could otherwise point a shared agent at a server of theirs
--    and collect every other member's key).
-- 2. An action can link only to a message its writer may see (as every other reference
--    between rows of different owners does): otherwise a direct INSERT could attach an
--    action to another user's conversation and feed its state into their next turn.

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
    connection_is_callers boolean
  )
  language sql stable security definer
  set search_path = ''
  as $$
    select a.organization_id, c.model, c.system_prompt, c.temperature, c.allowed_tools,
           c.connection_id, k.provider, k.base_url, k.model,
           k.user_id = (select auth.uid())
      from public.agents a
      join public.agent_configs c on c.agent_id = a.id
      left join public.agent_connections k on k.id = c.connection_id
     where a.id = target_agent
       and a.organization_id = any (private.org_ids('member'))
  $$;
revoke all on function private.agent_model_endpoint(uuid) from public;
grant execute on function private.agent_model_endpoint(uuid) to authenticated;

create trigger agent_actions_message_visible
  before insert or update of message_id on public.agent_actions
  for each row execute function private.require_visible_reference('message_id', 'public.messages');
