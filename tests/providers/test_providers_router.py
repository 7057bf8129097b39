"""ProviderRouter (chains, fallback, settings), usage logs across asyncio tasks, pricing, JSON extraction."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from models.generation import PersonaSet
from models.settings import Settings
from providers.base import (
    AIAuthError,
    AIInvalidRequestError,
    AIRateLimitError,
    AIServerError,
    AITimeoutError,
    WorkKind,
)
from providers.gemini import GeminiProvider
from providers.offline import OfflineProvider
from providers.openai_compat import OpenAICompatibleProvider
from providers.pricing import DEFAULT_PRICING_FILE, load_price_book
from providers.router import ProviderRouter
from providers.structured import check_against_json_schema, extract_json
from providers.usage import track_usage
from tests.support.provider_fixtures import API_KEY, provider_server_fixture, provider_server_session_fixture  # noqa: F401
from tests.support.provider_server import CHAT, GENERATE, ProviderServer, Reply, chat_completion, google_error


class Answer(BaseModel):
    answer: str


def settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "ai_provider": "auto",
        "gemini_api_key": None,
        "perplexity_api_key": None,
        "openai_api_key": None,
        "openai_base_url": None,
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


def real_pair(server: ProviderServer) -> tuple[GeminiProvider, OpenAICompatibleProvider]:
    gemini = GeminiProvider(API_KEY, "gemini-2.5-flash", server.base_url, timeout=5)
    openai = OpenAICompatibleProvider(API_KEY, "gpt-4o", f"{server.base_url}/v1", timeout=5)
    return gemini, openai


async def test_fallback_after_retryable_failure_is_recorded(provider_server: ProviderServer) -> None:
    gemini, openai = real_pair(provider_server)
    router = ProviderRouter(chains={"json": [gemini, openai]})
    provider_server.queue(GENERATE, Reply(status=429, json=google_error(429, "quota"), headers={"Retry-After": "7"}))
    provider_server.queue(
        CHAT, Reply(json=chat_completion('{"answer": "42"}', prompt_tokens=100, completion_tokens=10))
    )
    with track_usage() as log:
        result = await router.generate_json("q", Answer, sample_context={})
    assert result == Answer(answer="42")
    failed, served = log.records
    assert (failed.provider, failed.error, failed.fallback_from) == ("gemini", "AIRateLimitError", None)
    assert (served.provider, served.model, served.fallback_from, served.error) == ("openai", "gpt-4o", "gemini", None)
    assert log.providers == ["openai"] and log.models == ["gpt-4o"]
    assert log.cost_usd == Decimal("0.00035")  # 100 x $2.50/M + 10 x $10/M


@pytest.mark.parametrize(("status", "error"), [(401, AIAuthError), (400, AIInvalidRequestError)])
async def test_no_fallback_on_non_retryable(
    provider_server: ProviderServer, status: int, error: type[Exception]
) -> None:
    gemini, openai = real_pair(provider_server)
    router = ProviderRouter(chains={WorkKind.TEXT: [gemini, openai]})
    provider_server.queue(GENERATE, Reply(status=status, json=google_error(status, "no")))
    with pytest.raises(error):
        await router.generate("q", sample_context={})
    assert provider_server.requests_for(CHAT) == []


async def test_all_fail_raises_the_last_retryable_error(provider_server: ProviderServer) -> None:
    gemini, openai = real_pair(provider_server)
    router = ProviderRouter(chains={"text": [gemini, openai]})
    provider_server.queue(GENERATE, Reply(status=503, json=google_error(503, "down")))
    provider_server.queue(CHAT, Reply(status=500, json={"error": {"message": "down too"}}))
    with track_usage() as log, pytest.raises(AIServerError) as caught:
        await router.generate("q")
    assert caught.value.provider == "openai" and caught.value.retryable
    assert [r.fallback_from for r in log.records] == [None, "gemini"]
    assert log.providers == []


async def test_fallback_between_offline_providers_for_every_kind() -> None:
    class SecondOffline(OfflineProvider):
        name = "offline-b"

    flaky = OfflineProvider(fault="timeout", fault_every=1)
    router = ProviderRouter(chains={kind: [flaky, SecondOffline()] for kind in WorkKind})
    with track_usage() as log:
        assert (await router.research("r", sample_context={})).sources
        assert await router.generate("g", sample_context={})
        assert len((await router.generate_json("j", PersonaSet, sample_context={})).personas) == 6
        assert (await router.generate_image("i", "4:5", sample_context={})).height == 1024
        operation = await router.start_video("v", duration_seconds=1, sample_context={})
        assert (await router.poll_video(operation)).done
    served = [r for r in log.records if r.ok]
    assert len(served) == 6 and all(r.fallback_from == "offline" for r in served[:5])
    assert {r.provider for r in served} == {"offline-b"}  # the poll went to the provider that started the video
    assert {r.error for r in log.failures} == {"AITimeoutError"}


async def test_empty_chain_and_unknown_poller() -> None:
    router = ProviderRouter(chains={"text": [OfflineProvider()]})
    with pytest.raises(AIInvalidRequestError, match="no provider is configured for image"):
        await router.generate_image("x")
    operation = await OfflineProvider().start_video("x")
    with pytest.raises(AIInvalidRequestError):
        await router.poll_video(operation.model_copy(update={"provider": "gemini"}))


async def test_usage_log_collects_across_gather_and_nesting() -> None:
    offline = OfflineProvider(latency_ms=20)
    with track_usage() as outer:
        with track_usage() as inner:
            await asyncio.gather(*(offline.generate(f"p{i}", sample_context={}) for i in range(5)))
        async with asyncio.TaskGroup() as group:
            group.create_task(offline.research("r"))
            group.create_task(offline.generate_image("i"))
    assert len(inner.records) == 5
    assert len(outer.records) == 7
    assert outer.input_tokens > 0 and outer.output_tokens > 0
    assert outer.cost_usd == 0 and outer.providers == ["offline"] and outer.models == ["offline-sample"]
    assert {r.kind for r in outer.records} == {"text", "research", "image"}
    summary = outer.summary()
    assert summary["calls"] == 7 and json.dumps(summary)
    # outside any block nothing is recorded and nothing breaks
    assert await offline.generate("alone")


def test_from_settings_without_keys_is_offline(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The choice is logged once per process: forget what earlier tests in this process logged.
    monkeypatch.setattr("providers.router._logged_descriptions", set())
    with caplog.at_level(logging.INFO, logger="providers.router"):
        router = ProviderRouter.from_settings(settings(ai_text_providers="gemini,perplexity,openai,offline"))
    assert router.is_offline
    assert router.describe() == {kind.value: ["offline/offline-sample"] for kind in WorkKind}
    assert "AI_PROVIDER=auto" in caplog.text and "offline/offline-sample" in caplog.text


def test_from_settings_auto_uses_keys_and_chains() -> None:
    router = ProviderRouter.from_settings(
        settings(
            gemini_api_key="g-key-123456",
            perplexity_api_key="p-key-123456",
            gemini_image_backend="imagen",
            offline_fault="rate_limit",
        )
    )
    described = router.describe()
    assert described["research"] == ["perplexity/sonar-pro", "gemini/gemini-2.5-pro"]
    assert described["text"] == ["gemini/gemini-2.5-pro", "perplexity/sonar-pro"]
    assert described["image"] == ["gemini/imagen-4.0-generate-001"]
    assert described["video"] == ["gemini/veo-3.0-generate-001"]
    assert not router.is_offline
    assert "g-key-123456" not in repr(router.chain("text"))


def test_from_settings_local_openai_compatible_without_key() -> None:
    router = ProviderRouter.from_settings(
        settings(openai_base_url="http://127.0.0.1:11434/v1", openai_model="llama3.1:8b", ai_text_providers="openai")
    )
    assert router.describe()["text"] == ["openai/llama3.1:8b"]
    assert router.describe()["research"] == ["offline/offline-sample"]


async def test_research_without_a_research_provider_is_said_plainly(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("providers.router._logged_descriptions", set())
    with caplog.at_level(logging.WARNING, logger="providers.router"):
        ProviderRouter.from_settings(settings(openai_api_key="o-key-123456"))
    assert "research uses the offline provider's sample sources" in caplog.text
    forced = ProviderRouter.from_settings(settings(ai_provider="openai", openai_api_key="o-key-123456"))
    with pytest.raises(AIInvalidRequestError) as caught:
        await forced.research("Acme")
    assert "PERPLEXITY_API_KEY or GEMINI_API_KEY" in str(caught.value) and not caught.value.retryable


def test_from_settings_forced() -> None:
    router = ProviderRouter.from_settings(settings(ai_provider="perplexity", perplexity_api_key="p-key-123456"))
    assert router.describe()["research"] == ["perplexity/sonar-pro"]
    assert router.describe()["image"] == []
    assert ProviderRouter.from_settings(settings(ai_provider="offline", gemini_api_key="g-key-123456")).is_offline
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        ProviderRouter.from_settings(settings(ai_provider="gemini"))


async def test_offline_faults_from_settings() -> None:
    router = ProviderRouter.from_settings(
        settings(ai_provider="offline", offline_fault="rate_limit", offline_fault_every=1)
    )
    with pytest.raises(AIRateLimitError):
        await router.generate("x")
    timeouts = ProviderRouter.from_settings(
        settings(ai_provider="offline", offline_fault="timeout", offline_fault_every=2)
    )
    await timeouts.generate("x")
    with pytest.raises(AITimeoutError):
        await timeouts.generate("x")


def test_pricing_file() -> None:
    book = load_price_book()
    assert len(book.prices_as_of) == 10 and book.prices_as_of[4] == "-"
    for model in (
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-image",
        "imagen-4.0-generate-001",
        "veo-3.0-generate-001",
        "sonar",
        "sonar-pro",
        "gpt-4o",
        "gpt-4o-mini",
        "offline-sample",
    ):
        assert book.price_for(model) is not None, model
    assert book.cost("gpt-4o", input_tokens=1_000_000, output_tokens=1_000_000)[0] == Decimal("12.5")
    assert book.cost("models/gemini-2.5-flash", input_tokens=1_000_000)[0] == Decimal("0.3")
    assert book.cost("gpt-4o-2024-08-06", output_tokens=1_000_000)[0] == Decimal("10")
    assert book.cost("veo-3.0-generate-001", video_seconds=8)[0] == Decimal("3.2")
    cost, note = book.cost("mystery-model", input_tokens=5)
    assert cost == 0 and "mystery-model" in note
    assert DEFAULT_PRICING_FILE.name == "pricing.json"


def test_custom_pricing_file(tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    file.write_text(
        json.dumps({"prices_as_of": "2030-01-01", "models": {"offline-sample": {"input_per_million": "1000000"}}})
    )
    router = ProviderRouter.from_settings(settings(ai_provider="offline", ai_pricing_file=file))
    assert router.chain("text")[0].pricing.prices_as_of == "2030-01-01"


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        'Here is the JSON you asked for:\n```\n{"a": 1}\n```\nHope it helps.',
        'Sure! {"a": 1} is the answer.',
        '\ufeff  {"a": 1}  ',
    ],
)
def test_extract_json(text: str) -> None:
    assert extract_json(text) == {"a": 1}


def test_extract_json_arrays_and_failure() -> None:
    assert extract_json("The list: [1, 2, 3].") == [1, 2, 3]
    with pytest.raises(ValueError):
        extract_json("no json here {oops")
    assert OfflineProvider().extract_json('x ```json\n[{"b": 2}]\n```') == [{"b": 2}]


def test_dict_schema_check() -> None:
    schema = {
        "type": "object",
        "required": ["name", "tags"],
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
    }
    assert check_against_json_schema({"name": "ok", "tags": ["a"]}, schema) == []
    problems = check_against_json_schema({"name": "x", "tags": [1]}, schema)
    assert "name: shorter than 2 characters" in problems and "tags[0]: expected string, got int" in problems
    assert check_against_json_schema({"tags": []}, schema) == [
        "(root): missing required field 'name'",
        "tags: needs at least 1 items, got 0",
    ]


async def test_hand_built_chain_skips_providers_that_cannot_do_the_kind() -> None:
    openai = OpenAICompatibleProvider(API_KEY, "gpt-4o", "http://127.0.0.1:9/v1")
    router = ProviderRouter(chains={"research": [openai, OfflineProvider()]})
    with track_usage() as log:
        assert (await router.research("r")).sources
    assert [r.provider for r in log.records] == ["offline"] and log.records[0].fallback_from is None


def test_gemini_without_key_is_an_auth_error() -> None:
    with pytest.raises(AIAuthError, match="GEMINI_API_KEY"):
        GeminiProvider(None, "gemini-2.5-pro")
