"""The BYOK vault: store, list, delete and use provider keys; rotate the wrapping keys.

Every read of a key runs in the caller's transaction, so RLS decides whose keys it can
see: a person sees only their own; a server job (service role) uses the key of the user
who owns the work, and says why. Each decrypt is logged with who, which key and why,
never with the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

from psycopg import sql

from agentplane.db.database import Database
from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.db.rows import Tx, fetch_one, fetch_value
from agentplane.errors import (
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationProblemError,
)
from agentplane.observability import logger
from agentplane.vault.crypto import (
    KeyContext,
    KeyWrapper,
    UnknownKekError,
    VaultDecryptError,
    VaultUnavailableError,
    decrypt_secret,
    encrypt_secret,
    secret_aad,
)
from agentplane.vault.models import KeyInfo

# Described, never the material: the columns of a listing are spelled out.
KEY_INFO_COLUMNS = (
    "select id, organization_id, provider, label, last4, created_at, updated_at,"
    " last_used_at from public.user_keys"
)
STORE_KEY = b"""
insert into public.user_keys
  (id, organization_id, user_id, provider, label, key_ciphertext, nonce,
   wrapped_data_key, kek_id, last4)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
returning id, organization_id, provider, label, last4, created_at,
          updated_at, last_used_at
"""
DELETE_KEY = "delete from public.user_keys where id = %s"
# The newest key; current_user and auth.uid() say who decrypts, for the log.
KEY_FOR = """
select id, key_ciphertext, nonce, wrapped_data_key, kek_id,
       current_user::text, auth.uid()
  from public.user_keys
 where user_id = %s and organization_id = %s and provider = %s
 order by created_at desc, id desc
 limit 1
"""
STAMP_LAST_USED = "update public.user_keys set last_used_at = now() where id = %s"
ONLY_ORGANIZATION = "select id from public.organizations order by created_at limit 2"


# Keys not yet under the target KEK, a batch in id order; the first pass skips rows
# someone holds, the last one waits for them (test_vault.py,
# test_rotation_waits_for_keys_being_read_rather_than_leaving_them).
_ROTATION_BATCH = sql.SQL("""
select id, organization_id, user_id, wrapped_data_key, kek_id
  from public.user_keys
 where kek_id <> %s and not (id = any(%s))
 order by id
 limit %s
   for update{skip}
""")
ROTATION_BATCH = _ROTATION_BATCH.format(skip=sql.SQL(" skip locked"))
ROTATION_BATCH_WAITING = _ROTATION_BATCH.format(skip=sql.SQL(""))
REWRAP = """
update public.user_keys k
   set wrapped_data_key = r.wrapped, kek_id = r.kek_id
  from unnest(%s::uuid[], %s::bytea[], %s::text[]) as r(id, wrapped, kek_id)
 where k.id = r.id
