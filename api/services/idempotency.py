"""The Idempotency-Key of a start request: looked up, claimed for the new row, replayed, freed after a failed start."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Header
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Problem
from models.tables import IdempotencyKey, utcnow

# A key is remembered this long; after that the same key starts something new.
KEY_RETENTION = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="any string of printable ASCII (a UUID is a good choice): a retried request with the same key and "
        "body returns the first request's result instead of starting again; with another body it is refused (422)",
    ),
]


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """The same request whatever the whitespace, key order or trailing slash."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")) if body.strip() else ""
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(f"{method} {path.rstrip('/')}\n{canonical}".encode()).hexdigest()


def key_reused() -> Problem:
    return Problem(
        422,
        "this Idempotency-Key was already used with another request; use a new key for a new request",
        errors=[
            {
                "field": "header.Idempotency-Key",
                "message": "used with another request",
                "type": "idempotency_key_reused",
            }
        ],
    )


# A start's claim of its key for the new row, as a CTE `claimed` of the start's one statement (api/services/
# starts.py): the id of the claim, or no row when another request has the key.
CLAIM_KEY = """
    claimed AS (
        INSERT INTO idempotency_key (id, tenant_id, key, request_hash, resource_id, created_at)
        VALUES (%(claim_id)s, %(tenant_id)s, %(key)s, %(request_hash)s, %(resource_id)s, now())
        ON CONFLICT (tenant_id, key) DO NOTHING
        RETURNING id
    )"""


@dataclass(frozen=True)
class Idempotency:
    """A tenant's key (None: the request sent none) and the fingerprint of the request that came with it."""

    tenant_id: uuid.UUID
    key: str | None
    fingerprint: str

    def _mine(self) -> list[Any]:
        return [col(IdempotencyKey.tenant_id) == self.tenant_id, col(IdempotencyKey.key) == self.key]

    async def earlier(self, session: AsyncSession) -> uuid.UUID | None:
        """What an earlier request with this key started; 422 when that request was a different one."""
        if self.key is None:
            return None
        statement = sa.select(IdempotencyKey).where(*self._mine())
        row = (await session.exec(statement)).scalar_one_or_none()  # type: ignore[call-overload]
        if row is None:
            return None
        if row.created_at < utcnow() - KEY_RETENTION:
            await session.delete(row)
            await session.flush()
            return None
        if row.request_hash != self.fingerprint:
            raise key_reused()
        resource_id: uuid.UUID = row.resource_id
        return resource_id

    def claim_params(self, resource_id: uuid.UUID) -> dict[str, Any]:
        """The parameters of CLAIM_KEY for the new row."""
        return {
            "claim_id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "key": self.key,
            "request_hash": self.fingerprint,
            "resource_id": resource_id,
        }

    async def release(self, session: AsyncSession) -> None:
        """Frees the key after a start that did not happen (the engine was down), so a retry starts afresh."""
        if self.key is None:
            return
        await session.exec(sa.delete(IdempotencyKey).where(*self._mine()))  # type: ignore[call-overload]
        await session.commit()
