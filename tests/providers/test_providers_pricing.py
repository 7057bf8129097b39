"""Cost from genai-prices' bundled data with pricing.json over it: tiers, cached input, gaps, overrides, no network."""

from __future__ import annotations

import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from providers.gemini import GeminiProvider
from providers.openai_compat import OpenAICompatibleProvider
from providers.pricing import PriceBook, find_catalog_model, load_price_book
from providers.usage import track_usage
from tests.support.provider_fixtures import API_KEY, provider_server_fixture, provider_server_session_fixture  # noqa: F401
from tests.support.provider_server import CHAT, GENERATE, ProviderServer, Reply, chat_completion, gemini_text


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pricing must never reach the internet: any connection but to the local test server fails the test."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"pricing tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


async def test_long_prompt_priced_at_long_context_rate(provider_server: ProviderServer) -> None:
    provider_server.queue(GENERATE, Reply(json=gemini_text("Long", prompt_tokens=250_000, output_tokens=3_000)))
    with track_usage() as log:
        await GeminiProvider(API_KEY, "gemini-2.5-pro", provider_server.base_url, timeout=5.0).generate("long")
    # Above 200k prompt tokens every token costs the long-context rate: $2.50/M in, $15/M out
    # (pricing.json's short-prompt rates alone gave 250k x $1.25/M + 3k x $10/M = $0.3425).
    assert log.records[0].cost_usd == Decimal("0.67")
    book = load_price_book()
    assert book.cost("gemini-2.5-pro", input_tokens=200_000, output_tokens=3_000)[0] == Decimal("0.28")


async def test_cached_input_tokens_cost_the_cache_rate(provider_server: ProviderServer) -> None:
    body = gemini_text("Cached", prompt_tokens=100_000, output_tokens=0)
    body["usageMetadata"]["cachedContentTokenCount"] = 80_000
    provider_server.queue(GENERATE, Reply(json=body))
    completion = chat_completion("Cached", prompt_tokens=1_000, completion_tokens=0)
    completion["usage"]["prompt_tokens_details"] = {"cached_tokens": 600}
    provider_server.queue(CHAT, Reply(json=completion))
    with track_usage() as log:
        await GeminiProvider(API_KEY, "gemini-2.5-pro", provider_server.base_url, timeout=5.0).generate("cached")
        await OpenAICompatibleProvider(API_KEY, "gpt-4o-mini", f"{provider_server.base_url}/v1").generate("cached")
    gemini, openai = log.records
    assert gemini.cost_usd == Decimal("0.035")  # 20k x $1.25/M + 80k cached x $0.125/M
    assert openai.cost_usd == Decimal("0.000105")  # 400 x $0.15/M + 600 cached x $0.075/M


def test_model_only_in_pricing_file_gets_its_price(tmp_path: Path) -> None:
    book = load_price_book()
    assert find_catalog_model("veo-3.0-generate-001") is None  # genai-prices has no per-second video prices
    assert book.cost("veo-3.0-generate-001", video_seconds=8)[0] == Decimal("3.2")
    assert book.cost("imagen-4.0-fast-generate-001", images=3)[0] == Decimal("0.06")
    house = PriceBook.model_validate(
        {"prices_as_of": "2030-01-01", "models": {"house-model": {"input_per_million": "2", "per_request": "0.01"}}}
    )
    assert house.cost("house-model-2030", input_tokens=500_000)[0] == Decimal("1.01")
    assert house.cost("offline-sample", input_tokens=500_000, provider="offline")[0] == 0


def test_pricing_file_field_overrides_genai_prices(tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    override = {"gemini-2.5-pro": {"input_per_million": "100"}, "sonar": {"per_request": "0.005"}}
    file.write_text(json.dumps({"prices_as_of": "2030-01-01", "models": override}))
    book = load_price_book(file)
    # The input rate is the file's; the output rate (unset there) is still genai-prices' long-context one.
    cost, note = book.cost("gemini-2.5-pro", input_tokens=250_000, output_tokens=1_000, provider="gemini")
    assert (cost, note) == (Decimal("25.015"), "")
    price = book.price_for("gemini-2.5-pro")
    assert price is not None and (price.input_per_million, price.output_per_million) == (100, 10)
    # genai-prices charges Sonar's high-context request fee ($12 per 1000); the file's low-context fee wins.
    assert load_price_book().cost("sonar", provider="perplexity")[0] == Decimal("0.005")
    assert PriceBook(prices_as_of="2030-01-01").cost("sonar", provider="perplexity")[0] == Decimal("0.012")


def test_unknown_model_costs_nothing_and_says_why() -> None:
    cost, note = load_price_book().cost("mystery-model", input_tokens=5, provider="openai")
    assert cost == 0 and "mystery-model" in note and "genai-prices" in note
