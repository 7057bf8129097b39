"""Cost of a provider call: genai-prices' bundled price data, with `pricing.json` (or PRICING_FILE) over it.

genai-prices knows token prices of most text models, with their long-context tiers, cached-input rates and request
fees. `pricing.json` holds what it lacks (per-image and per-second prices, the offline model, models it does not
know) and overrides: a field set there wins over genai-prices for that model. Prices come from the data bundled
with the installed genai-prices; nothing is fetched at run time (its opt-in `UpdatePrices` is never started).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

import genai_prices
from genai_prices import types as catalog_types
from genai_prices.data_snapshot import DataSnapshot
from pydantic import BaseModel, Field

DEFAULT_PRICING_FILE = Path(__file__).with_name("pricing.json")
_MILLION = Decimal(1_000_000)
# Our provider names -> genai-prices provider ids; others (openai-compatible hosts) are found by the model name.
_CATALOG_PROVIDERS = {"gemini": "google", "openai": "openai", "perplexity": "perplexity"}
_NOT_IN_CATALOG = {"offline"}  # sample content: priced by pricing.json only (0 unless a custom file says otherwise)


class ModelPrice(BaseModel):
    input_per_million: Decimal = Decimal("0")
    output_per_million: Decimal = Decimal("0")
    per_image: Decimal = Decimal("0")
    per_video_second: Decimal = Decimal("0")
    per_request: Decimal = Decimal("0")


@dataclass(frozen=True)
class CatalogModel:
    """A model genai-prices knows, with the provider whose prices apply."""

    provider: catalog_types.Provider
    model: catalog_types.ModelInfo


@cache
def _catalog() -> DataSnapshot:
    # Our own snapshot of the bundled data: even if some library started genai-prices' auto-update
    # (which replaces the global snapshot with downloaded prices), costs here stay reproducible and offline.
    from genai_prices.data import providers

    return DataSnapshot(providers=providers, from_auto_update=False)


def find_catalog_model(model: str, provider: str | None = None) -> CatalogModel | None:
    """genai-prices' entry for `model` (no `models/` prefix): under `provider`, by name alone, under our providers."""
    if provider in _NOT_IN_CATALOG:
        return None
    name = model.removeprefix("models/")
    hint = _CATALOG_PROVIDERS.get(provider or "")
    for provider_id in dict.fromkeys((hint, None, *_CATALOG_PROVIDERS.values())):
        try:
            found, info = _catalog().find_provider_model(name, None, provider_id, None)
        except LookupError:
            continue
        return CatalogModel(found, info)
    return None


def _base_rate(price: Decimal | catalog_types.TieredPrices | None) -> Decimal:
    if isinstance(price, catalog_types.TieredPrices):
        return price.base
    return price or Decimal("0")


class PriceBook(BaseModel):
    prices_as_of: str
    currency: str = "USD"
    notes: str = ""
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    def listed_price(self, model: str) -> ModelPrice | None:
        """The pricing file's entry: exact name, then without a `models/` prefix, then the longest known prefix."""
        name = model.removeprefix("models/")
        if name in self.models:
            return self.models[name]
        prefixes = [known for known in self.models if name.startswith(known + "-")]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def price_for(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """The base rates (below any long-context tier) today: the file's fields over genai-prices' prices."""
        listed = self.listed_price(model)
        found = find_catalog_model(model, provider)
        if found is None:
            return listed
        prices = found.model.get_prices(datetime.now(tz=UTC))
        base = ModelPrice(
            input_per_million=_base_rate(prices.input_mtok),
            output_per_million=_base_rate(prices.output_mtok),
            per_request=_base_rate(prices.requests_kcount) / 1000,
        )
        if listed is None:
            return base
        return base.model_copy(update={field: getattr(listed, field) for field in listed.model_fields_set})

    def cost(
        self,
        model: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        images: int = 0,
        video_seconds: float = 0.0,
        provider: str | None = None,
    ) -> tuple[Decimal, str]:
        """The call's cost in USD and a note (empty, or why the cost is 0).

        `input_tokens` counts every prompt token, `cached_input_tokens` those of them read from the provider's cache.
        `provider` is our provider's name (gemini, openai, perplexity, offline): it picks genai-prices' provider.
        """
        listed = self.listed_price(model)
        found = find_catalog_model(model, provider)
        if listed is None and found is None:
            return Decimal("0"), (
                f"no price for model {model!r} in genai-prices {genai_prices.__version__} "
                f"or the pricing file (as of {self.prices_as_of}); cost 0"
            )
        price = listed or ModelPrice()
        overridden = price.model_fields_set  # the fields the file sets win over genai-prices
        input_cost = price.input_per_million * input_tokens / _MILLION
        output_cost = price.output_per_million * output_tokens / _MILLION
        request_cost = price.per_request
        if found is not None:
            usage = genai_prices.Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=min(cached_input_tokens, input_tokens),
            )
            calculated = found.model.calc_price(usage, found.provider)
            if "input_per_million" not in overridden:
                input_cost = calculated.input_price
            if "output_per_million" not in overridden:
                output_cost = calculated.output_price
            if "per_request" not in overridden:  # what is neither input nor output: request fees
                request_cost = calculated.total_price - calculated.input_price - calculated.output_price
        cost = (
            input_cost
            + output_cost
            + price.per_image * images
            + price.per_video_second * Decimal(str(video_seconds))
            + request_cost
        )
        return cost.quantize(Decimal("0.000001")), ""


@lru_cache(maxsize=8)
def load_price_book(path: Path | None = None) -> PriceBook:
    file = path or DEFAULT_PRICING_FILE
    return PriceBook.model_validate(json.loads(file.read_text(encoding="utf-8")))
