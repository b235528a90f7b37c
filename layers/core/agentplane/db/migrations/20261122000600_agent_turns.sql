-- Agent turns: the brain's proposals link to the assistant message that made them, and a
-- member can learn which model endpoint an agent talks to.

-- The assistant message whose tool call became this action (brain proposals only). The
-- next turn of the conversation reads the action's state back into the model's context.
alter table public.agent_actions
  add column message_id uuid references public.messages (id) on delete set null;
create index agent_actions_message_id_idx on public.agent_actions (message_id)
  where message_id is not null;

-- An agent's model endpoint: its config joined with the connection the config names.
-- Connections are their owner's rows (RLS shows them to nobody else), but the endpoint
-- (provider, base URL, model) is what every member holding a turn with the agent needs;
-- the key stays each member's own, in the vault. Returns a row only for an agent of an
-- organization where the caller is a member or above, so viewers and strangers get none.
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
    connection_model text
  )
  language sql stable security definer
  set search_path = ''
  as $$
    select a.organization_id, c.model, c.system_prompt, c.temperature, c.allowed_tools,
           c.connection_id, k.provider, k.base_url, k.model
      from public.agents a
      join public.agent_configs c on c.agent_id = a.id
      left join public.agent_connections k on k.id = c.connection_id
     where a.id = target_agent
       and a.organization_id = any (private.org_ids('member'))
  $$;
revoke all on function private.agent_model_endpoint(uuid) from public;
grant execute on function private.agent_model_endpoint(uuid) to authenticated;
