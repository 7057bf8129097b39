"""The AI gateway: one provider interface, its implementations, routing with fallback, usage and cost."""

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
    GeneratedImage,
    GeneratedVideo,
    VideoOperation,
    WorkKind,
)
from providers.gemini import GeminiProvider
from providers.offline import SAMPLE_SOURCE_TITLE, OfflineProvider
from providers.openai_compat import OpenAICompatibleProvider
from providers.perplexity import PerplexityProvider
from providers.pricing import PriceBook, load_price_book
from providers.router import ProviderRouter
from providers.usage import Usage, UsageLog, track_usage

__all__ = [
    "SAMPLE_SOURCE_TITLE",
    "AIAuthError",
    "AIContentBlockedError",
    "AIInvalidOutputError",
    "AIInvalidRequestError",
    "AIProviderError",
    "AIRateLimitError",
    "AIServerError",
    "AITimeoutError",
    "BaseProvider",
    "GeminiProvider",
    "GeneratedImage",
    "GeneratedVideo",
    "OfflineProvider",
    "OpenAICompatibleProvider",
    "PerplexityProvider",
    "PriceBook",
    "ProviderRouter",
    "Usage",
    "UsageLog",
    "VideoOperation",
    "WorkKind",
    "load_price_book",
    "track_usage",
]
