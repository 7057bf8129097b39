"""OpenAICompatibleProvider and PerplexityProvider: the real openai SDK against the local server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, Field

from providers.base import (
    AIAuthError,
    AIContentBlockedError,
    AIInvalidOutputError,
    AIInvalidRequestError,
    AIRateLimitError,
    AIServerError,
    AITimeoutError,
)
from providers.openai_compat import OpenAIChatProvider, OpenAICompatibleProvider
from providers.perplexity import PerplexityProvider
from providers.usage import track_usage
from tests.support.provider_fixtures import API_KEY, provider_server_fixture, provider_server_session_fixture  # noqa: F401
from tests.support.provider_server import CHAT, ProviderServer, Reply, chat_completion, openai_error


class Fact(BaseModel):
    name: str = Field(min_length=2)
    year: int = Field(ge=1800, le=2100)


def openai_provider(server: ProviderServer, timeout: float = 5.0) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(API_KEY, "gpt-4o-mini", f"{server.base_url}/v1", timeout=timeout)


def perplexity_provider(server: ProviderServer, timeout: float = 5.0) -> PerplexityProvider:
    return PerplexityProvider(API_KEY, "sonar-pro", server.base_url, timeout=timeout)


PROVIDERS = {"openai": openai_provider, "perplexity": perplexity_provider}


@pytest.fixture(params=sorted(PROVIDERS))
def chat_provider(request: pytest.FixtureRequest, provider_server: ProviderServer) -> OpenAIChatProvider:
    return PROVIDERS[request.param](provider_server)


async def test_openai_text_with_usage_and_cost(provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion("Hello", prompt_tokens=1000, completion_tokens=2000)))
    with track_usage() as log:
        text = await openai_provider(provider_server).generate("Say hello", system="Be brief", sample_context={"a": 1})
    assert text == "Hello"
    [request] = provider_server.requests_for(CHAT)
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json["model"] == "gpt-4o-mini"
    assert request.json["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hello"},
    ]
    [usage] = log.records
    assert (usage.provider, usage.model, usage.kind, usage.input_tokens, usage.output_tokens) == (
        "openai",
        "gpt-4o-mini",
        "text",
        1000,
        2000,
    )
    assert usage.cost_usd == Decimal("0.00135")  # 1000 x $0.15/M + 2000 x $0.60/M


async def test_perplexity_text_cost_includes_request_fee(provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion("Hi", prompt_tokens=1000, completion_tokens=1000)))
    with track_usage() as log:
        await perplexity_provider(provider_server).generate("hi")
    assert provider_server.requests_for(CHAT)[0].path == "/chat/completions"
    assert log.records[0].cost_usd == Decimal("0.024")  # $0.003 + $0.015 + $0.006 request fee


async def test_json_in_fences_from_either_provider(
    chat_provider: OpenAIChatProvider, provider_server: ProviderServer
) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion('Sure!\n```json\n{"name": "Founded", "year": 1999}\n```')))
    fact = await chat_provider.generate_json("fact", Fact)
    assert fact.year == 1999 and len(provider_server.requests_for(CHAT)) == 1, "no repair needed for fenced JSON"


async def test_json_in_fences_and_response_format(provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion('Sure!\n```json\n{"name": "Founded", "year": 1999}\n```')))
    fact = await openai_provider(provider_server).generate_json("fact", Fact)
    assert fact.year == 1999
    response_format = provider_server.requests_for(CHAT)[0].json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Fact"
    assert response_format["json_schema"]["schema"]["required"] == ["name", "year"]


async def test_perplexity_json_schema_format(provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion('{"name": "Founded", "year": 1999}')))
    await perplexity_provider(provider_server).generate_json("fact", Fact)
    response_format = provider_server.requests_for(CHAT)[0].json["response_format"]
    assert response_format == {"type": "json_schema", "json_schema": {"schema": Fact.model_json_schema()}}


async def test_repair_then_success(chat_provider: OpenAIChatProvider, provider_server: ProviderServer) -> None:
    provider_server.queue(
        CHAT,
        Reply(json=chat_completion('{"name": "F"}')),
        Reply(json=chat_completion('{"name": "Founded", "year": 1999}')),
    )
    fact = await chat_provider.generate_json("fact", Fact)
    assert fact.name == "Founded"
    repair = provider_server.requests_for(CHAT)[1].json["messages"][-1]["content"]
    assert "name: String should have at least 2 characters" in repair
    assert "year: Field required" in repair
    assert '{"name": "F"}' in repair


async def test_invalid_twice(chat_provider: OpenAIChatProvider, provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion("nope")), Reply(json=chat_completion("[1, 2")))
    with pytest.raises(AIInvalidOutputError) as caught:
        await chat_provider.generate_json("fact", Fact)
    assert not caught.value.retryable


async def test_rate_limit_retry_after(chat_provider: OpenAIChatProvider, provider_server: ProviderServer) -> None:
    provider_server.queue(
        CHAT,
        Reply(status=429, json=openai_error("Rate limit reached", type_="rate_limit"), headers={"Retry-After": "7"}),
    )
    with pytest.raises(AIRateLimitError) as caught:
        await chat_provider.generate("hi")
    assert caught.value.retry_after == 7 and caught.value.retryable
    assert len(provider_server.requests_for(CHAT)) == 1  # max_retries=0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(chat_provider: OpenAIChatProvider, provider_server: ProviderServer, status: int) -> None:
    provider_server.queue(CHAT, Reply(status=status, json=openai_error("overloaded", type_="server_error")))
    with pytest.raises(AIServerError) as caught:
        await chat_provider.generate("hi")
    assert caught.value.retryable and caught.value.status_code == status
    assert len(provider_server.requests_for(CHAT)) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors(chat_provider: OpenAIChatProvider, provider_server: ProviderServer, status: int) -> None:
    provider_server.queue(CHAT, Reply(status=status, json=openai_error(f"Incorrect API key provided: {API_KEY}")))
    with pytest.raises(AIAuthError) as caught:
        await chat_provider.generate("hi")
    assert not caught.value.retryable
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value.args)


async def test_bad_request(chat_provider: OpenAIChatProvider, provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(status=400, json=openai_error("Invalid model 'nope'")))
    with pytest.raises(AIInvalidRequestError) as caught:
        await chat_provider.generate("hi")
    assert "Invalid model" in str(caught.value) and not caught.value.retryable


async def test_content_filter_400(chat_provider: OpenAIChatProvider, provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(status=400, json=openai_error("The prompt was filtered", code="content_filter")))
    with pytest.raises(AIContentBlockedError):
        await chat_provider.generate("hi")


async def test_content_filter_finish_reason(chat_provider: OpenAIChatProvider, provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion("", finish_reason="content_filter")))
    with track_usage() as log, pytest.raises(AIContentBlockedError):
        await chat_provider.generate("hi")
    assert log.records[0].error == "AIContentBlockedError" and log.records[0].input_tokens == 20


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_read_timeout(name: str, provider_server: ProviderServer) -> None:
    provider_server.queue(CHAT, Reply(json=chat_completion("late"), delay=1.5))
    with track_usage() as log, pytest.raises(AITimeoutError) as caught:
        await PROVIDERS[name](provider_server, timeout=0.3).generate("hi")
    assert caught.value.retryable
    assert log.records[0].error == "AITimeoutError"


async def test_connection_refused_is_retryable() -> None:
    provider = OpenAICompatibleProvider(API_KEY, "gpt-4o-mini", "http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(AIServerError) as caught:
        await provider.generate("hi")
    assert caught.value.retryable and API_KEY not in str(caught.value)


async def test_perplexity_research_returns_citations(provider_server: ProviderServer) -> None:
    provider_server.queue(
        CHAT,
        Reply(
            json=chat_completion(
                "Acme was founded in 1999 [1] and sells anvils [2].",
                model="sonar-pro",
                citations=["https://acme.example/about", "https://shop.example/anvils", "https://extra.example/x"],
                search_results=[
                    {"title": "About Acme", "url": "https://acme.example/about", "date": "2024-01-01"},
                    {"title": "Anvils", "url": "https://shop.example/anvils"},
                    {"title": "Only in results", "url": "https://results.example/y"},
                ],
            )
        ),
    )
    with track_usage() as log:
        result = await perplexity_provider(provider_server).research(
            "Research Acme", sample_context={"company_name": "Acme"}
        )
    assert result.text.startswith("Acme was founded")
    assert [(s.url, s.title) for s in result.sources] == [
        ("https://acme.example/about", "About Acme"),
        ("https://shop.example/anvils", "Anvils"),
        ("https://extra.example/x", ""),
        ("https://results.example/y", "Only in results"),
    ]
    assert log.records[0].kind == "research"
    request = provider_server.requests_for(CHAT)[0].json
    assert request["model"] == "sonar-pro" and request["messages"][-1]["content"] == "Research Acme"


async def test_openai_cannot_research() -> None:
    provider = OpenAICompatibleProvider(API_KEY, "gpt-4o-mini", "http://127.0.0.1:9/v1")
    with pytest.raises(AIInvalidRequestError, match="cannot do research"):
        await provider.research("x")
    with pytest.raises(AIInvalidRequestError, match="cannot do image"):
        await provider.generate_image("x")


async def test_unknown_model_costs_zero_with_note(provider_server: ProviderServer) -> None:
    provider = OpenAICompatibleProvider(None, "llama3.1:8b", f"{provider_server.base_url}/v1")
    with track_usage() as log:
        await provider.generate("hi")
    assert log.records[0].cost_usd == 0
    assert "no price for model 'llama3.1:8b'" in log.records[0].note