"""
KEK_COUNTS = "select kek_id, count(*) from public.user_keys group by kek_id"
ROTATION_LEFT = (
    "select exists (select 1 from public.user_keys where kek_id <> %s and not (id = any(%s)))"
)


class MissingKeyError(ConflictError):
    """The user has no key for the provider the work needs (409, names the provider)."""


class KeyUnreadableError(ConflictError):
    """A stored key no longer decrypts (its wrapping key is gone or the row was altered)."""


@dataclass(frozen=True)
class SealedSecret:
    """A secret as stored: its ciphertext and nonce, the wrapped data key, the KEK id."""

    ciphertext: bytes
    nonce: bytes
    wrapped_data_key: bytes
    kek_id: str


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    rewrapped: int
    failed: list[tuple[UUID, str]]
    kek_id: str


class Vault:
    """Envelope encryption over `user_keys`: the first wrapper wraps new keys and is the
    target of rotation; any wrapper that knows a row's kek_id unwraps it."""

    def __init__(self, wrappers: list[KeyWrapper]) -> None:
        if not wrappers:
            raise ValueError("the vault needs at least one key wrapper")
        self.wrappers = wrappers

    @property
    def current(self) -> KeyWrapper:
        """The wrapper new keys are wrapped with."""
        return self.wrappers[0]

    def _wrapper_for(self, kek_id: str) -> KeyWrapper:
        for wrapper in self.wrappers:
            if wrapper.handles(kek_id):
                return wrapper
        raise UnknownKekError(f"no key wrapper for {kek_id!r} is configured")

    # --- other secrets of the server's ------------------------------------------------

    async def seal(self, context: KeyContext, plaintext: str, aad: bytes) -> SealedSecret:
        """Envelope-encrypt a secret the server must read back later (a webhook's signing
        secret), under a fresh data key wrapped with `context`."""
        data_key, wrapped, kek_id = await asyncio.to_thread(self.current.new_data_key, context)
        nonce, ciphertext = encrypt_secret(data_key, plaintext, aad)
        return SealedSecret(ciphertext, nonce, wrapped, kek_id)

    async def open(self, context: KeyContext, sealed: SealedSecret, aad: bytes) -> str:
        """The plaintext of a sealed secret (VaultDecryptError if anything differs)."""
        wrapper = self._wrapper_for(sealed.kek_id)
        data_key = await asyncio.to_thread(
            wrapper.unwrap, sealed.wrapped_data_key, sealed.kek_id, context
        )
        return decrypt_secret(data_key, sealed.nonce, sealed.ciphertext, aad)

    # --- people -------------------------------------------------------------------------

    async def store(
        self,
        tx: Tx,
        *,
        user_id: UUID,
        organization_id: UUID | None,
        provider: str,
        key: str,
        label: str,
    ) -> KeyInfo:
        """Encrypt and insert a key of `user_id` (RLS checks the membership)."""
        org = organization_id or await _only_organization(tx)
        key_id = uuid4()
        context = KeyContext(org, user_id)
        data_key, wrapped, kek_id = await asyncio.to_thread(self.current.new_data_key, context)
        nonce, ciphertext = encrypt_secret(data_key, key, secret_aad(key_id, context, provider))
        row = await fetch_one(
            tx,
            KeyInfo,
            STORE_KEY,
            (key_id, org, user_id, provider, label, ciphertext, nonce, wrapped, kek_id, key[-4:]),
        )
        assert row is not None  # an RLS refusal raises; it never returns no row
        logger.info(
            "vault key stored",
            extra={
                "key_id": str(key_id),
                "user_id": str(user_id),
                "organization_id": str(org),
                "provider": provider,
                "kek_id": kek_id,
            },
        )
        return row

    async def list(
        self,
        tx: Tx,
        page: PageRequest,
        provider: str | None = None,
        organization_id: UUID | None = None,
    ) -> Page[KeyInfo]:
        """The caller's keys, described (RLS shows a person only their own)."""
        given = {"provider": provider, "organization_id": organization_id}
        filters = {c: v for c, v in given.items() if v is not None}
        return await fetch_page(
            tx,
            KeyInfo,
            KEY_INFO_COLUMNS,
            page,
            [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in filters],
            list(filters.values()),
        )

    async def delete(self, tx: Tx, key_id: UUID) -> None:
        """Delete one of the caller's keys; 404 for anyone else's."""
        cur = await tx.execute(DELETE_KEY, (key_id,))
        if cur.rowcount == 0:
            raise NotFoundError(f"key {key_id} not found")

    # --- use ----------------------------------------------------------------------------

    async def key_for(
        self,
        tx: Tx,
        *,
        user_id: UUID,
        organization_id: UUID,
        provider: str,
        purpose: str,
    ) -> str:
        """The newest key of `user_id` for `provider` in the organization, decrypted.

        In a person's transaction RLS lets only their own keys through; a server job
        (service role) passes the id of the user who owns the work. 409 naming the
        provider when there is none."""
        cur = await tx.execute(KEY_FOR, (user_id, organization_id, provider))
        row = await cur.fetchone()
        if row is None:
            raise MissingKeyError(
                f"no {provider} key: store one with POST /keys"
                f" (provider {provider!r}) in organization {organization_id}",
                provider=provider,
            )
        # Who decrypts, as the database sees the transaction: the owner in a person's
        # turn, `service_role` (no user) in a server job working for the owner.
        key_id, ciphertext, nonce, wrapped, kek_id, actor_role, actor_id = row
        context = KeyContext(organization_id, user_id)
        try:
            wrapper = self._wrapper_for(kek_id)
            data_key = await asyncio.to_thread(wrapper.unwrap, bytes(wrapped), kek_id, context)
            plaintext = decrypt_secret(
                data_key, bytes(nonce), bytes(ciphertext), secret_aad(key_id, context, provider)
            )
        except VaultUnavailableError as exc:
            logger.warning(
                "vault key cannot be decrypted right now",
                extra={"key_id": str(key_id), "kek_id": kek_id, "error": str(exc)},
            )
            raise ServiceUnavailableError(
                "the key service is unavailable; try again shortly", provider=provider
            ) from exc
        except VaultDecryptError as exc:
            logger.error(
                "vault key does not decrypt",
                extra={"key_id": str(key_id), "user_id": str(user_id), "kek_id": kek_id,
                       "purpose": purpose, "error": str(exc)},
            )  # fmt: skip
            raise KeyUnreadableError(
                f"your {provider} key {key_id} can no longer be read; store it again",
                provider=provider,
                key_id=str(key_id),
            ) from exc
        await tx.execute(STAMP_LAST_USED, (key_id,))
        logger.info(
            "vault key decrypted",
            extra={
                "key_id": str(key_id),
                "user_id": str(user_id),
                "organization_id": str(organization_id),
                "provider": provider,
                "kek_id": kek_id,
                "purpose": purpose,
                "actor_role": actor_role,
                "actor_id": None if actor_id is None else str(actor_id),
            },
        )
        return plaintext

    # --- rotation -----------------------------------------------------------------------

    async def rotate(
        self,
        database: Database,
        *,
        batch_size: int = 100,
        progress: Callable[[int], None] | None = None,
    ) -> RotationReport:
        """Re-wrap every data key not under the current KEK, a batch per transaction.

        The secrets' ciphertexts are not touched; readers keep working throughout, since
        every old KEK stays available until the rotation is over. Rows locked by someone
        else are skipped and picked up by the next batch."""
        target = self.current.current_kek_id
        rewrapped = 0
        failed: list[tuple[UUID, str]] = []
        # First pass: skip rows someone holds (a decrypt stamping last_used_at) and keep
        # going; once only such rows are left, wait for them, so none is left behind.
        waiting = False
        while True:
            skip = [f[0] for f in failed]
            async with database.service("vault rotation: re-wrapping data keys") as tx:
                cur = await tx.execute(
                    ROTATION_BATCH_WAITING if waiting else ROTATION_BATCH,
                    (target, skip, batch_size),
                )
                rows = await cur.fetchall()
                if not rows:
                    if waiting:
                        break
                    if not await fetch_value(tx, ROTATION_LEFT, (target, skip)):
                        break
                    waiting = True
                    continue
                ids: list[UUID] = []
                wraps: list[bytes] = []
                keks: list[str] = []
                for key_id, org, user, wrapped, kek_id in rows:
                    context = KeyContext(org, user)
                    try:
                        wrapper = self._wrapper_for(kek_id)
                        if wrapper is self.current:
                            new_wrap, new_kek = await asyncio.to_thread(
                                wrapper.rewrap, bytes(wrapped), kek_id, context
                            )
                        else:  # across wrappers (local to KMS): unwrap, then wrap anew
                            data_key = await asyncio.to_thread(
                                wrapper.unwrap, bytes(wrapped), kek_id, context
                            )
                            new_wrap, new_kek = await asyncio.to_thread(
                                self.current.wrap, data_key, context
                            )
                    except VaultDecryptError as exc:
                        failed.append((key_id, str(exc)))
                        logger.error(
                            "vault rotation could not re-wrap a key",
                            extra={"key_id": str(key_id), "kek_id": kek_id, "error": str(exc)},
                        )
                        continue
                    ids.append(key_id)
                    wraps.append(new_wrap)
                    keks.append(new_kek)
                await tx.execute(REWRAP, (ids, wraps, keks))
            rewrapped += len(ids)
            if progress is not None:
                progress(rewrapped)
        logger.info(
            "vault rotation finished",
            extra={"rewrapped": rewrapped, "failed": len(failed), "kek_id": target},
        )
        return RotationReport(rewrapped, failed, target)

    async def kek_counts(self, database: Database) -> dict[str, int]:
        """How many keys each kek_id wraps."""
        async with database.service("vault rotation: which wrapping keys are in use") as tx:
            cur = await tx.execute(KEK_COUNTS)
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def kek_ids_in_use(self, database: Database) -> set[str]:
        """Every kek_id some row is wrapped under."""
        return set(await self.kek_counts(database))


async def _only_organization(tx: Tx) -> UUID:
    """The caller's one organization, when the body names none."""
    cur = await tx.execute(ONLY_ORGANIZATION)
    rows = await cur.fetchall()
    if len(rows) == 1:
        org: UUID = rows[0][0]
        return org
    raise ValidationProblemError(
        [
            {
                "field": "organization_id",
                "in": "body",
                "rule": "missing",
                "message": "required: you belong to "
                + ("no organization" if not rows else "several organizations"),
            }
        ]
    )
