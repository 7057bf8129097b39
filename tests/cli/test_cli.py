"""The content-pipeline command: tenants and keys as CONTRACT prints them, clear errors for bad input."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlmodel import col, select

from api.keys import hash_key
from models.db import Database
from models.enums import Role
from models.tables import ApiKey, Tenant

ROOT = Path(__file__).resolve().parents[2]


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_tenant_and_key_creation(database_url: str, db: Database) -> None:
    created = cli(database_url, "tenant", "create", "--name", "CLI Marketing", "--tier", "pro")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert set(tenant) >= {"tenantId", "apiKey"} and tenant["apiKey"].startswith("cpk_")

    key = cli(database_url, "apikey", "create", "--tenant", tenant["tenantId"], "--role", "supervisor")
    assert key.returncode == 0, key.stderr
    supervisor_key = json.loads(key.stdout)["apiKey"]

    async with db.session() as session:
        row = await session.get(Tenant, uuid.UUID(tenant["tenantId"]))
        assert row is not None and row.tier == "pro"
        for plain, role in ((tenant["apiKey"], Role.ADMIN), (supervisor_key, Role.SUPERVISOR)):
            stored = (await session.exec(select(ApiKey).where(col(ApiKey.key_hash) == hash_key(plain)))).all()
            assert len(stored) == 1 and stored[0].role == role
            assert plain not in str(stored[0]), "the key itself must never be stored"

    revoked = cli(database_url, "apikey", "revoke", "--prefix", supervisor_key.split("_")[1])
    assert revoked.returncode == 0 and json.loads(revoked.stdout) == {"revoked": 1}


def test_bad_input_is_a_clear_error(database_url: str) -> None:
    unknown = cli(database_url, "apikey", "create", "--tenant", str(uuid.uuid4()), "--role", "marketer")
    assert unknown.returncode == 2 and "no tenant" in unknown.stderr and not unknown.stdout
    bad_tier = cli(database_url, "tenant", "create", "--name", "X", "--tier", "gold")
    assert bad_tier.returncode == 2 and "invalid choice" in bad_tier.stderr
    blank = cli(database_url, "tenant", "create", "--name", "  ", "--tier", "free")
    assert blank.returncode == 2 and "needs a name" in blank.stderr
