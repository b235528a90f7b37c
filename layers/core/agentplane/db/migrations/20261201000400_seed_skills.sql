-- skills with the Mirari seed's columns and lifecycle. New: `category`, `score` (how well
-- the skill does, 0 until measured). `template_prompt` is our former `instructions` (the
-- prompt the skill adds); `version` still counts its changes. `description` and
-- `template_prompt` are optional text, as the seed has them.
--
-- Lifecycle (skills/lifecycle.py): a skill starts `suggested` (the seed's default: what a
-- mirror report or a client proposes) or `draft` (written by hand), is promoted to
-- `active`, then `deprecated`, then `archived`; a deprecated skill can be reinstated,
-- and a suggestion or a draft can be dismissed straight to `archived`.
-- Pinned by tests/integration/test_seed_conformance.py.

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
