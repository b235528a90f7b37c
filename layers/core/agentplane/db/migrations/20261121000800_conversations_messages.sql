-- Conversations and their messages (user-scoped). A message's user_id must be its
-- conversation's, which a composite foreign key enforces.

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  connection_id uuid,
  agent_id uuid references public.agents (id) on delete set null,
  title text not null default '' check (length(title) <= 500),
  archived boolean not null default false,
  last_message_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, user_id),
  foreign key (connection_id, user_id)
    references public.agent_connections (id, user_id) on delete set null (connection_id)
);
create index conversations_user_id_idx on public.conversations (user_id, created_at, id);
create index conversations_connection_id_idx on public.conversations (connection_id)
  where connection_id is not null;
create index conversations_agent_id_idx on public.conversations (agent_id)
  where agent_id is not null;

create table public.messages (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  conversation_id uuid not null,
  role text not null check (role in ('user', 'assistant', 'system', 'tool')),
  content text not null default '' check (length(content) <= 200000),
  tool_calls jsonb check (tool_calls is null or jsonb_typeof(tool_calls) = 'array'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  foreign key (conversation_id, user_id)
    references public.conversations (id, user_id) on delete cascade
);
create index messages_conversation_id_idx on public.messages (conversation_id, created_at, id);
create index messages_user_id_idx on public.messages (user_id, created_at);

create trigger conversations_set_updated_at before update on public.conversations
  for each row execute function private.set_updated_at();
-- A conversation with an agent needs the agent to be one the user can see (a member).
create trigger conversations_agent_visible
  before insert or update of agent_id on public.conversations
  for each row execute function private.require_visible_reference('agent_id', 'public.agents');

alter table public.conversations enable row level security;
alter table public.conversations force row level security;
alter table public.messages enable row level security;
alter table public.messages force row level security;
grant select on public.conversations, public.messages to anon;
grant select, insert, update, delete on public.conversations, public.messages
  to authenticated, service_role;

create policy "Users can view their own conversations"
  on public.conversations for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can create their own conversations"
  on public.conversations for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own conversations"
  on public.conversations for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own conversations"
  on public.conversations for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage conversations"
  on public.conversations for all to service_role
  using (true) with check (true);

create policy "Users can view their own messages"
  on public.messages for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can write their own messages"
  on public.messages for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can edit their own messages"
  on public.messages for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own messages"
  on public.messages for delete to authenticated
  using (user_id = (select auth.uid()));
create policy "Server jobs can manage messages"
  on public.messages for all to service_role
  using (true) with check (true);
