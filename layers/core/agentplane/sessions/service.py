"""The runner protocol's rules in SQL: sessions, heartbeats, claims, results, releases.

Each function runs in the caller's transaction: a runner's (role agent_runner, whose RLS
sees only its own agent's sessions and actions), a person's for the list of an agent's
sessions, or the heartbeat cron's service-role one for the requeue rule. Every status
change of an action is written to its audit log by a trigger on `agent_actions`, never
here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, NoReturn
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from agentplane.actions.models import Action
from agentplane.actions.service import Refusal
from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_all, fetch_one, fetch_value
from agentplane.errors import ConflictError, NotFoundError
from agentplane.models import JsonObjectIn
from agentplane.sessions.models import (
    ClaimedAction,
    ResultStatus,
    Session,
    SessionCreate,
    SessionStatus,
)

sessions = Table("agent_sessions", Session, "session")

OFFLINE_DETAIL = "session is offline; register a new session"


class SessionNotFoundError(NotFoundError):
    """No such session, or one of another agent's."""


class SessionOfflineError(ConflictError):
    """The reaper (or the runner itself) ended this session; the runner must register anew."""


class StaleFencingTokenError(ConflictError):
    """The claim this token belongs to is over: its lease was lost and the action
    re-queued, claimed again or finished. 409 with the action's `current_status`."""


# The organization comes from the agent row, which RLS shows the runner only for its own
# agent; the insert policy checks agent_id again.
REGISTER = """
insert into public.agent_sessions
  (organization_id, agent_id, runner_token_id, socket_id, metadata)
select organization_id, id, %s, %s, %s
  from public.agents
 where id = %s
returning *
"""


async def register(tx: Tx, agent_id: UUID, token_id: UUID | None, body: SessionCreate) -> Session:
    """A new online session of the runner's agent, on the token it presented."""
    session = await fetch_one(
        tx, Session, REGISTER, (token_id, body.socket_id, Jsonb(body.metadata), agent_id)
    )
    if session is None:
        raise NotFoundError(f"agent {agent_id} not found")
    return session


async def list_sessions(
    tx: Tx, agent_id: UUID, page: PageRequest, status: SessionStatus | None = None
) -> Page[Session]:
    """A page of an agent's sessions, oldest first; 404 if the agent is not visible."""
    await require_visible(tx, "agents", agent_id, "agent")
    return await sessions.page(tx, page, {"agent_id": agent_id, "status": status})


SESSION_EXISTS = "select 1 from public.agent_sessions where id = %s"


async def _explain_session(tx: Tx, session_id: UUID) -> NoReturn:
    """Why a conditional update of a live session touched nothing: 404, or offline."""
    if await fetch_value(tx, SESSION_EXISTS, (session_id,)) is None:
        raise SessionNotFoundError(f"session {session_id} not found")
    raise SessionOfflineError(OFFLINE_DETAIL, session_id=str(session_id))


# By primary key; `is true` keeps the live sessions' partial index out of the plan
# (docs/architecture.md; test_lookup_plans.py).
HEARTBEAT = """
update public.agent_sessions
   set last_heartbeat = now(), status = 'online'
 where id = %s and (status <> 'offline') is true
returning *
"""


async def heartbeat(tx: Tx, session_id: UUID) -> Session:
    """Record a sign of life; 409 once the session is offline, 404 if it is not ours."""
    # One conditional update: a heartbeat racing the reaper either lands first (and the
    # reaper's re-check of last_heartbeat spares the row) or finds it offline.
    session = await fetch_one(tx, Session, HEARTBEAT, (session_id,))
    if session is None:
        await _explain_session(tx, session_id)
    return session


END_SESSION = """
update public.agent_sessions
   set status = 'offline', ended_at = coalesce(ended_at, now())
 where id = %s
returning id
"""


async def end_session(tx: Tx, session_id: UUID) -> None:
    """Take the session offline and requeue what it still holds (an ended session is a
    lost lease). Ending an offline session again is a no-op, so a retry is safe."""
    if await fetch_value(tx, END_SESSION, (session_id,)) is None:
        raise SessionNotFoundError(f"session {session_id} not found")
    await requeue_session_actions(tx, [session_id], skip_locked=False)


# The session check and the claim in one statement (an idle runner's whole poll): the
# session FOR SHARE so the reaper cannot requeue under the claim, rows picked FOR UPDATE
# SKIP LOCKED, the fencing token moved on (docs/architecture.md; test_claim_races.py).
CLAIM = b"""
with session as materialized (
  select status from public.agent_sessions where id = %(session)s for share
), picked as (
  select id
    from public.agent_actions
   where agent_id = %(agent)s
     and status = 'approved'
     and kind = 'tool'
     and approval_expires_at > now()
     and exists (select from session where status <> 'offline')
   order by created_at
   limit %(max)s
     for update skip locked
), claimed as (
  update public.agent_actions a
     set status = 'claimed',
         session_id = %(session)s,
         lease_expires_at = now() + make_interval(secs => %(lease)s),
         fencing_token = a.fencing_token + 1,
         attempt = a.attempt + 1
    from picked
   where a.id = picked.id
  returning a.id, a.agent_id, a.payload, a.payload_sha256, a.decided_at,
            a.approval_expires_at, a.approval_signature, a.risk, a.policy_id,
            a.policy_version, a.fencing_token, a.lease_expires_at, a.attempt, a.created_at
)
select s.status as session_status, c.id, c.agent_id, c.payload, c.payload_sha256,
       c.decided_at as approved_at, c.approval_expires_at, c.approval_signature as signature,
       c.risk, c.policy_id, c.policy_version,
       c.fencing_token, c.lease_expires_at, c.attempt
  from session s
  left join claimed c on true
 order by c.created_at, c.id
"""


