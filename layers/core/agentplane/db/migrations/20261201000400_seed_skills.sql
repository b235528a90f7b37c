-- skills with the Mirari seed's columns: `category`, `score`, `template_prompt` (was
-- `instructions`), optional `description`, and status 'suggested' by default beside our
-- draft/active/deprecated/archived (the lifecycle is skills/lifecycle.py's).
-- Pinned by tests/integration/test_seed_conformance.py and test_migrations.py.

alter table public.skills rename column instructions to template_prompt;
alter table public.skills rename constraint skills_instructions_check to skills_template_prompt_check;
alter table public.skills
  alter column template_prompt drop not null,
  alter column template_prompt drop default,
  alter column description drop not null,
  alter column description drop default,
  drop constraint skills_status_check,
  alter column status set default 'suggested',
  add constraint skills_status_check
    check (status in ('suggested', 'draft', 'active', 'deprecated', 'archived')),
  add column category text check (length(category) <= 200),
  add column score real not null default 0
    check (score <> 'NaN' and score not in ('Infinity', '-Infinity'));
