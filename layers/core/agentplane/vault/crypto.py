"""Envelope encryption of provider keys: AES-256-GCM under a per-secret data key, the data
key wrapped by a key-encryption key (KEK).

- The secret: AES-256-GCM with a fresh 96-bit nonce; the associated data binds the key
  id, user, organization and provider, so a ciphertext copied into another row fails.
- The data key, in AWS: wrapped by KMS with the encryption context `{organization_id,
  user_id}` (`kek_id` = `kms:<key arn>`); re-wrapped under another KMS key with
  `ReEncrypt`, which never hands us the data key.
- The data key, locally: wrapped with AES-256-GCM under a KEK derived from a master key
  of the keyring file through HKDF-SHA256, salted with the organization id
  (`kek_id` = `local:<master key id>`); the context is the associated data.

Rotation changes only `wrapped_data_key` and `kek_id`; the secret's ciphertext stays.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
HKDF_INFO = b"agentplane vault: data-key wrapping key v1"
LOCAL_PREFIX = "local:"
KMS_PREFIX = "kms:"


class VaultDecryptError(Exception):
    """A secret or its data key does not decrypt: wrong key, wrong row, or tampered."""


class UnknownKekError(VaultDecryptError):
    """The row names a key-encryption key this process does not have."""


class VaultUnavailableError(Exception):
    """KMS cannot answer right now (throttled, unavailable); a retry may succeed."""


TRANSIENT_KMS_ERRORS = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "ServiceUnavailableException",
        "RequestLimitExceeded",
    }
)


@dataclass(frozen=True)
class KeyContext:
    """Who a secret belongs to: the KMS encryption context and the wrapping AAD."""

    organization_id: UUID
    user_id: UUID

    def as_kms(self) -> dict[str, str]:
        """The KMS encryption context."""
        return {"organization_id": str(self.organization_id), "user_id": str(self.user_id)}

    def as_aad(self) -> bytes:
        """The same context as associated data of a local wrap."""
        return json.dumps(self.as_kms(), sort_keys=True, separators=(",", ":")).encode()


def secret_aad(key_id: UUID, context: KeyContext, provider: str) -> bytes:
    """Associated data of a secret's ciphertext: its row id, owner and provider."""
    return "|".join(
        (
            "agentplane/user-key/v1",
            str(key_id),
            str(context.user_id),
            str(context.organization_id),
            provider,
        )
    ).encode()


def encrypt_secret(data_key: bytes, plaintext: str, aad: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext) of `plaintext` under `data_key`, with a fresh random nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(data_key).encrypt(nonce, plaintext.encode("utf-8"), aad)


def decrypt_secret(data_key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> str:
    """The plaintext, or VaultDecryptError if anything does not match."""
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad).decode("utf-8")
    except (InvalidTag, ValueError) as exc:
        raise VaultDecryptError("the key does not decrypt for this row") from exc


class KeyWrapper(Protocol):
    """What wraps data keys: the local keyring or KMS."""

    @property
    def current_kek_id(self) -> str:
        """The kek_id new keys are wrapped under."""
        ...

    def handles(self, kek_id: str) -> bool:
        """True when this wrapper can unwrap under `kek_id`."""
        ...

    def new_data_key(self, context: KeyContext) -> tuple[bytes, bytes, str]:
        """(plaintext data key, wrapped data key, kek_id)."""
        ...

    def wrap(self, data_key: bytes, context: KeyContext) -> tuple[bytes, str]:
        """An existing data key wrapped under the current KEK: (wrapped, kek_id)."""
        ...

    def unwrap(self, wrapped: bytes, kek_id: str, context: KeyContext) -> bytes:
        """The plaintext data key."""
        ...

    def rewrap(self, wrapped: bytes, kek_id: str, context: KeyContext) -> tuple[bytes, str]:
        """The data key wrapped under the current KEK: (wrapped, kek_id)."""
        ...


# --- local keyring -----------------------------------------------------------------------