async def claim(
    tx: Tx, agent_id: UUID, session_id: UUID, *, max_items: int, lease_seconds: int
) -> list[ClaimedAction]:
    """Lease up to `max_items` approved actions to the session, oldest first."""
    cur = await tx.execute(
        CLAIM,
        {"session": session_id, "agent": agent_id, "max": max_items, "lease": lease_seconds},
    )
    rows = await cur.fetchall()
    # Every row carries the session's status beside what was claimed, oldest first: no
    # row, no session; one row of nulls, nothing claimed.
    if not rows:
        raise SessionNotFoundError(f"session {session_id} not found")
    if rows[0][0] == "offline":
        raise SessionOfflineError(OFFLINE_DETAIL, session_id=str(session_id))
    # The columns after the session's status are named as ClaimedAction's fields, which
    # validates what the runner is handed (an approved row carries its signature: a
    # check constraint), so none of these is null here.
    assert cur.description is not None
    fields = [column.name for column in cur.description[1:]]
    return [
        ClaimedAction.model_validate(dict(zip(fields, row[1:], strict=True)))
        for row in rows
        if row[1] is not None
    ]


async def _explain_fencing(tx: Tx, action_id: UUID, fencing_token: int) -> NoReturn:
    """Why a fenced update of one action touched nothing (see _fencing_refusal)."""
    cur = await tx.execute(
        "select id, status from public.agent_actions where id = %s", (action_id,)
    )
    current = {row[0]: row[1] for row in await cur.fetchall()}
    raise _fencing_refusal(action_id, fencing_token, current).error


async def report_result(
    tx: Tx, action_id: UUID, fencing_token: int, status: ResultStatus, output: JsonObjectIn
) -> Action:
    """Finish a claimed action, only with the current claim's fencing token."""
    finished, refused = await report_results(
        tx, [ResultItem(action_id, fencing_token, status, output)]
    )
    if refused:
        raise refused[0].error
    return finished[0]


class ResultItem(NamedTuple):
    """One result of a batch: the action, its claim's fencing token, how it ended."""

    action_id: UUID
    fencing_token: int
    status: ResultStatus
    output: JsonObjectIn


# The WHERE clause is the fence: a lost lease matches no row (test_batches.py). `is true`
# keeps the rows found by primary key, not through a partial index (docs/architecture.md;
# test_lookup_plans.py); the arrays go in binary (%b), as in DECIDE.
REPORT_RESULTS = b"""
update public.agent_actions a
   set status = r.status, output = r.output, finished_at = now(), lease_expires_at = null
  from unnest(%b::uuid[], %b::bigint[], %b::text[], %b::jsonb[])
         as r(id, fencing_token, status, output)
 where a.id = r.id and a.fencing_token = r.fencing_token and (a.status = 'claimed') is true
returning a.*
"""


async def report_results(
    tx: Tx, results: Sequence[ResultItem]
) -> tuple[list[Action], list[Refusal]]:
    """Finish claimed actions (distinct ids) in one UPDATE, each only with its current
    fencing token; a stale one is refused alone. Returns (finished, refused), each in
    the order given."""
    ids = [r.action_id for r in results]
    by_id = sorted(results, key=lambda r: r.action_id)  # lock order: id, no deadlocks
    reported = await fetch_all(
        tx,
        Action,
        REPORT_RESULTS,
        (
            [r.action_id for r in by_id],
            [r.fencing_token for r in by_id],
            [r.status for r in by_id],
            [Jsonb(r.output) for r in by_id],
        ),
    )
    rows = {a.id: a for a in reported}
    finished = [rows[i] for i in ids if i in rows]
    stale = [r for r in results if r.action_id not in rows]
    if not stale:
        return finished, []
    found = await tx.execute(
        "select id, status from public.agent_actions where id = any(%s)",
        ([r.action_id for r in stale],),
    )
    current = {row[0]: row[1] for row in await found.fetchall()}
    return finished, [_fencing_refusal(r.action_id, r.fencing_token, current) for r in stale]


def _fencing_refusal(action_id: UUID, fencing_token: int, current: dict[UUID, str]) -> Refusal:
    """Why a fenced update touched nothing: 404, or 409 with the action's current status."""
    if action_id not in current:
        return Refusal(action_id, NotFoundError(f"action {action_id} not found"))
    status = current[action_id]
    return Refusal(
        action_id,
        StaleFencingTokenError(
            f"fencing token {fencing_token} is not current for action {action_id}"
            f" ({status}); the lease was lost",
            current_status=status,
        ),
    )


