-- agent_connections as the Mirari seed has it: `status` defaults to 'offline' and
-- `base_url` is never null.
--
-- Status is presence (online | offline | error), set by how a turn's call went; our
-- user-set active/inactive said nothing of that, so every row starts offline. A named
-- provider's connection without a URL gets the endpoint the chat client used for it.
-- Pinned by tests/integration/test_seed_conformance.py and test_migrations.py.

alter table public.agent_connections drop constraint agent_connections_status_check;
-- A migration, not an edit: updated_at stays.
alter table public.agent_connections disable trigger agent_connections_set_updated_at;
update public.agent_connections set status = 'offline' where status in ('active', 'inactive');
alter table public.agent_connections
  alter column status set default 'offline',
  add constraint agent_connections_status_check check (status in ('online', 'offline', 'error'));

update public.agent_connections
   set base_url = case provider
         when 'openrouter' then 'https://openrouter.ai/api/v1'
         else 'https://inference-api.nousresearch.com/v1'
       end
 where base_url is null;
alter table public.agent_connections enable trigger agent_connections_set_updated_at;
alter table public.agent_connections
  alter column base_url set not null,
  drop constraint agent_connections_custom_needs_base_url;
