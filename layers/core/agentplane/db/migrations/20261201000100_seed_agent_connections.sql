-- agent_connections as the Mirari seed has it: status defaults to 'offline' (presence, set
-- by how a turn's call went; the old active/inactive said nothing of it) and base_url is
-- never null (a named provider's rows get its public endpoint).
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
