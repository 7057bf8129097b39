"""Channel credentials at rest: Fernet tokens, the key file made once, rotation without downtime, rows no key reads."""

import asyncio
import os
import stat
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlmodel import col

from models.credentials import KEY_FILE_NAME, CredentialsUnreadable, Vault, rotate_stored, vault_for
from models.db import Database
from models.enums import Platform
from models.settings import Settings
from models.tables import Channel, Company, Tenant

SECRET = {"handle": "alice.test", "appPassword": "abcd-efgh-ijkl-mnop", "session": "eyJhbGciOi.secret-session"}


def settings(data_dir: Path, keys: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, channel_keys=keys, _env_file=None)  # type: ignore[call-arg]


def test_a_sealed_credential_reads_back_and_shows_nothing_of_itself() -> None:
    vault = Vault([Fernet.generate_key().decode()])
    token = vault.seal(SECRET)
    assert vault.open(token) == SECRET
    for value in SECRET.values():
        assert value not in token
    assert vault.seal(SECRET) != token  # a fresh IV each time: equal secrets do not look equal at rest


def test_the_key_file_is_made_once_private_and_shared(tmp_path: Path) -> None:
    first = vault_for(settings(tmp_path))
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = first.seal(SECRET)
    # Another process on the machine (another vault from the same settings) reads what the first wrote.
    assert vault_for(settings(tmp_path)).open(token) == SECRET
    assert len([line for line in key_file.read_text().splitlines() if line.strip()]) == 1


async def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    vaults = await asyncio.gather(*(asyncio.to_thread(vault_for, settings(tmp_path)) for _ in range(8)))
    token = vaults[0].seal(SECRET)
    assert all(vault.open(token) == SECRET for vault in vaults)
    left = await asyncio.to_thread(os.listdir, tmp_path)
    assert left == [KEY_FILE_NAME]  # no scratch file left behind


def test_settings_keys_win_over_the_file_and_bad_keys_are_refused(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    vault = vault_for(settings(tmp_path, key))
    assert Vault([key]).open(vault.seal(SECRET)) == SECRET
    assert not (tmp_path / KEY_FILE_NAME).exists()
    with pytest.raises(ValueError, match="Fernet keys"):
        vault_for(settings(tmp_path, "not-a-key"))


def test_rotation_reads_old_and_new_and_writes_new() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Vault([old]).seal(SECRET)
    both = Vault([new, old])
    assert both.open(token) == SECRET
    assert not both.is_current(token)
    rotated = both.rotate(token)
    assert both.is_current(rotated)
    assert Vault([new]).open(rotated) == SECRET
    with pytest.raises(CredentialsUnreadable, match="connect the channel again"):
        Vault([old]).open(rotated)


async def test_rotate_stored_rewrites_every_row_under_the_first_key(db: Database, tenant: Tenant) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Rotation", website="https://rotation.example")
        session.add(company)
        await session.commit()
        channels = [
            Channel(
                tenant_id=tenant.id,
                company_id=company.id,
                platform=platform,
                service="https://pds.example",
                account_id=f"did:plc:{uuid.uuid4().hex}",
                handle="rotation.test",
                credentials=token,
            )
            for platform, token in (
                (Platform.BLUESKY, Vault([old]).seal(SECRET)),
                (Platform.MASTODON, f"lost-key-{uuid.uuid4().hex}"),
            )
        ]
        session.add_all(channels)
        await session.commit()
        ids = [c.id for c in channels]

    both = Vault([new, old])
    counts = await rotate_stored(db, both)
    assert counts["rotated"] >= 1 and counts["unreadable"] >= 1
    async with db.session() as session:
        rows: dict[uuid.UUID, str] = dict(
            (await session.exec(sa.select(Channel.id, Channel.credentials).where(col(Channel.id).in_(ids)))).all()  # type: ignore[call-overload]
        )
    # The readable row is under the new key alone now; the unreadable one is left as it was, never dropped.
    assert Vault([new]).open(rows[ids[0]]) == SECRET
    assert rows[ids[1]].startswith("lost-key-")
    # A second run finds nothing left to do for those rows.
    again = await rotate_stored(db, both)
    assert again["rotated"] == 0


def test_the_key_file_can_hold_a_rotation(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Vault([old]).seal(SECRET)
    (tmp_path / KEY_FILE_NAME).write_text(f"# newest first\n{new}\n{old}\n")
    os.chmod(tmp_path / KEY_FILE_NAME, 0o600)
    vault = vault_for(settings(tmp_path))
    assert vault.open(token) == SECRET
    assert vault.is_current(vault.seal(SECRET))
