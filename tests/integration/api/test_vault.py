"""The BYOK vault: envelope encryption bound to its row, keys that never come back out,
rotation of the wrapping keys, and the KMS path under moto."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import psycopg
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.errors import ServiceUnavailableError
from agentplane.settings import Settings
from agentplane.vault.crypto import KmsWrapper, LocalKeyring
from agentplane.vault.service import KeyUnreadableError, MissingKeyError, Vault
from tests.support.api import MakeOrg, Org, User, assert_problem
from tests.support.builders import store_key
from tests.support.database import ProvisionedDatabase

SECRET = "sk-or-v1-0123456789abcdefXYZW"
MATERIAL = ("key_ciphertext", "nonce", "wrapped_data_key", "kek_id")


async def _key_for(
    database: Database, vault: Vault, user: User, org_id: uuid.UUID, provider: str = "openrouter"
) -> str:
    async with database.transaction(Caller.user({"sub": str(user.id)})) as tx:
        return await vault.key_for(
            tx, user_id=user.id, organization_id=org_id, provider=provider, purpose="test"
        )


def _material(admin_url: str, key_id: str) -> dict[str, Any]:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "select key_ciphertext, nonce, wrapped_data_key, kek_id from public.user_keys"
            " where id = %s",
            (key_id,),
        ).fetchone()
    assert row is not None
    return dict(zip(MATERIAL, row, strict=True))


def _copy_material(admin_url: str, source: str, target: str) -> None:
    with psycopg.connect(admin_url) as conn:
        conn.execute(
            "update public.user_keys t set key_ciphertext = s.key_ciphertext, nonce = s.nonce,"
            " wrapped_data_key = s.wrapped_data_key, kek_id = s.kek_id"
            " from public.user_keys s where s.id = %s and t.id = %s",
            (source, target),
        )


@pytest.fixture
def local_vault(settings: Settings) -> Vault:
    """A vault over the same keyring file the app under test uses."""
    return Vault([LocalKeyring.load_or_create(settings.vault_keyring_path)])


async def test_a_key_goes_in_and_only_its_last_four_come_out(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    local_vault: Vault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    org = await make_org()
    stored = await store_key(client, org.member, org, SECRET, label="work")
    assert (stored["provider"], stored["label"], stored["last4"]) == ("openrouter", "work", "XYZW")
    assert "kek_id" not in stored  # which key wraps it is the operator's business
    listed = await client.get("/keys", headers=org.member.headers)
    assert listed.status_code == 200
    # The raw body carries no key material: not the key, not its stored forms
    assert SECRET not in listed.text
    assert SECRET[:-4] not in listed.text
    assert not set(listed.json()["items"][0]) & {
        "key",
        "key_ciphertext",
        "ciphertext",
        "nonce",
        "wrapped_data_key",
    }
    assert [k["id"] for k in listed.json()["items"]] == [stored["id"]]
    # The owner decrypts it; the decrypt is logged with who, which key and why, not the key
    caplog.clear()
    assert await _key_for(database, local_vault, org.member, org.id) == SECRET
    decrypts = [r for r in caplog.records if r.getMessage() == "vault key decrypted"]
    assert [(r.key_id, r.user_id, r.purpose, r.actor_role, r.actor_id) for r in decrypts] == [
        (stored["id"], str(org.member.id), "test", "authenticated", str(org.member.id))
    ]
    assert all(SECRET not in str(vars(r)) for r in caplog.records)
    used = await client.get("/keys", headers=org.member.headers)
    assert used.json()["items"][0]["last_used_at"] is not None
    # Using a key is not editing it
    assert used.json()["items"][0]["updated_at"] == listed.json()["items"][0]["updated_at"]


async def test_keys_are_their_owners_alone(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, local_vault: Vault
) -> None:
    org = await make_org()
    stored = await store_key(client, org.member, org, SECRET)
    for other in (org.owner, org.admin, org.viewer):
        listed = await client.get("/keys", headers=other.headers)
        assert listed.json()["items"] == []
        gone = await client.delete(f"/keys/{stored['id']}", headers=other.headers)
        assert_problem(gone, 404)
        with pytest.raises(MissingKeyError):
            # RLS: even asked for the member's key by id, another user's transaction
            # finds no row
            async with database.transaction(Caller.user({"sub": str(other.id)})) as tx:
                await local_vault.key_for(
                    tx,
                    user_id=org.member.id,
                    organization_id=org.id,
                    provider="openrouter",
                    purpose="test",
                )
    deleted = await client.delete(f"/keys/{stored['id']}", headers=org.member.headers)
    assert deleted.status_code == 204
    assert (await client.get("/keys", headers=org.member.headers)).json()["items"] == []


async def test_a_server_job_uses_the_key_of_the_user_who_owns_the_work(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    local_vault: Vault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    org = await make_org()
    stored = await store_key(client, org.member, org, SECRET)
    caplog.clear()
    async with database.service("mirror report for a test") as tx:
        key = await local_vault.key_for(
            tx,
            user_id=org.member.id,
            organization_id=org.id,
            provider="openrouter",
            purpose="mirror report",
        )
    assert key == SECRET
    # The decrypt is logged as the server job's, for the owner's key and the job's purpose
    decrypts = [r for r in caplog.records if r.getMessage() == "vault key decrypted"]
    assert [(r.key_id, r.user_id, r.purpose, r.actor_role, r.actor_id) for r in decrypts] == [
        (stored["id"], str(org.member.id), "mirror report", "service_role", None)
    ]
    assert all(SECRET not in str(vars(r)) for r in caplog.records)
    with pytest.raises(MissingKeyError) as missing:
        async with database.service("mirror report for a test") as tx:
            await local_vault.key_for(
                tx, user_id=org.member.id, organization_id=org.id, provider="nous", purpose="x"
            )
    assert missing.value.extra == {"provider": "nous"}
    assert "nous" in missing.value.detail


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    local_vault: Vault,
    fresh_db: ProvisionedDatabase,
) -> None:
    org, other_org = await make_org(), await make_org("Other")
    # The member also belongs to the other organization
    resp = await client.post(
        f"/organizations/{other_org.id}/members",
        json={"user_id": str(org.member.id), "role": "member"},
        headers=other_org.owner.headers,
    )
    assert resp.status_code == 201, resp.text
    mine = await store_key(client, org.member, org, SECRET)
    theirs = await store_key(client, org.admin, org, "sk-admin-key-000000")
    elsewhere = await store_key(client, org.member, other_org, "sk-other-org-00000")
    # Another user's row in the same organization
    _copy_material(fresh_db.admin_url, mine["id"], theirs["id"])
    with pytest.raises(KeyUnreadableError):
        await _key_for(database, local_vault, org.admin, org.id)
    # The same user's row in another organization
    _copy_material(fresh_db.admin_url, mine["id"], elsewhere["id"])
    with pytest.raises(KeyUnreadableError):
        await _key_for(database, local_vault, org.member, other_org.id)
    # The original still decrypts
    assert await _key_for(database, local_vault, org.member, org.id) == SECRET


async def test_a_wrong_master_key_does_not_decrypt(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    local_vault: Vault,
    settings: Settings,
) -> None:
    org = await make_org()
    await store_key(client, org.member, org, SECRET)
    keyring = LocalKeyring.load_or_create(settings.vault_keyring_path)
    impostor = LocalKeyring({keyring.current: b"\x01" * 32}, keyring.current)
    with pytest.raises(KeyUnreadableError):
        await _key_for(database, Vault([impostor]), org.member, org.id)
    assert await _key_for(database, local_vault, org.member, org.id) == SECRET


async def test_rotation_rewraps_every_key_and_keeps_each_readable_throughout(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    settings: Settings,
    fresh_db: ProvisionedDatabase,
) -> None:
    # Given keys of several users and organizations under the first master key
    orgs = [await make_org(f"Org {i}") for i in range(3)]
    stored: list[tuple[Org, User, str, dict[str, Any]]] = []
    for i, org in enumerate(orgs):
        for j, user in enumerate((org.owner, org.member)):
            secret = f"sk-rotation-{i}-{j}-{uuid.uuid4().hex}"
            stored.append((org, user, secret, await store_key(client, user, org, secret)))
    before = {s[3]["id"]: _material(fresh_db.admin_url, s[3]["id"]) for s in stored}
    keyring = LocalKeyring.load_or_create(settings.vault_keyring_path)
    old_kek = keyring.current_kek_id

    # When a new master key becomes current and the rotation runs in small batches while
    # the keys are being read
    keyring.add_master_key()
    keyring.save()
    vault = Vault([keyring])
    reads = 0

    async def read_all() -> None:
        nonlocal reads
        for org, user, secret, _ in stored * 3:
            assert await _key_for(database, vault, user, org.id) == secret
            reads += 1

    progress: list[int] = []
    report, _ = await asyncio.gather(
        vault.rotate(database, batch_size=2, progress=progress.append), read_all()
    )

    # Then every data key was re-wrapped, no ciphertext changed, and all stay readable
    assert (report.rewrapped, report.failed) == (len(stored), [])
    assert progress[-1] == len(stored)
    assert reads == len(stored) * 3
    for key_id, old in before.items():
        new = _material(fresh_db.admin_url, key_id)
        assert (new["key_ciphertext"], new["nonce"]) == (old["key_ciphertext"], old["nonce"])
        assert new["wrapped_data_key"] != old["wrapped_data_key"]
        assert (old["kek_id"], new["kek_id"]) == (old_kek, keyring.current_kek_id)
    assert await vault.kek_ids_in_use(database) == {keyring.current_kek_id}
    # And once the old master key is retired, every key still decrypts
    keyring.retire({old_kek.removeprefix("local:")})
    assert list(keyring.keys) == [keyring.current]
    for org, user, secret, _ in stored:
        assert await _key_for(database, vault, user, org.id) == secret
    # A second rotation has nothing to do
    assert (await vault.rotate(database)).rewrapped == 0


async def test_key_bodies_are_validated(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    short = await client.post(
        "/keys", json={"provider": "openrouter", "key": "short"}, headers=org.member.headers
    )
    body = assert_problem(short, 422)
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("key", "too_short")]
    too_long = "sk-" + "k" * 5000
    echoed = await client.post(
        "/keys", json={"provider": "openrouter", "key": too_long}, headers=org.member.headers
    )
    assert_problem(echoed, 422)
    assert too_long not in echoed.text  # a refused key is not echoed back either
    unknown = await client.post(
        "/keys", json={"provider": "acme", "key": SECRET}, headers=org.member.headers
    )
    assert [e["field"] for e in assert_problem(unknown, 422)["errors"]] == ["provider"]
    # One organization: it may be left out; a stranger to the organization is refused
    implied = await client.post(
        "/keys", json={"provider": "nous", "key": SECRET}, headers=org.member.headers
    )
    assert implied.status_code == 201
    assert implied.json()["organization_id"] == str(org.id)
    stranger = await make_org("Stranger")
    refused = await client.post(
        "/keys",
        json={"provider": "nous", "key": SECRET, "organization_id": str(org.id)},
        headers=stranger.owner.headers,
    )
    assert refused.status_code in (403, 404), refused.text


async def test_a_key_that_postgres_cannot_store_is_422_naming_key_and_nothing_is_stored(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    for bad in ("sk-nul\u0000byte-0123", "sk-lone-\ud800-xq7z"):
        resp = await client.post(
            "/keys",
            content=json.dumps({"provider": "openrouter", "key": bad}).encode(),
            headers={**org.member.headers, "content-type": "application/json"},
        )
        body = assert_problem(resp, 422, "validation")
        assert [e["field"] for e in body["errors"]] == ["key"]
        assert "byte-0123" not in resp.text  # the refused key is not echoed back
        assert "xq7z" not in resp.text
    listed = await client.get("/keys", headers=org.member.headers)
    assert listed.json()["items"] == []


# --- KMS, under moto ---------------------------------------------------------------------


@pytest.fixture
def kms() -> Iterator[Any]:
    """A moto KMS client in a fake region."""
    with mock_aws():
        yield boto3.client("kms", region_name="eu-west-1")


async def test_the_kms_path_binds_the_context_and_rotates_with_reencrypt(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    fresh_db: ProvisionedDatabase,
    kms: Any,
) -> None:
    first = kms.create_key(Description="vault v1")["KeyMetadata"]
    second = kms.create_key(Description="vault v2")["KeyMetadata"]
    vault = Vault([KmsWrapper(kms, first["KeyId"])])
    org = await make_org()
    async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
        mine = await vault.store(
            tx,
            user_id=org.member.id,
            organization_id=org.id,
            provider="openrouter",
            key=SECRET,
            label="",
        )
    async with database.transaction(Caller.user({"sub": str(org.admin.id)})) as tx:
        theirs = await vault.store(
            tx,
            user_id=org.admin.id,
            organization_id=org.id,
            provider="openrouter",
            key="sk-admin-key-000000",
            label="",
        )
    assert _material(fresh_db.admin_url, str(mine.id))["kek_id"] == "kms:" + first["Arn"]
    assert await _key_for(database, vault, org.member, org.id) == SECRET
    # The wrapped data key is bound to {organization_id, user_id}: KMS refuses it elsewhere
    _copy_material(fresh_db.admin_url, str(mine.id), str(theirs.id))
    with pytest.raises(KeyUnreadableError):
        await _key_for(database, vault, org.admin, org.id)
    with psycopg.connect(fresh_db.admin_url) as conn:
        conn.execute("delete from public.user_keys where id = %s", (theirs.id,))

    # Rotation to the second KMS key: ReEncrypt, ciphertext untouched, still readable
    before = _material(fresh_db.admin_url, str(mine.id))
    rotated = Vault([KmsWrapper(kms, second["KeyId"])])
    report = await rotated.rotate(database)
    assert report.rewrapped == 1
    assert report.kek_id == "kms:" + second["Arn"]
    after = _material(fresh_db.admin_url, str(mine.id))
    assert after["key_ciphertext"] == before["key_ciphertext"]
    assert after["kek_id"] == "kms:" + second["Arn"]
    assert await _key_for(database, rotated, org.member, org.id) == SECRET
    assert base64.b64encode(SECRET.encode()) not in after["wrapped_data_key"]


async def test_keys_rotate_command_rotates_the_local_master_key(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    settings: Settings,
    fresh_db: ProvisionedDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agentplane import cli
    from agentplane.settings import get_settings

    org = await make_org()
    await store_key(client, org.member, org, SECRET)
    await store_key(client, org.owner, org, "sk-owner-key-0000000")
    old_master = LocalKeyring.load_or_create(settings.vault_keyring_path).current
    monkeypatch.setenv("DATABASE_URL", fresh_db.app_url)
    monkeypatch.setenv("AGENTPLANE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("AGENTPLANE_STAGE", "test")
    get_settings.cache_clear()
    try:
        code = await asyncio.to_thread(cli.main, ["keys", "rotate", "--new-master-key", "--retire"])
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 data keys re-wrapped, 0 failed" in out
    assert "retired 1 master key(s)" in out
    keyring = LocalKeyring.load_or_create(settings.vault_keyring_path)
    assert list(keyring.keys) == [keyring.current]
    assert keyring.current != old_master
    vault = Vault([keyring])
    assert await _key_for(database, vault, org.member, org.id) == SECRET
    assert await _key_for(database, vault, org.owner, org.id) == "sk-owner-key-0000000"


async def test_a_running_server_follows_a_rotation_of_the_keyring_file(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, settings: Settings
) -> None:
    # Given a server's vault, loaded before the operator rotates the keyring file
    org = await make_org()
    await store_key(client, org.member, org, SECRET)
    server = Vault([LocalKeyring.load_or_create(settings.vault_keyring_path)])
    assert await _key_for(database, server, org.member, org.id) == SECRET

    # When `keys rotate --new-master-key --retire` runs from another process
    operator_keyring = LocalKeyring.load_or_create(settings.vault_keyring_path)
    old = operator_keyring.current
    operator_keyring.add_master_key()
    operator_keyring.save()
    operator = Vault([operator_keyring])
    assert (await operator.rotate(database)).rewrapped == 1
    operator_keyring.retire({old})
    operator_keyring.save()

    # Then the server still reads the re-wrapped key, and wraps new keys under the new
    # master key (not the retired one)
    assert await _key_for(database, server, org.member, org.id) == SECRET
    fresh = await store_key(client, org.owner, org, "sk-after-rotation-00")
    stored = await operator.kek_counts(database)
    assert stored == {operator_keyring.current_kek_id: 2}
    assert fresh["last4"] == "n-00"


async def test_rotation_waits_for_keys_being_read_rather_than_leaving_them(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    settings: Settings,
    fresh_db: ProvisionedDatabase,
) -> None:
    org = await make_org()
    stored = await store_key(client, org.member, org, SECRET)
    keyring = LocalKeyring.load_or_create(settings.vault_keyring_path)
    keyring.add_master_key()
    keyring.save()
    vault = Vault([keyring])
    # A transaction holds the only key's row (as a decrypt stamping last_used_at does)
    holder = await psycopg.AsyncConnection.connect(fresh_db.admin_url)
    await holder.execute("select 1 from public.user_keys where id = %s for update", (stored["id"],))
    rotation = asyncio.create_task(vault.rotate(database))
    await asyncio.sleep(0.3)
    assert not rotation.done()  # it waits for the row instead of finishing without it
    await holder.rollback()
    await holder.close()
    report = await rotation
    assert (report.rewrapped, report.failed) == (1, [])
    assert await vault.kek_ids_in_use(database) == {keyring.current_kek_id}


async def test_kms_refusals_are_clear_problems_not_500s(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    fresh_db: ProvisionedDatabase,
    kms: Any,
) -> None:
    key = kms.create_key(Description="vault")["KeyMetadata"]
    vault = Vault([KmsWrapper(kms, key["KeyId"])])
    org = await make_org()
    async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
        stored = await vault.store(
            tx,
            user_id=org.member.id,
            organization_id=org.id,
            provider="openrouter",
            key=SECRET,
            label="",
        )
    # KMS is throttling: 503, try again
    throttled = Vault([KmsWrapper(_ThrottledKms(kms), key["KeyId"])])
    with pytest.raises(ServiceUnavailableError):
        await _key_for(database, throttled, org.member, org.id)
    # The wrapping key is gone (deleted in KMS): 409, the key cannot be read any more
    gone = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000"
    with psycopg.connect(fresh_db.admin_url) as conn:
        conn.execute(
            "update public.user_keys set kek_id = %s where id = %s", ("kms:" + gone, stored.id)
        )
    with pytest.raises(KeyUnreadableError) as unreadable:
        await _key_for(database, vault, org.member, org.id)
    assert unreadable.value.status == 409
    # And rotation goes through it without stopping (moto re-encrypts under the blob's
    # own key whatever SourceKeyId says; real KMS refuses, and the row is listed failed)
    report = await vault.rotate(database)
    assert report.rewrapped + len(report.failed) == 1


class _ThrottledKms:
    """A KMS client whose Decrypt is throttled (moto does not throttle)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def decrypt(self, **_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Decrypt"
        )
