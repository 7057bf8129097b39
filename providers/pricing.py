"""Cost of a provider call from the list prices in `pricing.json` (or the file PRICING_FILE names)."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_PRICING_FILE = Path(__file__).with_name("pricing.json")
_MILLION = Decimal(1_000_000)


class ModelPrice(BaseModel):
    input_per_million: Decimal = Decimal("0")
    output_per_million: Decimal = Decimal("0")
    per_image: Decimal = Decimal("0")
    per_video_second: Decimal = Decimal("0")
    per_request: Decimal = Decimal("0")


class PriceBook(BaseModel):
    prices_as_of: str
    currency: str = "USD"
    notes: str = ""
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    def price_for(self, model: str) -> ModelPrice | None:
        """Exact name first, then without a `models/` prefix, then the longest known prefix (dated variants)."""
        name = model.removeprefix("models/")
        if name in self.models:
            return self.models[name]
        prefixes = [known for known in self.models if name.startswith(known + "-")]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def cost(
        self,
        model: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        images: int = 0,
        video_seconds: float = 0.0,
    ) -> tuple[Decimal, str]:
        """The call's cost in USD and a note (empty, or why the cost is 0)."""
        price = self.price_for(model)
        if price is None:
            return Decimal("0"), f"no price for model {model!r} in pricing file (as of {self.prices_as_of}); cost 0"
        cost = (
            price.input_per_million * input_tokens / _MILLION
            + price.output_per_million * output_tokens / _MILLION
            + price.per_image * images
            + price.per_video_second * Decimal(str(video_seconds))
            + price.per_request
        )
        return cost.quantize(Decimal("0.000001")), ""


@lru_cache(maxsize=8)
def load_price_book(path: Path | None = None) -> PriceBook:
    file = path or DEFAULT_PRICING_FILE
    return PriceBook.model_validate(json.loads(file.read_text(encoding="utf-8")))
