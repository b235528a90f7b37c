-- Partial indexes for the heartbeat cron's reaper and the runner protocol, so each step
-- reads only the rows it may change: its work grows with what is stale, not with the
-- tables. (Already there: live sessions by heartbeat, claimed actions by lease, pending
-- actions by TTL, and the approved queue by agent and age.)

-- (d) Approved actions past their approval's expiry, soonest first.
create index agent_actions_approved_expiry_idx on public.agent_actions (approval_expires_at)
  where status = 'approved';

-- (a) and ending a session: the actions a session still holds, when it goes offline.
create index agent_actions_claimed_session_idx on public.agent_actions (session_id)
  where status = 'claimed';
