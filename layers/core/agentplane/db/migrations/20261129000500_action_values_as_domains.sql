-- The rules on single values of the action queue become domains: checked when a value is
-- written to its column, instead of on every UPDATE of the row.
--
-- PostgreSQL evaluates every CHECK constraint of a table for each row an UPDATE touches,
-- whatever columns the UPDATE sets, and reads each constraint's expression back from its
-- catalog text once per statement. So every status change of an action also re-checked
-- the payload's shape (three jsonb_typeof calls), its digest's alphabet and the status
-- list, and a single approve parsed all ten expressions again. A domain's check runs
-- only when a value is stored in a column of that type (an INSERT, or an UPDATE that sets
-- that column), and its parsed expression stays in the type cache. The accepted values
-- are those of the constraints they replace, with one gap closed: the payload check let
-- an object without `tool` through (jsonb_typeof of a missing key is null, and a CHECK
-- passes on null). The API never wrote one (its model requires a tool name).
--
-- Rules across columns (an approved or claimed action carries a signature; a claimed one
-- a lease and a session) and the cheap bounds stay table constraints.
--
-- The two triggers that name a column (`update of status`, `update of payload,
-- payload_sha256`) must be dropped around the type change and are created again as they
-- were. The change needs no rewrite (each domain is over the column's own type), but the
-- tables are locked while their rows are checked and their indexes rebuilt.

create domain public.sha256_hex as text
  constraint sha256_hex_check check (length(value) = 64 and value !~ '[^0-9a-f]');
comment on domain public.sha256_hex is 'A SHA-256 digest: 64 lowercase hex digits.';

create domain public.action_status as text
  constraint action_status_check check (value in (
    'pending', 'approved', 'rejected', 'expired', 'cancelled', 'claimed', 'succeeded',
    'failed'));
comment on domain public.action_status is 'Where an action is in its life (DESIGN.md §4).';

create domain public.action_payload as jsonb
  constraint action_payload_check check (
    jsonb_typeof(value) = 'object'
    and coalesce(jsonb_typeof(value -> 'tool'), 'missing') = 'string'
    and jsonb_typeof(coalesce(value -> 'args', '{}'::jsonb)) = 'object');
comment on domain public.action_payload is 'What an agent wants done: {tool, args}.';

drop trigger agent_actions_transition on public.agent_actions;
drop trigger agent_actions_payload_immutable on public.agent_actions;

alter table public.agent_actions
  drop constraint agent_actions_status_check,
  drop constraint agent_actions_payload_check,
  drop constraint agent_actions_payload_sha256_check,
  alter column status type public.action_status,
  alter column payload type public.action_payload,
  alter column payload_sha256 type public.sha256_hex;

create trigger agent_actions_transition
  before update of status on public.agent_actions
  for each row execute function private.check_action_transition();
create trigger agent_actions_payload_immutable
  before update of payload, payload_sha256 on public.agent_actions
  for each row execute function private.refuse_payload_change();

alter table public.agent_action_events
  drop constraint agent_action_events_hash_check,
  drop constraint agent_action_events_prev_hash_check,
  alter column hash type public.sha256_hex,
  alter column prev_hash type public.sha256_hex;

alter table public.agent_runner_tokens
  drop constraint agent_runner_tokens_token_hash_check,
  alter column token_hash type public.sha256_hex;