class LocalKeyring:
    """Master keys in a JSON file (mode 0600) under the data directory: the current one
    wraps, any of them unwraps, so rotation needs no downtime."""

    def __init__(self, keys: dict[str, bytes], current: str, path: Path | None = None) -> None:
        if current not in keys:
            raise ValueError(f"the current master key {current!r} is not in the keyring")
        self.keys = dict(keys)
        self.current = current
        self.path = path
        self._loaded_mtime: int | None = None

    @classmethod
    def load_or_create(cls, path: Path) -> LocalKeyring:
        """The keyring at `path`, created with one new master key on first use."""
        if path.exists():
            keyring = cls({"_": b""}, "_", path)
            keyring._load()
            return keyring
        keyring = cls.generate(path)
        keyring.save()
        return keyring

    def _load(self) -> None:
        assert self.path is not None
        mtime = self.path.stat().st_mtime_ns
        data = json.loads(self.path.read_text())
        self.keys = {k: base64.b64decode(v) for k, v in data["keys"].items()}
        self.current = data["current"]
        self._loaded_mtime = mtime

    def refresh(self) -> None:
        """Re-read the file if `agentplane keys rotate` changed it since: a running
        server then wraps under the new master key and reads rows re-wrapped under it."""
        if self.path is None or self._loaded_mtime is None:
            return
        try:
            changed = self.path.stat().st_mtime_ns != self._loaded_mtime
        except FileNotFoundError:
            return
        if changed:
            self._load()

    @classmethod
    def generate(cls, path: Path | None = None) -> LocalKeyring:
        """A keyring of one fresh master key."""
        key_id = secrets.token_hex(8)
        return cls({key_id: os.urandom(32)}, key_id, path)

    def add_master_key(self) -> str:
        """Add a fresh master key and make it current; returns its id."""
        key_id = secrets.token_hex(8)
        self.keys[key_id] = os.urandom(32)
        self.current = key_id
        return key_id

    def retire(self, key_ids: set[str]) -> None:
        """Drop master keys (never the current one)."""
        for key_id in key_ids - {self.current}:
            self.keys.pop(key_id, None)

    def save(self) -> None:
        """Write the keyring atomically, readable by this user only."""
        if self.path is None:
            raise ValueError("this keyring has no file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "current": self.current,
            "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(body, out, indent=2)
        os.replace(tmp, self.path)
        self._loaded_mtime = self.path.stat().st_mtime_ns

    @property
    def current_kek_id(self) -> str:
        """`local:<current master key id>`."""
        self.refresh()
        return LOCAL_PREFIX + self.current

    def handles(self, kek_id: str) -> bool:
        """Local kek ids only."""
        return kek_id.startswith(LOCAL_PREFIX)

    def _kek(self, master_id: str, context: KeyContext) -> AESGCM:
        if master_id not in self.keys:
            self.refresh()
        master = self.keys.get(master_id)
        if master is None:
            raise UnknownKekError(f"master key {master_id!r} is not in the keyring")
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=context.organization_id.bytes,
            info=HKDF_INFO,
        )
        return AESGCM(hkdf.derive(master))

    def wrap(self, data_key: bytes, context: KeyContext) -> tuple[bytes, str]:
        """Wrap under the current master key's KEK for this organization."""
        kek_id = self.current_kek_id  # refreshed: the newest current master key
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._kek(self.current, context).encrypt(nonce, data_key, context.as_aad())
        return nonce + sealed, kek_id

    def new_data_key(self, context: KeyContext) -> tuple[bytes, bytes, str]:
        """A random data key, wrapped under the current master key."""
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped, kek_id = self.wrap(data_key, context)
        return data_key, wrapped, kek_id

    def unwrap(self, wrapped: bytes, kek_id: str, context: KeyContext) -> bytes:
        """The data key; VaultDecryptError for another row's or another master's wrap."""
        kek = self._kek(kek_id.removeprefix(LOCAL_PREFIX), context)
        try:
            return kek.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context.as_aad())
        except (InvalidTag, ValueError) as exc:
            raise VaultDecryptError("the data key does not unwrap for this row") from exc

    def rewrap(self, wrapped: bytes, kek_id: str, context: KeyContext) -> tuple[bytes, str]:
        """Unwrap under the old master key and wrap under the current one, in memory."""
        return self.wrap(self.unwrap(wrapped, kek_id, context), context)


# --- KMS ---------------------------------------------------------------------------------


class KmsWrapper:
    """Data keys from KMS `GenerateDataKey`, bound to `{organization_id, user_id}`."""

    def __init__(self, client: Any, key_id: str) -> None:
        self.client = client
        self.key_id = key_id
        self._current_arn: str | None = None

    @property
    def current_kek_id(self) -> str:
        """`kms:<arn of the configured key>` (resolved once through DescribeKey)."""
        if self._current_arn is None:
            self._current_arn = self.client.describe_key(KeyId=self.key_id)["KeyMetadata"]["Arn"]
        return KMS_PREFIX + self._current_arn

    def handles(self, kek_id: str) -> bool:
        """KMS kek ids only."""
        return kek_id.startswith(KMS_PREFIX)

    def new_data_key(self, context: KeyContext) -> tuple[bytes, bytes, str]:
        """A data key from KMS: plaintext for this call, wrapped for the row."""
        out = self.client.generate_data_key(
            KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=context.as_kms()
        )
        return out["Plaintext"], out["CiphertextBlob"], KMS_PREFIX + out["KeyId"]

    def wrap(self, data_key: bytes, context: KeyContext) -> tuple[bytes, str]:
        """KMS Encrypt of an existing data key (moving a local key into KMS)."""
        out = self.client.encrypt(
            KeyId=self.key_id, Plaintext=data_key, EncryptionContext=context.as_kms()
        )
        return out["CiphertextBlob"], KMS_PREFIX + out["KeyId"]

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """A KMS call whose refusals become vault errors: permanent ones (wrong row,
        disabled or deleted key, no permission) a VaultDecryptError, passing ones
        (throttling, KMS down) a VaultUnavailableError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in TRANSIENT_KMS_ERRORS:
                raise VaultUnavailableError(f"KMS {operation} failed for now: {code}") from exc
            raise VaultDecryptError(f"KMS refused {operation} for this row: {code}") from exc
        except BotoCoreError as exc:
            raise VaultUnavailableError(f"KMS {operation} could not be called: {exc}") from exc

    def unwrap(self, wrapped: bytes, kek_id: str, context: KeyContext) -> bytes:
        """KMS Decrypt with the row's context; a mismatch is a VaultDecryptError."""
        out = self._call(
            "decrypt",
            CiphertextBlob=wrapped,
            EncryptionContext=context.as_kms(),
            KeyId=kek_id.removeprefix(KMS_PREFIX),
        )
        plaintext: bytes = out["Plaintext"]
        return plaintext

    def rewrap(self, wrapped: bytes, kek_id: str, context: KeyContext) -> tuple[bytes, str]:
        """KMS ReEncrypt to the configured key: the data key never leaves KMS."""
        out = self._call(
            "re_encrypt",
            CiphertextBlob=wrapped,
            SourceEncryptionContext=context.as_kms(),
            SourceKeyId=kek_id.removeprefix(KMS_PREFIX),
            DestinationKeyId=self.key_id,
            DestinationEncryptionContext=context.as_kms(),
        )
        return out["CiphertextBlob"], KMS_PREFIX + out["KeyId"]
