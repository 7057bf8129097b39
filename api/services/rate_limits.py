"""The tenant's start-request bucket: one token per start, refilled at the tier's rate per minute."""

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Principal
from api.errors import Problem
from models.enums import Tier
from models.settings import Settings
from models.tables import RateBucket


def per_minute(settings: Settings, tier: Tier) -> int:
    return {
        Tier.FREE: settings.rate_limit_free_per_minute,
        Tier.PRO: settings.rate_limit_pro_per_minute,
        Tier.ULTIMATE: settings.rate_limit_ultimate_per_minute,
    }[tier]


def start_token_statement(settings: Settings, principal: Principal) -> Any:
    """Takes one token from the tenant's bucket, returning what is left (below zero: the bucket was empty). The
    bucket row stays locked until the caller's transaction ends, so concurrent starts count exactly."""
    capacity = per_minute(settings, principal.tier)
    rate = capacity / 60.0
    table = RateBucket.__table__  # type: ignore[attr-defined]
    refilled = sa.func.least(capacity, table.c.tokens + sa.extract("epoch", sa.func.now() - table.c.updated_at) * rate)
    return (
        insert(table)
        .values(tenant_id=principal.tenant_id, tokens=capacity - 1, updated_at=sa.func.now())
        .on_conflict_do_update(index_elements=["tenant_id"], set_={"tokens": refilled - 1, "updated_at": sa.func.now()})
        .returning(table.c.tokens)
    )


async def refuse_if_empty(session: AsyncSession, settings: Settings, principal: Principal, tokens: float) -> None:
    """429 with Retry-After when the token just taken left the bucket below zero; the caller's transaction (the new
    row and its Idempotency-Key included) is rolled back first."""
    if tokens >= 0:
        return
    capacity = per_minute(settings, principal.tier)
    await session.rollback()
    retry_after = max(1, math.ceil(-tokens / (capacity / 60.0)))
    raise Problem(
        429,
        f"at most {capacity} start requests a minute on the {principal.tier.value} tier; retry in {retry_after} s",
        title="Too Many Requests",
        headers={"Retry-After": str(retry_after)},
    )
