"""The one interface every AI provider implements, its error taxonomy and the media result types."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field

from models.generation import ResearchResult
from providers.pricing import PriceBook, load_price_book
from providers.structured import (
    SchemaArg,
    Validator,
    check_output,
    json_schema_for,
    repair_prompt,
)
from providers.structured import (
    extract_json as _extract_json,
)
from providers.usage import Usage, record_usage

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class WorkKind(StrEnum):
    RESEARCH = "research"
    TEXT = "text"
    JSON = "json"
    IMAGE = "image"
    VIDEO = "video"


# ---- Errors ----------------------------------------------------------------------------------------------


class AIProviderError(Exception):
    """A provider call failed. `retryable` tells Temporal (and the router) whether trying again can help."""

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        retryable: bool | None = None,
        status_code: int | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.reason = message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.status_code = status_code
        # What the call consumed when the provider answered (and billed) before the error was found.
        self.metered: Metered | None = None
        who = f"{provider or 'AI provider'} ({model})" if model else (provider or "AI provider")
        super().__init__(f"{who} failed: {message}")

    @property
    def type_name(self) -> str:
        """For `ApplicationError(type=...)`."""
        return type(self).__name__


class AIRateLimitError(AIProviderError):
    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:g} s)"
        super().__init__(message, **kwargs)


class AITimeoutError(AIProviderError):
    default_retryable = True


class AIServerError(AIProviderError):
    """5xx, connection failures and other transient trouble on the provider's side."""

    default_retryable = True


class AIAuthError(AIProviderError):
    """Missing, wrong or unauthorized API key."""


class AIInvalidRequestError(AIProviderError):
    """The request is wrong (bad parameter, unknown model) or the provider cannot do this kind of work."""


class AIContentBlockedError(AIProviderError):
    """The provider's safety filters refused the prompt or the answer."""


class AIInvalidOutputError(AIProviderError):
    """The answer did not satisfy the schema, even after the one repair request."""


# ---- Media results ---------------------------------------------------------------------------------------


