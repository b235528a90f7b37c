"""GET /me: who the token says you are, and the organizations you belong to."""

from __future__ import annotations

from fastapi import APIRouter

from agentplane.auth import service
from agentplane.auth.models import Me
from agentplane.http.deps import UserDep, UserTx

router = APIRouter(tags=["identity"])


@router.get("/me", response_model=Me)
async def me(caller: UserDep, tx: UserTx) -> Me:
    """The verified identity and its memberships (read through RLS as the caller)."""
    memberships = await service.memberships(tx)
    assert caller.user_id is not None
    email = caller.claims.get("email")
    return Me(
        user_id=caller.user_id,
        email=email if isinstance(email, str) else None,
        organizations=memberships,
    )
