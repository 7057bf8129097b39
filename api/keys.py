"""Tenants and API keys: keys are shown once and stored only as SHA-256 hashes."""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.enums import Role, Tier
from models.tables import ApiKey, Tenant

KEY_PREFIX = "cpk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its short public prefix (to tell keys apart in lists without revealing them)."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


async def create_tenant(session: AsyncSession, name: str, tier: Tier) -> tuple[Tenant, str]:
    if not name.strip():
        raise ValueError("a tenant needs a name")
    tenant = Tenant(name=name.strip(), tier=tier)
    session.add(tenant)
    await session.flush()
    key, _ = await add_key(session, tenant.id, Role.ADMIN)
    await session.commit()
    return tenant, key


async def create_api_key(session: AsyncSession, tenant_id: uuid.UUID, role: Role) -> str:
    if await session.get(Tenant, tenant_id) is None:
        raise LookupError(f"no tenant {tenant_id}")
    key, _ = await add_key(session, tenant_id, role)
    await session.commit()
    return key


async def add_key(session: AsyncSession, tenant_id: uuid.UUID, role: Role) -> tuple[str, ApiKey]:
    """A new key (returned once, in clear) and its stored row (hash only); the caller commits."""
    key, prefix = new_key()
    row = ApiKey(tenant_id=tenant_id, key_hash=hash_key(key), prefix=prefix, role=role)
    session.add(row)
    await session.flush()
    return key, row


async def revoke_api_key(session: AsyncSession, key_prefix: str) -> int:
    keys = (
        await session.exec(
            select(ApiKey).where(ApiKey.prefix == key_prefix, ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
        )
    ).all()
    for key in keys:
        key.revoked_at = datetime.now(UTC)
        session.add(key)
    await session.commit()
    return len(keys)


async def principal_for_key(session: AsyncSession, key: str) -> tuple[ApiKey, Tenant] | None:
    """The live key's row and its tenant, in one round trip; None for a key that is unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    statement = (
        select(ApiKey, Tenant)
        .join(Tenant, col(Tenant.id) == col(ApiKey.tenant_id))
        .where(col(ApiKey.key_hash) == hash_key(key), col(ApiKey.revoked_at).is_(None))
    )
    found = (await session.exec(statement)).first()
    return None if found is None else (found[0], found[1])
