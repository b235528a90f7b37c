-- memory_nodes with the Mirari seed's columns: `category` (free text, was `kind`),
-- `strength` (was `importance`) and `source` (where the memory came from).
-- Pinned by tests/integration/test_seed_conformance.py and test_migrations.py.

alter table public.memory_nodes rename column kind to category;
alter table public.memory_nodes
  drop constraint memory_nodes_kind_check,
  alter column category drop not null,
  alter column category drop default,
  add constraint memory_nodes_category_check check (length(category) <= 200);

alter table public.memory_nodes rename column importance to strength;
alter table public.memory_nodes rename constraint memory_nodes_importance_check
  to memory_nodes_strength_check;

alter table public.memory_nodes
  add column source text check (length(source) <= 2000);

-- Recalls (last_used_at) are still not edits; the trigger names the edited columns.
drop trigger memory_nodes_set_updated_at on public.memory_nodes;
create trigger memory_nodes_set_updated_at
  before update of category, label, content, strength, source, metadata, parent_id, connection_id
  on public.memory_nodes
  for each row execute function private.set_updated_at();
