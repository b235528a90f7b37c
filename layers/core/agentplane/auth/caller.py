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
