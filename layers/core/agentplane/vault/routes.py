"""/keys: the BYOK vault's contract. Until envelope encryption lands, every call is a 501.

The routes exist so clients, the SAM template and the OpenAPI document already carry the
contract; the caller is still authenticated and the body validated first.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import Field

from agentplane.http.deps import UserDep
from agentplane.http.models import InputModel
from agentplane.http.problems import NotImplementedYetError

router = APIRouter(prefix="/keys", tags=["keys"])

Provider = Literal["hermes", "openrouter", "nous", "custom"]
VAULT_PENDING = "the BYOK vault is not available yet: keys cannot be stored or listed"


class KeyCreate(InputModel):
    """A provider API key to store; it is never returned, only its last four characters."""

    provider: Provider
    key: Annotated[str, Field(min_length=8, max_length=4096)]
    label: Annotated[str, Field(max_length=200)] = ""


@router.post("", status_code=201)
async def store_key(body: KeyCreate, caller: UserDep) -> None:
    """Store a key (501 until the vault lands)."""
    raise NotImplementedYetError(VAULT_PENDING)


@router.get("")
async def list_keys(caller: UserDep) -> None:
    """List your keys, without key material (501 until the vault lands)."""
    raise NotImplementedYetError(VAULT_PENDING)


@router.delete("/{key_id}", status_code=204)
async def delete_key(key_id: UUID, caller: UserDep) -> None:
    """Delete a key (501 until the vault lands)."""
    raise NotImplementedYetError(VAULT_PENDING)
