"""Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, LiteLLM...) through the openai SDK."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI

from providers.base import (
    AIAuthError,
    AIContentBlockedError,
    AIInvalidOutputError,
    AIInvalidRequestError,
    AIProviderError,
    AIRateLimitError,
    AIServerError,
    AITimeoutError,
    BaseProvider,
    Metered,
    WorkKind,
    estimate_tokens,
)
from providers.structured import SchemaArg, json_schema_for, schema_name

try:  # the openai SDK may run on httpx2, a fork of httpx with its own exception classes
    import httpx2

    _TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
except ImportError:  # pragma: no cover - depends on the SDK build
    _TIMEOUTS = (httpx.TimeoutException,)

_BLOCKED_CODES = ("content_filter", "content_policy_violation", "safety")


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (a number or an HTTP date), if the provider sent it."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except (AttributeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


class OpenAIChatProvider(BaseProvider):
    """Shared by the OpenAI-compatible and Perplexity providers: chat completions and error mapping."""

    name = "openai"
    kinds = frozenset({WorkKind.TEXT, WorkKind.JSON})
    default_base_url: str | None = None

    def __init__(self, api_key: str | None, model: str, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(api_key, model, base_url or self.default_base_url, **kwargs)
        self._client = AsyncOpenAI(
            # Local servers (Ollama, vLLM) accept any key; the SDK insists on one.
            api_key=self._api_key or "not-needed",
            base_url=self.base_url,
            max_retries=0,  # Temporal owns retries
            timeout=self.timeout,
        )

    def _response_format(self, schema: SchemaArg) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": schema_name(schema), "schema": json_schema_for(schema), "strict": False},
        }

    def _messages(self, prompt: str, system: str | None) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return messages

    async def _chat(
        self,
        prompt: str,
        *,
        kind: WorkKind,
        schema: SchemaArg | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        note: str = "",
    ) -> Any:
        """One chat completion; returns the SDK's ChatCompletion after checking it for blocks and emptiness."""
        params: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(prompt, system),
            "timeout": self.timeout,
        }
        if schema is not None:
            params["response_format"] = self._response_format(schema)
        if temperature is not None:
            params["temperature"] = temperature
        if max_tokens is not None:
            params["max_tokens"] = max_tokens

        async def call() -> tuple[Any, Metered]:
            completion = await self._client.chat.completions.create(**params)
            usage = completion.usage
            meter = Metered(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                cached_input_tokens=_cached_tokens(usage),
            )
            problem: AIProviderError | None = None
            if not completion.choices:
                problem = self._error(AIInvalidOutputError, "the response has no choices", model=self.model)
            elif completion.choices[0].finish_reason == "content_filter":
                problem = self._error(
                    AIContentBlockedError, "the answer was blocked by the content filter", model=self.model
                )
            elif not (completion.choices[0].message.content or "").strip():
                reason = completion.choices[0].finish_reason
                problem = self._error(AIInvalidOutputError, f"empty answer (finish_reason={reason})", model=self.model)
            if problem is not None:
                problem.metered = meter  # billed all the same
                raise problem
            return completion, meter

        estimate = estimate_tokens(prompt) + estimate_tokens(system or "")
        return await self._metered(kind, self.model, call, note=note, tokens=estimate)

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
        completion = await self._chat(
            prompt,
            kind=kind,
            schema=schema,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            note="repair" if repair else "",
        )
        return str(completion.choices[0].message.content)

    def _map_error(self, exc: Exception, model: str) -> AIProviderError:
        status = getattr(exc, "status_code", None)
        detail = self._redact(_openai_error_detail(exc))
        if isinstance(exc, openai.APITimeoutError) or isinstance(exc, _TIMEOUTS):
            return self._error(AITimeoutError, f"timed out after {self.timeout:g} s", model=model)
        if isinstance(exc, openai.RateLimitError):
            return self._error(
                AIRateLimitError,
                f"rate limited (HTTP 429): {detail}",
                model=model,
                retry_after=retry_after_seconds(exc.response.headers),
                status_code=429,
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return self._error(
                AIAuthError, f"HTTP {status}: the API key was refused: {detail}", model=model, status_code=status
            )
        if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError | openai.NotFoundError):
            code = str(getattr(exc, "code", "") or "")
            if any(word in code or word in detail for word in _BLOCKED_CODES):
                return self._error(
                    AIContentBlockedError, f"HTTP {status}: blocked: {detail}", model=model, status_code=status
                )
            return self._error(AIInvalidRequestError, f"HTTP {status}: {detail}", model=model, status_code=status)
        if isinstance(exc, openai.APIStatusError):
            if status == 408:
                return self._error(AITimeoutError, f"HTTP 408: {detail}", model=model, status_code=status)
            if status is not None and (status >= 500 or status == 409):
                return self._error(AIServerError, f"HTTP {status}: {detail}", model=model, status_code=status)
            return self._error(AIInvalidRequestError, f"HTTP {status}: {detail}", model=model, status_code=status)
        if isinstance(exc, openai.APIConnectionError):
            return self._error(AIServerError, f"connection failed: {detail}", model=model)
        return super()._map_error(exc, model)


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens served from OpenAI's prompt cache (`prompt_tokens_details.cached_tokens`), when reported."""
    details = getattr(usage, "prompt_tokens_details", None)
    return int(getattr(details, "cached_tokens", None) or 0)


def _openai_error_detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:500]
    message = getattr(exc, "message", None) or str(exc)
    return str(message)[:500]


class OpenAICompatibleProvider(OpenAIChatProvider):
    """OpenAI or any endpoint that speaks its chat-completions API (OPENAI_BASE_URL)."""

    name = "openai"
