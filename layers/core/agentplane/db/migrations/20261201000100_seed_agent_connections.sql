-- agent_connections as the Mirari seed has it: `status` defaults to 'offline' and
-- `base_url` is never null.
--
-- Status is presence, as the seed's front end shows it (online | offline | error); our
-- former user-set values map to it: active -> online, inactive -> offline. A connection
-- of a named provider without a URL gets that provider's public endpoint, the one the
-- chat client used for it (connections/models.py DEFAULT_BASE_URLS), so every row now
-- says where it sends requests. A custom provider always had one (the dropped check).
-- Pinned by tests/integration/test_seed_conformance.py.

alter table public.agent_connections drop constraint agent_connections_status_check;
update public.agent_connections
   set status = case status when 'active' then 'online' when 'inactive' then 'offline' else status end
 where status in ('active', 'inactive');
alter table public.agent_connections
  alter column status set default 'offline',
  add constraint agent_connections_status_check check (status in ('online', 'offline', 'error'));

update public.agent_connections
   set base_url = case provider
         when 'openrouter' then 'https://openrouter.ai/api/v1'
         else 'https://inference-api.nousresearch.com/v1'
       end
 where base_url is null;
alter table public.agent_connections
  alter column base_url set not null,
  drop constraint agent_connections_custom_needs_base_url;
