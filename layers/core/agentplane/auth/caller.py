"""The identity a database transaction carries (DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

DbRole = Literal["anon", "authenticated", "agent_runner", "service_role"]


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
        sub = self.claims.get("sub")
        return UUID(sub) if isinstance(sub, str) and self.role == "authenticated" else None

    @classmethod
    def user(cls, claims: dict[str, Any]) -> Caller:
        """A person, from verified token claims."""
        return cls(role="authenticated", claims={**claims, "role": "authenticated"})

    @classmethod
    def anon(cls) -> Caller:
        """Nobody in particular."""
        return cls(role="anon", claims={"role": "anon"})

    @classmethod
    def runner(cls, agent_id: UUID, session_id: UUID | None = None) -> Caller:
        """A runner acting for one agent, authenticated by its runner token."""
        claims: dict[str, Any] = {"role": "agent_runner", "agent_id": str(agent_id)}
        if session_id is not None:
            claims["session_id"] = str(session_id)
        return cls(role="agent_runner", claims=claims)

    @classmethod
    def service(cls, reason: str) -> Caller:
        """A server job (reaper, mirror, workflow task). Never for something a user asked."""
        if not reason:
            raise ValueError("a service-role context must say why it is opened")
        return cls(role="service_role", claims={"role": "service_role"}, reason=reason)