# Fenced like REPORT_RESULTS, and found by primary key the same way.
RELEASE = """
update public.agent_actions
   set status = 'approved', session_id = null, lease_expires_at = null,
       attempt = attempt - 1
 where id = %s and fencing_token = %s and (status = 'claimed') is true
returning *
"""


async def release(tx: Tx, action_id: UUID, fencing_token: int) -> Action:
    """Hand a claimed action back to the queue; the attempt is not counted."""
    action = await fetch_one(tx, Action, RELEASE, (action_id, fencing_token))
    if action is None:
        await _explain_fencing(tx, action_id, fencing_token)
    return action


# The requeue rule for a lost lease (expired, or its session gone): back to 'approved'
# while attempts remain, else 'failed'. The cron skips rows a runner holds right now; a
# runner ending its own session waits for them (test_session_reaper.py).
_REQUEUE = sql.SQL("""
update public.agent_actions a
   set status = case when a.attempt < a.max_attempts then 'approved' else 'failed' end,
       session_id = case when a.attempt < a.max_attempts then null else a.session_id end,
       lease_expires_at = null,
       output = case when a.attempt < a.max_attempts then a.output
                     else jsonb_build_object('error', 'lease expired', 'attempts', a.attempt)
                end,
       finished_at = case when a.attempt < a.max_attempts then null else now() end
  from (
    select id
      from public.agent_actions
     where status = 'claimed' and {which}
     order by {order}
     limit %s
       for update{lock}
  ) lost
 where a.id = lost.id
returning a.status
""")


def _requeue_statement(which: str, order: str, lock: str) -> str:
    """The requeue rule for one way of picking rows, composed once at import."""
    return _REQUEUE.format(
        which=sql.SQL(which), order=sql.SQL(order), lock=sql.SQL(lock)
    ).as_string()


# Parameters: (session ids, limit or None); reads agent_actions_claimed_session_idx.
REQUEUE_BY_SESSION = _requeue_statement("session_id = any(%s)", "session_id", " skip locked")
REQUEUE_BY_SESSION_WAITING = _requeue_statement("session_id = any(%s)", "session_id", "")
# Parameters: (limit,); reads agent_actions_claimed_lease_idx.
REQUEUE_EXPIRED_LEASES = _requeue_statement(
    "lease_expires_at < now()", "lease_expires_at", " skip locked"
)


async def _requeue(tx: Tx, query: str, args: tuple[Any, ...]) -> tuple[int, int]:
    cur = await tx.execute(query, args)
    statuses = [r[0] for r in await cur.fetchall()]
    return statuses.count("approved"), statuses.count("failed")


async def requeue_session_actions(
    tx: Tx, session_ids: list[UUID], *, skip_locked: bool, limit: int | None = None
) -> tuple[int, int]:
    """Apply the requeue rule to what the sessions still hold (all of it, unless
    `limit`); (requeued, failed)."""
    if not session_ids:
        return 0, 0
    query = REQUEUE_BY_SESSION if skip_locked else REQUEUE_BY_SESSION_WAITING
    return await _requeue(tx, query, (session_ids, limit))


async def requeue_expired_leases(tx: Tx, *, limit: int) -> tuple[int, int]:
    """Apply the requeue rule to up to `limit` expired leases; (requeued, failed)."""
    return await _requeue(tx, REQUEUE_EXPIRED_LEASES, (limit,))


# Locks a batch of live sessions, oldest heartbeat first, reading
# agent_sessions_live_heartbeat_idx; the lock re-checks last_heartbeat, so a heartbeat
# that committed meanwhile spares its session. A session holding a doorbell socket pings
# only inside API Gateway's 10 minute idle timeout (its socket's close takes it offline
# at once), so it is stale only after SOCKET_STALE_AFTER_SECONDS. Parameters:
# (stale_after_seconds, socket_stale_after_seconds, limit).
SOCKET_STALE_AFTER_SECONDS = 660
OFFLINE_STALE_SESSIONS = """
update public.agent_sessions s
   set status = 'offline', ended_at = now(), socket_connected_at = null
  from (
    select id from public.agent_sessions
     where status <> 'offline'
       and last_heartbeat < now() - make_interval(secs => %s)
       and (socket_connected_at is null
            or last_heartbeat < now() - make_interval(secs => %s))
     order by last_heartbeat
     limit %s
       for update skip locked
  ) stale
 where s.id = stale.id
returning s.id
"""


async def offline_stale_sessions(tx: Tx, stale_after_seconds: int, *, limit: int) -> list[UUID]:
    """Take up to `limit` sessions silent past the threshold offline; their ids."""
    socket_stale = max(stale_after_seconds, SOCKET_STALE_AFTER_SECONDS)
    rows = await tx.execute(OFFLINE_STALE_SESSIONS, (stale_after_seconds, socket_stale, limit))
    return [r[0] for r in await rows.fetchall()]
