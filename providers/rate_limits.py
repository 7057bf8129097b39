"""Provider calls in flight bounded by each provider's rate limits (requests and tokens a minute), shared by every
worker process: a token bucket per (provider, budget) in PostgreSQL, taken with one atomic statement."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects.postgresql import insert

from models.db import Database
from models.settings import Settings
from models.tables import ProviderRateBucket

logger = logging.getLogger(__name__)

REQUESTS = "requests"
TOKENS = "tokens"
# The database answers; a budget that is short answers how long until it is not. Never sleep less than this
# (a busy bucket would otherwise be hammered), nor longer (a refund or a raised limit is noticed soon).
MIN_WAIT_SECONDS = 0.05
MAX_WAIT_SECONDS = 5.0
# A limiter whose database is away lets calls through (see `acquire`); it says so at most this often.
OUTAGE_WARNING_EVERY_SECONDS = 30.0
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    psycopg.OperationalError,
    ConnectionError,
    OSError,
)


@dataclass(frozen=True)
class RateLimit:
    """A provider's budgets a minute; 0 means no limit on that budget."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0


def limits_from(settings: Settings) -> dict[str, RateLimit]:
    """Each provider's limits from the settings (GEMINI_RPM, OPENAI_TPM...)."""
    return {
        "gemini": RateLimit(settings.gemini_rpm, settings.gemini_tpm),
        "openai": RateLimit(settings.openai_rpm, settings.openai_tpm),
        "perplexity": RateLimit(settings.perplexity_rpm, settings.perplexity_tpm),
        "offline": RateLimit(settings.offline_rpm, settings.offline_tpm),
    }


def _bucket_statement(provider: str, budget: str, capacity: int, cost: float) -> sa.Insert:
    """Refills the bucket by the time since its last change (at most to `capacity`), takes `cost` and answers what
    is left, negative when the budget was short. The row lock makes concurrent takers count exactly; the clock is
    the database's, so workers with skewed clocks agree."""
    table = ProviderRateBucket.__table__  # type: ignore[attr-defined]
    rate = capacity / 60.0
    elapsed = sa.func.greatest(0, sa.extract("epoch", sa.func.clock_timestamp() - table.c.updated_at))
    refilled = sa.func.least(capacity, table.c.tokens + elapsed * rate)
    return (
        insert(table)
        .values(provider=provider, budget=budget, tokens=capacity - cost, updated_at=sa.func.clock_timestamp())
        .on_conflict_do_update(
            index_elements=["provider", "budget"],
            set_={"tokens": refilled - cost, "updated_at": sa.func.clock_timestamp()},
        )
        .returning(table.c.tokens)
    )


class ProviderRateLimiter:
    """Waits until a provider's budgets allow one more call, then takes it. Every worker process that shares the
    database shares the budgets, so N workers together stay within the provider's limits."""

    def __init__(self, db: Database, limits: Mapping[str, RateLimit]) -> None:
        self.db = db
        self.limits = dict(limits)
        self._warned_at = -OUTAGE_WARNING_EVERY_SECONDS

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> ProviderRateLimiter:
        return cls(db, limits_from(settings))

    def _budgets(self, provider: str, tokens: int) -> list[tuple[str, int, float]]:
        limit = self.limits.get(provider)
        if limit is None:
            return []
        budgets: list[tuple[str, int, float]] = []
        if limit.requests_per_minute > 0:
            budgets.append((REQUESTS, limit.requests_per_minute, 1.0))
        if limit.tokens_per_minute > 0 and tokens > 0:
            # A prompt larger than a minute's budget could never be sent: it waits for a full bucket instead.
            budgets.append((TOKENS, limit.tokens_per_minute, float(min(tokens, limit.tokens_per_minute))))
        return budgets

    async def acquire(self, provider: str, tokens: int = 0) -> None:
        """One request and `tokens` (the call's estimated tokens) from the provider's budgets, waiting as long as
        they are short. A cancellation ends the wait at once (nothing is taken).

        A database that does not answer lets the call through with a warning (fails open): the limiter only
        spares the provider 429s, which the stages retry by the seed's rules anyway, while failing closed would
        stop every provider call, and retrying here would hold the activity for the database's outage. The call
        itself is never lost."""
        budgets = self._budgets(provider, tokens)
        if not budgets:
            return
        while True:
            try:
                wait = await self._take(provider, budgets)
            except DATABASE_ERRORS as error:
                self._warn(provider, error)
                return
            if wait <= 0:
                return
            await asyncio.sleep(min(MAX_WAIT_SECONDS, max(MIN_WAIT_SECONDS, wait)))

    async def settle(self, provider: str, extra_tokens: int) -> None:
        """Charges the tokens a call used beyond its estimate (or refunds the difference when negative), without
        waiting: the bucket may go below zero, and the next callers wait until it has refilled."""
        limit = self.limits.get(provider)
        if limit is None or limit.tokens_per_minute <= 0 or extra_tokens == 0:
            return
        try:
            async with self.db.session() as session:
                await session.exec(_bucket_statement(provider, TOKENS, limit.tokens_per_minute, extra_tokens))  # type: ignore[call-overload]
                await session.commit()
        except DATABASE_ERRORS as error:
            self._warn(provider, error)

    async def _take(self, provider: str, budgets: list[tuple[str, int, float]]) -> float:
        """Takes from every budget in one transaction; if any is short, takes nothing (rolled back) and answers
        the seconds until all of them would have enough."""
        wait = 0.0
        async with self.db.session() as session:
            for budget, capacity, cost in budgets:
                left = (await session.exec(_bucket_statement(provider, budget, capacity, cost))).scalar_one()  # type: ignore[call-overload]
                if left < 0:
                    wait = max(wait, -float(left) / (capacity / 60.0))
            if wait > 0:
                await session.rollback()
            else:
                await session.commit()
        return wait

    def _warn(self, provider: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= OUTAGE_WARNING_EVERY_SECONDS:
            self._warned_at = now
            logger.warning(
                "provider rate limits unavailable (%s); letting %s calls through unlimited until the database answers",
                type(error).__name__,
                provider,
            )
