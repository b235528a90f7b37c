"""/keys: the BYOK vault. A key goes in once and never comes out; a listing shows its
provider, label, last four characters and dates."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import RuntimeDep, UserDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.vault.models import KeyCreate, KeyInfo, Provider

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", status_code=201, response_model=KeyInfo)
async def store_key(body: KeyCreate, caller: UserDep, tx: UserTx, runtime: RuntimeDep) -> KeyInfo:
    """Store a provider key, envelope-encrypted; only its last four characters return."""
    assert caller.user_id is not None  # UserDep builds only user callers
    return await runtime.vault.store(
        tx,
        user_id=caller.user_id,
        organization_id=body.organization_id,
        provider=body.provider,
        key=body.key.get_secret_value(),
        label=body.label,
    )


@router.get("", response_model=Page[KeyInfo])
async def list_keys(
    tx: UserTx,
    page: PageDep,
    runtime: RuntimeDep,
    provider: Provider | None = None,
    organization_id: UUID | None = None,
) -> Page[KeyInfo]:
    """Your keys, oldest first (`?provider=&organization_id=`), without key material."""
    return await runtime.vault.list(tx, page, provider, organization_id)


@router.delete("/{key_id}", status_code=204, response_class=Response)
async def delete_key(key_id: UUID, tx: UserTx, runtime: RuntimeDep) -> Response:
    """Delete one of your keys (404 for anyone else's)."""
    await runtime.vault.delete(tx, key_id)
    return Response(status_code=204)
