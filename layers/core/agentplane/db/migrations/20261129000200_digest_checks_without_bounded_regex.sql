-- Hex digests are checked without a bounded repetition.
--
-- `x ~ '^[0-9a-f]{64}$'` compiles to 64 chained regex states and costs about 10 us per
-- evaluation here; `length(x) = 64 and x !~ '[^0-9a-f]'` accepts exactly the same
-- strings (64 characters, each a lowercase hex digit) in under 1 us. CHECK constraints
-- run on every INSERT and UPDATE of a row, so the old form cost each action about
-- 90 us over its life: payload_sha256 on each of its three transitions, and hash and
-- prev_hash on each of its four audit events.
--
-- Each constraint is added NOT VALID and then validated. The migration runs as one
-- transaction, so the table stays locked (ACCESS EXCLUSIVE, from the ALTER) until the
-- validation's scan is done: a short stop on these tables while it runs.

alter table public.agent_actions
  drop constraint agent_actions_payload_sha256_check,
  add constraint agent_actions_payload_sha256_check
    check (length(payload_sha256) = 64 and payload_sha256 !~ '[^0-9a-f]') not valid;
alter table public.agent_actions validate constraint agent_actions_payload_sha256_check;

alter table public.agent_action_events
  drop constraint agent_action_events_hash_check,
  add constraint agent_action_events_hash_check
    check (length(hash) = 64 and hash !~ '[^0-9a-f]') not valid,
  drop constraint agent_action_events_prev_hash_check,
  add constraint agent_action_events_prev_hash_check
    check (length(prev_hash) = 64 and prev_hash !~ '[^0-9a-f]') not valid;
alter table public.agent_action_events validate constraint agent_action_events_hash_check;
alter table public.agent_action_events validate constraint agent_action_events_prev_hash_check;

alter table public.agent_runner_tokens
  drop constraint agent_runner_tokens_token_hash_check,
  add constraint agent_runner_tokens_token_hash_check
    check (length(token_hash) = 64 and token_hash !~ '[^0-9a-f]') not valid;
alter table public.agent_runner_tokens validate constraint agent_runner_tokens_token_hash_check;
