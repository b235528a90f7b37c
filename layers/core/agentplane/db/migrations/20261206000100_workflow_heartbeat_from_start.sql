-- The dispatcher's first heartbeat of an action wait is due a third of HeartbeatSeconds
-- after the wait starts, not at once: a task that has just begun needs none, and a
-- heartbeat sent in the moment between storing the wait and the interpreter arming the
-- task's heartbeat was answered "invalid token" and closed the wait, so the action's
-- result never reached its run. The open-waits index follows the new order.
drop index public.workflow_waits_open_idx;
create index workflow_waits_open_idx
  on public.workflow_waits ((coalesce(heartbeat_at, created_at)))
  where resolved_at is null;
