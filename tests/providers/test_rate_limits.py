"""Provider rate limits shared through PostgreSQL (providers/rate_limits.py): two limiters, as two worker processes
would have, never grant more than the requests-a-minute budget allows over a window; the token budget holds, with
calls charged what they really used; a waiting call can be cancelled; a limiter whose database is away lets calls
through; and the router puts every kind of provider call through its limiter."""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from models.db import Database
from models.generation import VideoPrompt
from models.tables import ProviderRateBucket
from providers.base import VideoOperation, WorkKind
from providers.offline import OfflineProvider
from providers.rate_limits import TOKENS, ProviderRateLimiter, RateLimit
from providers.router import ProviderRouter

# Generous: the machine is shared and slow at times; the assertions never depend on how fast it is.
DEADLINE_SECONDS = 60


@pytest.fixture
async def two_workers(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on the same database, as two worker processes have."""
    first, second = Database.from_url(database_url, pool_size=5), Database.from_url(database_url, pool_size=5)
    yield first, second
    await first.close()
    await second.close()


def provider_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_two_limiters_sharing_a_database_keep_to_the_requests_per_minute_budget(
    two_workers: tuple[Database, Database],
) -> None:
    provider = provider_name()
    limit = RateLimit(requests_per_minute=120)  # a burst of 120, then 2 a second
    limiters = [ProviderRateLimiter(db, {provider: limit}) for db in two_workers]
    granted: list[float] = []
    begin = time.monotonic()
    stop_at = begin + 2.5

    async def caller(limiter: ProviderRateLimiter) -> None:
        while time.monotonic() < stop_at:
            await limiter.acquire(provider)
            granted.append(time.monotonic())

    await asyncio.wait_for(asyncio.gather(*(caller(limiters[i % 2]) for i in range(16))), timeout=DEADLINE_SECONDS)
    rate = limit.requests_per_minute / 60
    # In any window, at most the bucket (120) plus what refilled during it: checked for every window that starts
    # at a grant, with one grant of slack for a refill landing between the clock readings.
    granted.sort()
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            window = granted[j] - start
            assert j - i + 1 <= limit.requests_per_minute + rate * window + 1
    assert len(granted) >= limit.requests_per_minute  # the burst was usable
    assert len(granted) <= limit.requests_per_minute + rate * (granted[-1] - begin) + 1


async def test_the_token_budget_holds_and_calls_are_charged_what_they_used(db: Database) -> None:
    provider = provider_name()
    limit = RateLimit(tokens_per_minute=6000)  # 100 tokens a second
    limiter = ProviderRateLimiter(db, {provider: limit})
    for _ in range(6):  # 6 x 1000 tokens: the whole bucket, at once
        await asyncio.wait_for(limiter.acquire(provider, tokens=1000), timeout=DEADLINE_SECONDS)
    # The calls used 600 tokens more than estimated: charged without waiting, the bucket goes below zero.
    await limiter.settle(provider, 600)
    async with db.session() as session:
        bucket = (
            await session.exec(
                select(ProviderRateBucket).where(
                    col(ProviderRateBucket.provider) == provider, col(ProviderRateBucket.budget) == TOKENS
                )
            )
        ).one()
    assert bucket.tokens < 0

    # The next call of 1000 tokens waits until the debt and its own tokens have refilled (16 s): still waiting
    # after a while, and cancelled without taking anything.
    waiting = asyncio.create_task(limiter.acquire(provider, tokens=1000))
    await asyncio.sleep(1)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=DEADLINE_SECONDS)
    async with db.session() as session:
        again = await session.get(ProviderRateBucket, (provider, TOKENS))
    assert again is not None and again.tokens == bucket.tokens  # the waits took nothing: each was rolled back


async def test_a_limiter_whose_database_is_away_lets_the_call_through(caplog: pytest.LogCaptureFixture) -> None:
    away = Database.from_url("postgresql://postgres@127.0.0.1:1/nothing", pool_size=1)
    limiter = ProviderRateLimiter(away, {"offline": RateLimit(requests_per_minute=1, tokens_per_minute=10)})
    provider = OfflineProvider()
    router = ProviderRouter({kind: [provider] for kind in WorkKind}, limiter=limiter)
    with caplog.at_level(logging.WARNING, logger="providers.rate_limits"):
        text = await asyncio.wait_for(router.generate("two calls, no database"), timeout=DEADLINE_SECONDS)
        again = await asyncio.wait_for(router.generate("and another"), timeout=DEADLINE_SECONDS)
    assert text and again and provider.calls == 2
    warnings = [r.getMessage() for r in caplog.records if "rate limits unavailable" in r.getMessage()]
    assert len(warnings) == 1  # said once, not once a call
    await away.close()


class RecordingLimiter:
    """Records what the providers asked of it."""

    def __init__(self) -> None:
        self.acquired: list[tuple[str, int]] = []
        self.settled: list[tuple[str, int]] = []

    async def acquire(self, provider: str, tokens: int = 0) -> None:
        self.acquired.append((provider, tokens))

    async def settle(self, provider: str, extra_tokens: int) -> None:
        self.settled.append((provider, extra_tokens))


async def test_every_kind_of_provider_call_goes_through_the_limiter() -> None:
    limiter = RecordingLimiter()
    provider = OfflineProvider()
    router = ProviderRouter({kind: [provider] for kind in WorkKind}, limiter=limiter)
    prompt = "A short video about office coffee, slow pan over a bar"
    await router.generate(prompt)
    await router.generate_json(prompt, VideoPrompt)
    await router.research("office coffee")
    await router.generate_image(prompt, "1:1")
    operation: VideoOperation = await router.start_video(prompt, duration_seconds=4)
    await router.poll_video(operation)
    await router.close()
    assert len(limiter.acquired) == 6 and {p for p, _ in limiter.acquired} == {"offline"}
    assert limiter.acquired[0][1] > 0  # a text call asks for its estimated tokens
    # Each call is settled with what it used beyond the estimate (the answer's tokens, at least).
    assert len(limiter.settled) == 6 and limiter.settled[0][1] > 0
