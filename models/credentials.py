"""Channel credentials at rest: encrypted with Fernet under the keys of the settings, rotated without downtime.

CHANNEL_KEYS is a comma-separated list of Fernet keys (`Fernet.generate_key()`, 44 characters each). The first
encrypts; every one decrypts (`MultiFernet`). Rotating a key without downtime:

1. put a new key first and keep the old ones after it (`CHANNEL_KEYS=new,old`) on every API and worker process;
   both read rows of either key from then on;
2. `content-pipeline channels rotate-keys` encrypts every stored credential again under the first key;
3. drop the old key from CHANNEL_KEYS.

Without CHANNEL_KEYS (the embedded stack), one key is generated once into `<data dir>/channel-keys` (mode 0600)
and every process on the machine reads the same file (one key a line, the first encrypting: rotation works the
same way there). A token that no key can read is a `CredentialsUnreadable`:
the channel must be connected again (its key was lost), never silently dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from models.db import Database
from models.settings import Settings
from models.tables import Channel, ChannelAttempt, OAuthClient

KEY_FILE_NAME = "channel-keys"


class CredentialsUnreadable(Exception):
    """No configured key decrypts the stored credentials (a key was removed before rotating)."""


class Vault:
    """Encrypts and decrypts one channel's credentials (a dict of strings) as a Fernet token."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("the credential vault needs at least one key")
        try:
            self._fernets = [Fernet(key.strip().encode("ascii")) for key in keys]
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(
                "CHANNEL_KEYS must be Fernet keys (44 characters of URL-safe base64) separated by commas"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    def seal(self, credentials: dict[str, str]) -> str:
        return self._multi.encrypt(json.dumps(credentials, separators=(",", ":")).encode("utf-8")).decode("ascii")

    def open(self, token: str) -> dict[str, str]:
        try:
            raw = self._multi.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise CredentialsUnreadable(
                "the stored credentials cannot be decrypted with the configured CHANNEL_KEYS; connect the channel "
                "again (or put back the key they were encrypted with)"
            ) from None
        value = json.loads(raw)
        return {str(k): str(v) for k, v in value.items()}

    def rotate(self, token: str) -> str:
        """The same credentials under the first key (unchanged when it already is)."""
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise CredentialsUnreadable("the stored credentials cannot be decrypted with the configured keys") from None

    def is_current(self, token: str) -> bool:
        """True when the first key reads it (nothing to rotate)."""
        try:
            self._fernets[0].decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True


def vault_for(settings: Settings) -> Vault:
    """The vault of CHANNEL_KEYS, or of the key file under the data directory (made once when missing)."""
    if settings.channel_keys is not None:
        keys = [key for key in settings.channel_keys.get_secret_value().split(",") if key.strip()]
        return Vault(keys)
    return Vault(_keys_from_file(settings.data_dir / KEY_FILE_NAME))


def _keys_from_file(path: Path) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return _read_keys(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # Written under another name and linked into place: two processes starting at once agree on one key (the
    # link of the second fails and it reads the first's), and nobody ever reads a half-written file.
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink(missing_ok=True)
    return _read_keys(path)


def _read_keys(path: Path) -> list[str]:
    """One key a line, the first encrypting (the same rotation as CHANNEL_KEYS, for the embedded stack)."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ValueError(f"{path} holds no key; remove it to have one made, or set CHANNEL_KEYS")
    return lines


async def rotate_stored(db: Database, vault: Vault) -> dict[str, int]:
    """Every stored credential under the vault's first key: rows already under it are left alone, each other row
    is written with a conditional update (only if unchanged since it was read), so a session a worker renews
    meanwhile is never overwritten with an older one (it is written under the first key anyway). Rows no key reads
    are counted, not changed."""
    counts = {"rotated": 0, "current": 0, "unreadable": 0}
    for table, column in ((Channel, "credentials"), (ChannelAttempt, "secrets"), (OAuthClient, "secrets")):
        async with db.session() as session:
            rows = (await session.exec(sa.select(table.id, getattr(table, column)))).all()  # type: ignore[call-overload]
        for row_id, token in rows:
            if vault.is_current(token):
                counts["current"] += 1
                continue
            try:
                renewed = vault.rotate(token)
            except CredentialsUnreadable:
                counts["unreadable"] += 1
                continue
            statement = (
                sa.update(table)
                .where(table.id == row_id, getattr(table, column) == token)  # type: ignore[attr-defined]
                .values({column: renewed})
            )
            async with db.session() as session:
                await session.exec(statement)  # type: ignore[call-overload]
                await session.commit()
            counts["rotated"] += 1
    return counts
