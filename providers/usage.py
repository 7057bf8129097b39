"""Usage and cost of every provider call, collected per block of work through a context variable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class Usage(BaseModel):
    """One provider call: who served it, what it consumed and what it cost."""

    provider: str
    model: str
    kind: str = Field(description="research, text, json, image or video")
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    cost_usd: Decimal = Decimal("0")
    latency_ms: int = 0
    started_at: datetime | None = Field(default=None, description="when the call began (UTC)")
    fallback_from: str | None = Field(default=None, description="the provider that failed before this one")
    error: str | None = Field(default=None, description="the error class name when the call failed")
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class UsageLog:
    """The calls made inside one `track_usage()` block (and the blocks nested in it)."""

    def __init__(self, parent: UsageLog | None = None) -> None:
        self.records: list[Usage] = []
        self._parent = parent

    def add(self, usage: Usage) -> None:
        log: UsageLog | None = self
        while log is not None:
            log.records.append(usage)
            log = log._parent

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self.records)

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.records)

    @property
    def cost_usd(self) -> Decimal:
        return sum((r.cost_usd for r in self.records), Decimal("0"))

    @property
    def providers(self) -> list[str]:
        """Providers that served a call successfully, in order of first use."""
        return list(dict.fromkeys(r.provider for r in self.records if r.ok))

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.records if r.ok))

    @property
    def calls(self) -> int:
        return len(self.records)

    @property
    def failures(self) -> list[Usage]:
        return [r for r in self.records if not r.ok]

    def summary(self) -> dict[str, object]:
        """A small JSON-friendly summary for AIJob rows and activity results."""
        return {
            "calls": self.calls,
            "failed_calls": len(self.failures),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "providers": self.providers,
            "models": self.models,
            "fallbacks": [r.fallback_from for r in self.records if r.fallback_from and r.ok],
        }


_current_log: ContextVar[UsageLog | None] = ContextVar("provider_usage_log", default=None)
_fallback_from: ContextVar[str | None] = ContextVar("provider_fallback_from", default=None)


@contextmanager
def track_usage() -> Iterator[UsageLog]:
    """Collect the Usage of every provider call made inside the block.

    asyncio tasks created inside the block copy the context, so calls made through
    `asyncio.gather` or `TaskGroup` land in the same log.
    """
    log = UsageLog(parent=_current_log.get())
    token = _current_log.set(log)
    try:
        yield log
    finally:
        _current_log.reset(token)


def record_usage(usage: Usage) -> Usage:
    """Add the usage to the current log (if any), marking a router fallback in progress."""
    fallback = _fallback_from.get()
    if fallback is not None and usage.fallback_from is None:
        usage = usage.model_copy(update={"fallback_from": fallback})
    log = _current_log.get()
    if log is not None:
        log.add(usage)
    return usage


def current_usage_log() -> UsageLog | None:
    return _current_log.get()


@contextmanager
def fallback_scope(failed_provider: str | None) -> Iterator[None]:
    """Calls made inside the block are recorded as a fallback from `failed_provider`."""
    token = _fallback_from.set(failed_provider)
    try:
        yield
    finally:
        _fallback_from.reset(token)
