"""The identity a database transaction carries (DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

DbRole = Literal["anon", "authenticated", "agent_runner", "service_role"]


def canonical_uuid(value: object) -> UUID | None:
    """The UUID `value` spells in canonical 8-4-4-4-12 lowercase hex, else None.

    UUID() also takes `urn:uuid:`, braces, no hyphens and upper case; the database and
    every comparison of ids as text expect the one canonical form (tests/unit/test_tokens.py).
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


@dataclass(frozen=True)
class Caller:
    """A database role plus the JWT claims that `request.jwt.claims` is set to."""

    role: DbRole
    claims: dict[str, Any] = field(default_factory=dict)
    # Why a service-role context was opened; logged, so server jobs say what they do.
    reason: str | None = None

    @property
    def user_id(self) -> UUID | None:
        """The `sub` claim as a UUID, when the caller is a user."""
        return canonical_uuid(self.claims.get("sub")) if self.role == "authenticated" else None

    @classmethod
    def user(cls, claims: dict[str, Any]) -> Caller:
        """A person, from verified token claims."""
        return cls(role="authenticated", claims={**claims, "role": "authenticated"})

    @classmethod
    def acting_for(cls, user_id: UUID) -> Caller:
        """A server job working as the person who owns the work (a report's owner, a
        run's starter), through RLS as them: it sees only what they see."""
        return cls.user({"sub": str(user_id)})

    @classmethod
    def anon(cls) -> Caller:
        """Nobody in particular."""
        return cls(role="anon", claims={"role": "anon"})

    @classmethod
    def runner(
        cls, agent_id: UUID, session_id: UUID | None = None, token_id: UUID | None = None
    ) -> Caller:
        """A runner acting for one agent, authenticated by its runner token."""
        claims: dict[str, Any] = {"role": "agent_runner", "agent_id": str(agent_id)}
        if session_id is not None:
            claims["session_id"] = str(session_id)
        if token_id is not None:
            claims["token_id"] = str(token_id)
        return cls(role="agent_runner", claims=claims)

    @property
    def agent_id(self) -> UUID | None:
        """The runner's agent, when the caller is a runner."""
        agent = self.claims.get("agent_id")
        return UUID(agent) if isinstance(agent, str) and self.role == "agent_runner" else None

    @property
    def token_id(self) -> UUID | None:
        """The runner token the caller presented, when the caller is a runner."""
        token = self.claims.get("token_id")
        return UUID(token) if isinstance(token, str) and self.role == "agent_runner" else None

    @classmethod
    def service(cls, reason: str) -> Caller:
        """A server job (reaper, mirror, workflow task). Never for something a user asked."""
        if not reason:
            raise ValueError("a service-role context must say why it is opened")
        return cls(role="service_role", claims={"role": "service_role"}, reason=reason)