class GeneratedImage(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes
    mime_type: str = "image/png"
    width: int | None = None
    height: int | None = None
    provider: str = ""
    model: str = ""


class GeneratedVideo(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes
    mime_type: str = "video/mp4"
    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None


class VideoOperation(BaseModel):
    """A long-running video generation. Small and serializable until done, so an activity can heartbeat it."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    provider: str
    model: str
    name: str = Field(description="the provider's operation id")
    done: bool = False
    prompt: str = ""
    duration_seconds: int = 8
    aspect_ratio: str = "16:9"
    video_uri: str | None = None
    error: str | None = None
    video: GeneratedVideo | None = Field(default=None, description="set when done; the downloaded bytes")
    # The provider's hint for the first poll, in seconds after the start: a provider that knows when its render
    # will be ready (the offline one renders while it is being polled) spares the caller a guessed wait.
    poll_after_seconds: float | None = None

    def for_heartbeat(self) -> VideoOperation:
        """A copy without the video bytes."""
        return self.model_copy(update={"video": None})


# ---- The interface ---------------------------------------------------------------------------------------


@dataclass
class Metered:
    """What one call consumed, as the provider reported it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, those read from the provider's prompt cache (billed lower)
    images: int = 0
    video_seconds: float = 0.0
    note: str = ""


def aspect_size(aspect_ratio: str, long_side: int) -> tuple[int, int]:
    """Width and height (even numbers) for an aspect ratio like '16:9' or '1.91:1' with the given long side."""
    try:
        w_text, h_text = aspect_ratio.split(":")
        ratio = float(w_text) / float(h_text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"aspect ratio must look like '16:9', got {aspect_ratio!r}") from None
    if ratio <= 0:
        raise ValueError(f"aspect ratio must be positive, got {aspect_ratio!r}")
    if ratio >= 1:
        width, height = long_side, round(long_side / ratio)
    else:
        width, height = round(long_side * ratio), long_side
    return max(2, width - width % 2), max(2, height - height % 2)


class CallLimiter(Protocol):
    """What bounds a provider's calls by its rate limits (providers/rate_limits.py ProviderRateLimiter)."""

    async def acquire(self, provider: str, tokens: int = 0) -> None: ...

    async def settle(self, provider: str, extra_tokens: int) -> None: ...


class BaseProvider(ABC):
    """An AI provider. Subclasses implement `_complete` (text/JSON) and whichever other kinds they serve."""

    name: ClassVar[str] = "base"
    kinds: ClassVar[frozenset[WorkKind]] = frozenset({WorkKind.TEXT, WorkKind.JSON})
    # Set by the router that serves through this provider: every call (`_metered`) waits for its rate limits.
    limiter: CallLimiter | None = None

    def __init__(
        self,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        *,
        timeout: float = 120.0,
        pricing: PriceBook | None = None,
        image_model: str | None = None,
        video_model: str | None = None,
    ) -> None:
        self._api_key = api_key or ""
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.pricing = pricing or load_price_book()
        self.image_model = image_model or model
        self.video_model = video_model or model

    def __repr__(self) -> str:
        # Never shows the key.
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def can(self, kind: WorkKind | str) -> bool:
        return WorkKind(kind) in self.kinds

    def model_for(self, kind: WorkKind | str) -> str:
        kind = WorkKind(kind)
        if kind is WorkKind.IMAGE:
            return self.image_model
        if kind is WorkKind.VIDEO:
            return self.video_model
        return self.model

    # -- text and JSON --

    @abstractmethod
    async def _complete(
        self,
        prompt: str,
        *,
        kind: WorkKind,
        schema: SchemaArg | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample_context: dict[str, Any] | None = None,
        repair: bool = False,
    ) -> str:
        """One call that returns the model's text; with `schema`, asks the provider for JSON of that shape."""

    async def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> str:
        return await self._complete(
            prompt,
            kind=WorkKind.TEXT,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            sample_context=sample_context,
        )

    @overload
    async def generate_json(
        self,
        prompt: str,
        schema: type[M],
        *,
        validate: Validator | None = ...,
        system: str | None = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        sample_context: dict[str, Any] | None = ...,
        **options: Any,
    ) -> M: ...

    @overload
    async def generate_json(
        self,
        prompt: str,
        schema: dict[str, Any],
        *,
        validate: Validator | None = ...,
        system: str | None = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        sample_context: dict[str, Any] | None = ...,
        **options: Any,
    ) -> dict[str, Any]: ...

    async def generate_json(
        self,
        prompt: str,
        schema: SchemaArg,
        *,
        validate: Validator | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """JSON validated against `schema` (a pydantic model class -> instance, a JSON-schema dict -> dict).

        Invalid output (unparseable, schema errors, or problems returned by `validate`) gets one repair
        request showing the model its answer and the errors; still invalid -> AIInvalidOutputError.
        """
        common: dict[str, Any] = {
            "kind": WorkKind.JSON,
            "schema": schema,
            "system": system,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "sample_context": sample_context,
        }
        text = await self._complete(prompt, **common)
        value, problems = check_output(text, schema, validate)
        if not problems:
            return value
        fixed = await self._complete(
            repair_prompt(prompt, text, problems, json_schema_for(schema)), repair=True, **common
        )
        value, still = check_output(fixed, schema, validate)
        if not still:
            return value
        raise self._error(
            AIInvalidOutputError,
            f"output failed validation after one repair request: {'; '.join(still[:5])}",
            model=self.model,
        )

    def extract_json(self, text: str) -> Any:
        """The JSON value in a model's answer (bare, fenced in Markdown, or with prose around it)."""
        try:
            return _extract_json(text)
        except ValueError as exc:
            raise self._error(AIInvalidOutputError, str(exc), model=self.model) from None

    # -- other kinds: a provider that cannot do one says so --

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        raise self._unsupported(WorkKind.RESEARCH)

    async def generate_image(
        self,
        prompt: str,
        aspect_ratio: str = "1:1",
        *,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> GeneratedImage:
        raise self._unsupported(WorkKind.IMAGE)

    async def start_video(
        self,
        prompt: str,
        *,
        duration_seconds: int = 8,
        aspect_ratio: str = "16:9",
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> VideoOperation:
        raise self._unsupported(WorkKind.VIDEO)

    async def poll_video(self, operation: VideoOperation) -> VideoOperation:
        raise self._unsupported(WorkKind.VIDEO)

    # -- for subclasses --

    def _unsupported(self, kind: WorkKind) -> AIInvalidRequestError:
        return AIInvalidRequestError(
            f"{self.name} cannot do {kind.value} work", provider=self.name, model=self.model_for(kind)
        )

    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text

    def _error(self, cls: type[AIProviderError], message: str, *, model: str, **kwargs: Any) -> AIProviderError:
        return cls(self._redact(message), provider=self.name, model=model, **kwargs)

    def _map_error(self, exc: Exception, model: str) -> AIProviderError:
        """Subclasses translate their SDK's exceptions; anything unknown is a non-retryable provider error."""
        return self._error(AIProviderError, f"{type(exc).__name__}: {exc}", model=model)

    def _record(
        self, kind: WorkKind, model: str, started: float, meter: Metered, error: AIProviderError | None = None
    ) -> Usage:
        cost, price_note = self.pricing.cost(
            model,
            input_tokens=meter.input_tokens,
            output_tokens=meter.output_tokens,
            cached_input_tokens=meter.cached_input_tokens,
            images=meter.images,
            video_seconds=meter.video_seconds,
            provider=self.name,
        )
        if error is not None:
            cost = type(cost)("0")
        note = "; ".join(part for part in (meter.note, price_note if error is None else "") if part)
        return record_usage(
            Usage(
                provider=self.name,
                model=model,
                kind=kind.value,
                input_tokens=meter.input_tokens,
                output_tokens=meter.output_tokens,
                images=meter.images,
                video_seconds=meter.video_seconds,
                cost_usd=cost,
                latency_ms=round((time.perf_counter() - started) * 1000),
                started_at=datetime.now(UTC) - timedelta(seconds=time.perf_counter() - started),
                error=error.type_name if error is not None else None,
                note=note if error is None else (f"{note}; " if note else "") + error.reason[:300],
            )
        )

    async def _metered(
        self,
        kind: WorkKind,
        model: str,
        call: Callable[[], Awaitable[tuple[T, Metered]]],
        note: str = "",
        *,
        tokens: int = 0,
    ) -> T:
        """Run one provider call: wait for the provider's rate limits (one request, `tokens` estimated), time it,
        translate its errors, and record its Usage either way."""
        limiter = self.limiter
        if limiter is not None:
            await limiter.acquire(self.name, tokens)
        started = time.perf_counter()
        try:
            value, meter = await call()
        except AIProviderError as exc:
            self._record(kind, model, started, exc.metered or Metered(note=note), exc)
            raise
        except Exception as exc:
            mapped = self._map_error(exc, model)
            self._record(kind, model, started, Metered(note=note), mapped)
            # `from None`: the SDK exception may carry request details; our message is already redacted.
            raise mapped from None
        if note:
            meter.note = f"{note}; {meter.note}" if meter.note else note
        self._record(kind, model, started, meter)
        if limiter is not None:
            await limiter.settle(self.name, meter.input_tokens + meter.output_tokens - tokens)
        return value

    async def close(self) -> None:
        """Releases what the provider holds beyond its client (the offline provider's video renderer)."""
        return


def estimate_tokens(text: str) -> int:
    """About four characters per token, for providers that report no usage."""
    return max(1, len(text) // 4) if text else 0
