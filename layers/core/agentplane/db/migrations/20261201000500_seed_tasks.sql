-- tasks start 'pending', the Mirari seed's default (our 'todo' meant the same and becomes
-- it); in_progress, blocked, done and cancelled stay, and description is optional.
-- Pinned by tests/integration/test_seed_conformance.py and test_migrations.py.

alter table public.tasks drop constraint tasks_status_check;
-- A migration, not an edit: updated_at stays.
alter table public.tasks disable trigger tasks_set_updated_at;
update public.tasks set status = 'pending' where status = 'todo';
alter table public.tasks enable trigger tasks_set_updated_at;
alter table public.tasks
  alter column status set default 'pending',
  add constraint tasks_status_check
    check (status in ('pending', 'in_progress', 'blocked', 'done', 'cancelled')),
  alter column description drop not null,
  alter column description drop default;
