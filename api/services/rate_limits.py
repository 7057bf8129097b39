"""The tenant's start-request bucket: one token per start, refilled at the tier's rate per minute."""

import math
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Principal
from api.errors import Problem
from models.enums import Tier
from models.settings import Settings


def per_minute(settings: Settings, tier: Tier) -> int:
    return {
        Tier.FREE: settings.rate_limit_free_per_minute,
        Tier.PRO: settings.rate_limit_pro_per_minute,
        Tier.ULTIMATE: settings.rate_limit_ultimate_per_minute,
    }[tier]


# A start's part of the tenant's bucket, as a CTE `taken` of the start's one statement (api/services/starts.py):
# one token taken, returning what is left (below zero: the bucket was empty). The row stays locked until the
# start's transaction ends, so concurrent starts count exactly.
TAKE_START_TOKEN = """
    taken AS (
        INSERT INTO rate_bucket AS b (tenant_id, tokens, updated_at)
        VALUES (%(tenant_id)s, %(capacity)s - 1, now())
        ON CONFLICT (tenant_id) DO UPDATE
        SET tokens = least(%(capacity)s, b.tokens + extract(epoch FROM now() - b.updated_at) * %(rate)s) - 1,
            updated_at = now()
        RETURNING tokens
    )"""


def start_token_params(settings: Settings, principal: Principal) -> dict[str, Any]:
    capacity = per_minute(settings, principal.tier)
    return {"tenant_id": principal.tenant_id, "capacity": capacity, "rate": capacity / 60.0}


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
