-- templates with the Mirari seed's columns: `author_id` (was `user_id`), `payload` =
-- {skills, seed_memory} (was `bundle` with `memory`; stored ones are rewritten), and
-- `category`. The install function's body is text, so it is created again.
-- Pinned by tests/integration/test_seed_conformance.py and test_migrations.py.

alter table public.templates rename column user_id to author_id;
alter index public.templates_user_id_idx rename to templates_author_id_idx;
alter table public.templates rename constraint templates_user_id_fkey to templates_author_id_fkey;

alter table public.templates rename column bundle to payload;
alter table public.templates rename constraint templates_bundle_check to templates_payload_check;
alter table public.templates alter column payload drop default;

-- The rewrite is a migration, not an edit: updated_at stays. Lists and items that are not
-- what the API wrote (a client may have written past it) are kept as they are.
alter table public.templates disable trigger templates_set_updated_at;
update public.templates t
   set payload = (t.payload - 'skills' - 'memory') || jsonb_build_object(
         'skills', case when jsonb_typeof(t.payload -> 'skills') = 'array' then (
           select coalesce(jsonb_agg(
                    case when jsonb_typeof(s) = 'object' and s ? 'instructions'
                         then (s - 'instructions')
                              || jsonb_build_object('template_prompt', s -> 'instructions')
                         else s end
                    order by n), '[]')
             from jsonb_array_elements(t.payload -> 'skills') with ordinality as e (s, n))
           else coalesce(t.payload -> 'skills', '[]') end,
         'seed_memory', case when jsonb_typeof(t.payload -> 'memory') = 'array' then (
           select coalesce(jsonb_agg(
                    case when jsonb_typeof(m) = 'object'
                         then (m - 'kind' - 'importance')
                              || case when m ? 'kind'
                                      then jsonb_build_object('category', m -> 'kind')
                                      else '{}' end
                              || case when m ? 'importance'
                                      then jsonb_build_object('strength', m -> 'importance')
                                      else '{}' end
                         else m end
                    order by n), '[]')
             from jsonb_array_elements(t.payload -> 'memory') with ordinality as e (m, n))
           else coalesce(t.payload -> 'memory', '[]') end)
 where not t.payload ? 'seed_memory';
alter table public.templates enable trigger templates_set_updated_at;

alter table public.templates
  alter column description drop not null,
  alter column description drop default,
  add column category text check (length(category) <= 200);

grant insert (category) on public.templates to authenticated;
grant update (category) on public.templates to authenticated;

create or replace function private.record_template_install(template_id uuid) returns integer
  language sql volatile security definer
  set search_path = ''
  as $$
    -- One conditional UPDATE: its row lock queues concurrent installs. The visibility
    -- test repeats the select policy of public.templates, which the owner bypasses.
    update public.templates t
       set installs = t.installs + 1
     where t.id = record_template_install.template_id
       and (t.is_public or t.author_id = (select auth.uid()))
    returning t.installs
  $$;
