-- Conversations and mirror reports name their connection `agent_connection_id`, as the
-- seed does; a report outlives its connection (the seed's `on delete set null`). The
-- composite keys with user_id stay: a row points only at its owner's own connection.
-- Pinned by tests/integration/test_seed_conformance.py and test_migrations.py.

alter table public.conversations rename column connection_id to agent_connection_id;
alter index public.conversations_connection_id_idx rename to conversations_agent_connection_id_idx;

-- The seed's title is optional text with no default.
alter table public.conversations
  alter column title drop not null,
  alter column title drop default;

alter table public.mirror_reports rename column connection_id to agent_connection_id;
alter index public.mirror_reports_connection_id_idx rename to mirror_reports_agent_connection_id_idx;
alter index public.mirror_reports_one_open_per_connection
  rename to mirror_reports_one_open_per_agent_connection;
alter table public.mirror_reports
  alter column agent_connection_id drop not null,
  drop constraint mirror_reports_connection_id_user_id_fkey,
  add constraint mirror_reports_agent_connection_id_user_id_fkey
    foreign key (agent_connection_id, user_id)
    references public.agent_connections (id, user_id) on delete set null (agent_connection_id),
  add column title text check (length(title) <= 500);

alter table public.conversations rename constraint conversations_connection_id_user_id_fkey
  to conversations_agent_connection_id_user_id_fkey;
