"""Which provider serves each kind of work, and falling back along a chain when one fails transiently."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from models.db import Database
from models.generation import ResearchResult
from models.settings import Settings, get_settings
from providers.base import (
    AIInvalidRequestError,
    AIProviderError,
    BaseProvider,
    CallLimiter,
    GeneratedImage,
    VideoOperation,
    WorkKind,
)
from providers.gemini import GeminiProvider
from providers.offline import OfflineProvider
from providers.openai_compat import OpenAICompatibleProvider
from providers.perplexity import PerplexityProvider
from providers.pricing import load_price_book
from providers.rate_limits import ProviderRateLimiter
from providers.structured import SchemaArg, Validator
from providers.usage import fallback_scope

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_logged_descriptions: set[str] = set()


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_providers(settings: Settings) -> dict[str, BaseProvider]:
    """Every provider the settings make usable (a key is set), plus the offline provider."""
    pricing = load_price_book(settings.ai_pricing_file)
    common: dict[str, Any] = {"timeout": settings.ai_timeout_seconds, "pricing": pricing}
    providers: dict[str, BaseProvider] = {}
    gemini_key = _secret(settings.gemini_api_key)
    if gemini_key:
        image_model = (
            settings.imagen_model if settings.gemini_image_backend == "imagen" else settings.gemini_image_model
        )
        providers["gemini"] = GeminiProvider(
            gemini_key,
            settings.gemini_text_model,
            settings.gemini_base_url,
            image_model=image_model,
            video_model=settings.veo_model,
            **common,
        )
    perplexity_key = _secret(settings.perplexity_api_key)
    if perplexity_key:
        providers["perplexity"] = PerplexityProvider(
            perplexity_key, settings.perplexity_model, settings.perplexity_base_url, **common
        )
    openai_key = _secret(settings.openai_api_key)
    # A local OpenAI-compatible server (Ollama, vLLM) needs no key: OPENAI_BASE_URL alone enables it.
    if openai_key or settings.openai_base_url:
        providers["openai"] = OpenAICompatibleProvider(
            openai_key, settings.openai_model, settings.openai_base_url, **common
        )
    providers["offline"] = OfflineProvider(
        latency_ms=settings.offline_latency_ms,
        jitter_ms=settings.offline_jitter_ms,
        fault=settings.offline_fault,
        fault_every=settings.offline_fault_every,
        **common,
    )
    return providers


KIND_HINTS = {
    WorkKind.RESEARCH: "web research needs PERPLEXITY_API_KEY or GEMINI_API_KEY",
    WorkKind.IMAGE: "images need GEMINI_API_KEY",
    WorkKind.VIDEO: "video needs GEMINI_API_KEY",
}


class ProviderRouter:
    """The AI gateway the activities call: the provider interface, served by a chain of providers per kind."""

    def __init__(
        self,
        chains: Mapping[Any, Sequence[BaseProvider]],
        *,
        mode: str = "custom",
        limiter: CallLimiter | None = None,
    ) -> None:
        """`chains`: kind of work (WorkKind or its value) -> providers to try in order. `limiter`: bounds every
        call of these providers by their rate limits (without one, as in unit tests without a database, calls
        are not limited)."""
        self.mode = mode
        self.chains: dict[WorkKind, list[BaseProvider]] = {kind: [] for kind in WorkKind}
        for kind, providers in chains.items():
            self.chains[WorkKind(kind)] = list(providers)
        self.limiter = limiter
        if limiter is not None:
            for provider in self.providers:
                provider.limiter = limiter

    @property
    def providers(self) -> list[BaseProvider]:
        """Every provider of every chain, once."""
        return list({id(p): p for chain in self.chains.values() for p in chain}.values())

    async def close(self) -> None:
        """Releases what the providers hold (the offline provider's video renderer); the worker calls it on
        shutdown."""
        for provider in self.providers:
            await provider.close()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, db: Database | None = None) -> ProviderRouter:
        """The router the settings describe; given the database, every provider call waits for its provider's
        rate limits, shared with every other worker through that database."""
        settings = settings or get_settings()
        available = build_providers(settings)
        chains: dict[WorkKind, list[BaseProvider]] = {}
        if settings.ai_provider == "auto":
            wanted = {
                WorkKind.RESEARCH: settings.ai_research_providers,
                WorkKind.TEXT: settings.ai_text_providers,
                WorkKind.JSON: settings.ai_json_providers,
                WorkKind.IMAGE: settings.ai_image_providers,
                WorkKind.VIDEO: settings.ai_video_providers,
            }
            for kind, names in wanted.items():
                chain = [
                    available[name]
                    for name in _names(names)
                    if name in available and name != "offline" and available[name].can(kind)
                ]
                if "offline" in _names(names) and not chain:
                    chain = [available["offline"]]
                chains[kind] = chain or [available["offline"]]
        else:
            forced = available.get(settings.ai_provider)
            if forced is None:
                env = {
                    "gemini": "GEMINI_API_KEY",
                    "perplexity": "PERPLEXITY_API_KEY",
                    "openai": "OPENAI_API_KEY or OPENAI_BASE_URL",
                }
                raise ValueError(f"AI_PROVIDER={settings.ai_provider} needs {env.get(settings.ai_provider, 'its key')}")
            chains = {kind: [forced] if forced.can(kind) else [] for kind in WorkKind}
        limiter = ProviderRateLimiter.from_settings(db, settings) if db is not None else None
        router = cls(chains, mode=settings.ai_provider, limiter=limiter)
        router.log_choice()
        return router

    def log_choice(self) -> None:
        """Log the provider per kind once per process (per distinct choice)."""
        line = self.describe_line()
        if line not in _logged_descriptions:
            _logged_descriptions.add(line)
            logger.info("AI providers (AI_PROVIDER=%s): %s", self.mode, line)
            offline_research = all(p.name == "offline" for p in self.chains[WorkKind.RESEARCH])
            if offline_research and not self.is_offline:
                # Paid extraction on made-up sources is money spent on sample content: say so loudly.
                logger.warning(
                    "company research uses the offline provider's sample sources while other work uses real "
                    "providers; %s",
                    KIND_HINTS[WorkKind.RESEARCH],
                )

    def describe(self) -> dict[str, list[str]]:
        """The chain per kind as 'provider/model' entries, first choice first."""
        return {kind.value: [f"{p.name}/{p.model_for(kind)}" for p in self.chains[kind]] for kind in WorkKind}

    def describe_line(self) -> str:
        return "; ".join(f"{kind}={' -> '.join(chain) or 'none'}" for kind, chain in self.describe().items())

    @property
    def is_offline(self) -> bool:
        """True when every kind is served by the offline provider alone (sample content only)."""
        return all(all(p.name == "offline" for p in chain) for chain in self.chains.values())

    def chain(self, kind: WorkKind | str) -> list[BaseProvider]:
        return list(self.chains[WorkKind(kind)])

    async def _route(self, kind: WorkKind, call: Callable[[BaseProvider], Awaitable[T]]) -> T:
        # A hand-built chain may name a provider that cannot do this kind; skip it rather than fail.
        chain = [provider for provider in self.chains[kind] if provider.can(kind)]
        if not chain:
            raise AIInvalidRequestError(
                f"no provider is configured for {kind.value} work (AI_PROVIDER={self.mode}); "
                f"{KIND_HINTS.get(kind, 'set a key for a provider that can do it')}",
                provider="router",
            )
        last: AIProviderError | None = None
        for provider in chain:
            try:
                with fallback_scope(last.provider if last is not None else None):
                    return await call(provider)
            except AIProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc
                if provider is not chain[-1]:
                    logger.warning("%s; falling back to the next provider for %s work", exc, kind.value)
        assert last is not None
        raise last

    # -- the provider interface --

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        return await self._route(
            WorkKind.RESEARCH, lambda p: p.research(query, sample_context=sample_context, **options)
        )

    async def generate(self, prompt: str, *, sample_context: dict[str, Any] | None = None, **options: Any) -> str:
        return await self._route(WorkKind.TEXT, lambda p: p.generate(prompt, sample_context=sample_context, **options))

    @overload
    async def generate_json(
        self,
        prompt: str,
        schema: type[M],
        *,
        validate: Validator | None = ...,
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
        sample_context: dict[str, Any] | None = ...,
        **options: Any,
    ) -> dict[str, Any]: ...

    async def generate_json(
        self,
        prompt: str,
        schema: SchemaArg,
        *,
        validate: Validator | None = None,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        async def call(provider: BaseProvider) -> Any:
            return await provider.generate_json(
                prompt, schema, validate=validate, sample_context=sample_context, **options
            )

        return await self._route(WorkKind.JSON, call)

    async def generate_image(
        self, prompt: str, aspect_ratio: str = "1:1", *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> GeneratedImage:
        return await self._route(
            WorkKind.IMAGE, lambda p: p.generate_image(prompt, aspect_ratio, sample_context=sample_context, **options)
        )

    async def start_video(
        self,
        prompt: str,
        *,
        duration_seconds: int = 8,
        aspect_ratio: str = "16:9",
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> VideoOperation:
        return await self._route(
            WorkKind.VIDEO,
            lambda p: p.start_video(
                prompt,
                duration_seconds=duration_seconds,
                aspect_ratio=aspect_ratio,
                sample_context=sample_context,
                **options,
            ),
        )

    async def poll_video(self, operation: VideoOperation) -> VideoOperation:
        """Polls through the provider that started the operation (no fallback: the job lives there)."""
        for provider in [*self.chains[WorkKind.VIDEO], *(p for chain in self.chains.values() for p in chain)]:
            if provider.name == operation.provider:
                return await provider.poll_video(operation)
        raise AIInvalidRequestError(
            f"no configured provider named {operation.provider!r} can poll operation {operation.name}",
            provider=operation.provider,
            model=operation.model,
        )


def _names(chain: str) -> list[str]:
    return [name.strip().lower() for name in chain.split(",") if name.strip()]
