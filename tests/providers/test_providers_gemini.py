"""GeminiProvider: the real google-genai SDK (and the Gemini REST API for Imagen/Veo) against the local server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, Field

from providers.base import (
    AIAuthError,
    AIContentBlockedError,
    AIInvalidOutputError,
    AIInvalidRequestError,
    AIProviderError,
    AIRateLimitError,
    AIServerError,
    AITimeoutError,
)
from providers.gemini import GeminiProvider
from providers.usage import track_usage
from tests.support.provider_fixtures import API_KEY, provider_server_fixture, provider_server_session_fixture  # noqa: F401
from tests.support.provider_server import (
    DOWNLOAD,
    GENERATE,
    OPERATION,
    PREDICT,
    PREDICT_LONG,
    ProviderServer,
    Reply,
    gemini_image,
    gemini_prompt_blocked,
    gemini_text,
    google_error,
    tiny_png,
)


class Fact(BaseModel):
    name: str = Field(min_length=2)
    year: int = Field(ge=1800, le=2100)


def make(server: ProviderServer, **kwargs: object) -> GeminiProvider:
    options: dict[str, object] = {
        "timeout": 5.0,
        "image_model": "gemini-2.5-flash-image",
        "video_model": "veo-3.0-generate-001",
    }
    options.update(kwargs)
    return GeminiProvider(API_KEY, "gemini-2.5-pro", server.base_url, **options)  # type: ignore[arg-type]


async def test_text_with_usage_and_cost(provider_server: ProviderServer) -> None:
    provider_server.queue(
        GENERATE, Reply(json=gemini_text("Hello from Gemini", prompt_tokens=1000, output_tokens=2000))
    )
    with track_usage() as log:
        text = await make(provider_server).generate(
            "Say hello", system="Be brief", temperature=0.2, sample_context={"x": 1}
        )
    assert text == "Hello from Gemini"
    [request] = provider_server.requests_for(GENERATE)
    assert request.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.json["contents"][0]["parts"][0]["text"] == "Say hello"
    assert request.json["systemInstruction"]["parts"][0]["text"] == "Be brief"
    [usage] = log.records
    assert (usage.provider, usage.model, usage.kind) == ("gemini", "gemini-2.5-pro", "text")
    assert (usage.input_tokens, usage.output_tokens) == (1000, 2000)
    assert usage.cost_usd == Decimal("0.02125")  # 1000 x $1.25/M + 2000 x $10/M
    assert usage.ok and usage.latency_ms >= 0
    assert log.cost_usd == Decimal("0.02125")


async def test_json_in_markdown_fences_and_schema_sent(provider_server: ProviderServer) -> None:
    provider_server.queue(
        GENERATE, Reply(json=gemini_text('Here you go:\n```json\n{"name": "Founded", "year": 1999}\n```\nDone.'))
    )
    fact = await make(provider_server).generate_json("Give a fact", Fact, sample_context={})
    assert fact == Fact(name="Founded", year=1999)
    config = provider_server.requests_for(GENERATE)[0].json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["properties"]["year"]["maximum"] == 2100


async def test_dict_schema_returns_dict(provider_server: ProviderServer) -> None:
    provider_server.queue(GENERATE, Reply(json=gemini_text('{"title": "x", "tags": ["a"]}')))
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
        "required": ["title", "tags"],
    }
    assert await make(provider_server).generate_json("t", schema) == {"title": "x", "tags": ["a"]}


async def test_invalid_json_gets_one_repair_showing_the_errors(provider_server: ProviderServer) -> None:
    provider_server.queue(
        GENERATE,
        Reply(json=gemini_text('{"name": "Founded", "year": 1200}')),
        Reply(json=gemini_text('{"name": "Founded", "year": 1999}')),
    )
    with track_usage() as log:
        fact = await make(provider_server).generate_json("Give a fact", Fact)
    assert fact.year == 1999
    _, repair = provider_server.requests_for(GENERATE)
    repair_text = repair.json["contents"][0]["parts"][0]["text"]
    assert "Give a fact" in repair_text
    assert '"year": 1200' in repair_text  # the previous answer
    assert "year: Input should be greater than or equal to 1800" in repair_text  # the validation error
    assert [r.note for r in log.records] == ["", "repair"]


async def test_validate_callable_goes_through_the_repair_round(provider_server: ProviderServer) -> None:
    provider_server.queue(
        GENERATE,
        Reply(json=gemini_text('{"name": "Founded", "year": 1999}')),
        Reply(json=gemini_text('{"name": "Founded", "year": 2001}')),
    )

    def after_2000(fact: Fact) -> list[str]:
        return [] if fact.year > 2000 else [f"year {fact.year} must be after 2000"]

    fact = await make(provider_server).generate_json("Give a fact", Fact, validate=after_2000)
    assert fact.year == 2001
    assert "year 1999 must be after 2000" in provider_server.requests_for(GENERATE)[1].prompt_text


async def test_invalid_twice_raises_invalid_output(provider_server: ProviderServer) -> None:
    provider_server.queue(
        GENERATE, Reply(json=gemini_text("not json at all")), Reply(json=gemini_text("{still broken"))
    )
    with pytest.raises(AIInvalidOutputError) as caught:
        await make(provider_server).generate_json("Give a fact", Fact)
    assert not caught.value.retryable
    assert "gemini" in str(caught.value) and "gemini-2.5-pro" in str(caught.value)
    assert len(provider_server.requests_for(GENERATE)) == 2


async def test_rate_limit_with_retry_after_header(provider_server: ProviderServer) -> None:
    provider_server.queue(
        GENERATE, Reply(status=429, json=google_error(429, "Quota exceeded"), headers={"Retry-After": "7"})
    )
    with track_usage() as log, pytest.raises(AIRateLimitError) as caught:
        await make(provider_server).generate("hi")
    assert caught.value.retry_after == 7
    assert caught.value.retryable
    assert log.records[0].error == "AIRateLimitError" and log.records[0].cost_usd == 0


async def test_rate_limit_with_retry_info_detail(provider_server: ProviderServer) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]
    provider_server.queue(GENERATE, Reply(status=429, json=google_error(429, "Quota exceeded", details=details)))
    with pytest.raises(AIRateLimitError) as caught:
        await make(provider_server).generate("hi")
    assert caught.value.retry_after == 12


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(provider_server: ProviderServer, status: int) -> None:
    provider_server.queue(GENERATE, Reply(status=status, json=google_error(status, "backend trouble")))
    with pytest.raises(AIServerError) as caught:
        await make(provider_server).generate("hi")
    assert caught.value.retryable
    assert caught.value.status_code == status
    assert len(provider_server.requests_for(GENERATE)) == 1  # SDK retries are off


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors(provider_server: ProviderServer, status: int) -> None:
    provider_server.queue(GENERATE, Reply(status=status, json=google_error(status, "denied")))
    with pytest.raises(AIAuthError) as caught:
        await make(provider_server).generate("hi")
    assert not caught.value.retryable


async def test_invalid_key_400_is_auth_and_never_shows_the_key(provider_server: ProviderServer) -> None:
    body = google_error(400, f"API key not valid: {API_KEY}. Please pass a valid API key.")
    body["error"]["details"] = [{"reason": "API_KEY_INVALID"}]
    provider_server.queue(GENERATE, Reply(status=400, json=body))
    with pytest.raises(AIAuthError) as caught:
        await make(provider_server).generate("hi")
    assert API_KEY not in str(caught.value)
    assert "***" in str(caught.value)
    assert caught.value.__cause__ is None


async def test_bad_request(provider_server: ProviderServer) -> None:
    provider_server.queue(GENERATE, Reply(status=400, json=google_error(400, "Invalid value at generation_config")))
    with pytest.raises(AIInvalidRequestError) as caught:
        await make(provider_server).generate("hi")
    assert not caught.value.retryable
    assert "Invalid value" in str(caught.value)


async def test_read_timeout(provider_server: ProviderServer) -> None:
    provider_server.queue(GENERATE, Reply(json=gemini_text("late"), delay=1.5))
    with pytest.raises(AITimeoutError) as caught:
        await make(provider_server, timeout=0.3).generate("hi")
    assert caught.value.retryable
    assert API_KEY not in str(caught.value)


async def test_prompt_blocked(provider_server: ProviderServer) -> None:
    provider_server.queue(GENERATE, Reply(json=gemini_prompt_blocked("PROHIBITED_CONTENT")))
    with pytest.raises(AIContentBlockedError) as caught:
        await make(provider_server).generate("something bad")
    assert "PROHIBITED_CONTENT" in str(caught.value)
    assert not caught.value.retryable


async def test_answer_blocked_by_finish_reason(provider_server: ProviderServer) -> None:
    provider_server.queue(GENERATE, Reply(json=gemini_text("", finish_reason="SAFETY")))
    with track_usage() as log, pytest.raises(AIContentBlockedError):
        await make(provider_server).generate("hi")
    # A blocked answer is still billed: its tokens are recorded with the error.
    assert (log.records[0].error, log.records[0].input_tokens, log.records[0].output_tokens) == (
        "AIContentBlockedError",
        12,
        34,
    )


async def test_research_returns_grounding_sources(provider_server: ProviderServer) -> None:
    grounding = [("https://acme.example/about", "acme.example"), ("https://news.example/acme", "news.example")]
    provider_server.queue(GENERATE, Reply(json=gemini_text("Acme was founded in 1999.", grounding=grounding)))
    result = await make(provider_server).research("Research Acme", sample_context={"company_name": "Acme"})
    assert result.text == "Acme was founded in 1999."
    assert [(s.url, s.title) for s in result.sources] == grounding
    request = provider_server.requests_for(GENERATE)[0].json
    assert request["tools"] == [{"googleSearch": {}}]


async def test_gemini_image_inline_data(provider_server: ProviderServer) -> None:
    png = tiny_png(16, 9)
    provider_server.queue(GENERATE, Reply(json=gemini_image(png)))
    with track_usage() as log:
        image = await make(provider_server).generate_image("a red square", "16:9", sample_context={})
    assert image.data == png and image.mime_type == "image/png"
    assert (image.width, image.height) == (16, 9)
    request = provider_server.requests_for(GENERATE)[0]
    assert request.path.endswith("/gemini-2.5-flash-image:generateContent")
    assert request.json["generationConfig"]["responseModalities"] == ["IMAGE"]
    assert request.json["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"
    assert log.records[0].images == 1 and log.records[0].cost_usd > 0


async def test_imagen_predict_bytes(provider_server: ProviderServer) -> None:
    provider = make(provider_server, image_model="imagen-4.0-generate-001")
    with track_usage() as log:
        image = await provider.generate_image("a red square", "1.91:1")
    assert image.data == tiny_png() and (image.width, image.height) == (4, 3)
    [request] = provider_server.requests_for(PREDICT)
    assert request.path == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.json == {
        "instances": [{"prompt": "a red square"}],
        "parameters": {"sampleCount": 1, "aspectRatio": "16:9"},
    }
    assert log.records[0].cost_usd == Decimal("0.04")


async def test_imagen_filtered_is_blocked(provider_server: ProviderServer) -> None:
    provider_server.queue(PREDICT, Reply(json={"predictions": [{"raiFilteredReason": "filtered for safety"}]}))
    with pytest.raises(AIContentBlockedError):
        await make(provider_server, image_model="imagen-4.0-generate-001").generate_image("x")


async def test_imagen_rate_limit(provider_server: ProviderServer) -> None:
    provider_server.queue(PREDICT, Reply(status=429, json=google_error(429, "slow down"), headers={"Retry-After": "7"}))
    with pytest.raises(AIRateLimitError) as caught:
        await make(provider_server, image_model="imagen-4.0-generate-001").generate_image("x")
    assert caught.value.retry_after == 7


async def test_veo_start_poll_download(provider_server: ProviderServer) -> None:
    provider_server.files["vid123"] = b"\x00\x00\x00\x18ftypmp42 sample video bytes"
    name = "models/veo-3.0-generate-001/operations/op123"
    provider_server.queue(OPERATION, Reply(json={"name": name, "done": False}))
    provider = make(provider_server)
    with track_usage() as log:
        operation = await provider.start_video("a calm lake", duration_seconds=8, aspect_ratio="16:9")
        assert operation.name == name and not operation.done
        assert operation.model_dump_json()  # serializable for heartbeats
        operation = await provider.poll_video(operation)
        assert not operation.done
        operation = await provider.poll_video(operation)
    assert operation.done and operation.video is not None
    assert operation.video.data == provider_server.files["vid123"]
    assert operation.video_uri and "files/vid123" in operation.video_uri
    start = provider_server.requests_for(PREDICT_LONG)[0]
    assert start.json["parameters"] == {"aspectRatio": "16:9", "durationSeconds": 8}
    assert provider_server.requests_for(OPERATION)[0].path == f"/v1beta/{name}"
    [download] = provider_server.requests_for(DOWNLOAD)
    assert download.query == "alt=media" and download.headers["x-goog-api-key"] == API_KEY
    assert log.records[-1].video_seconds == 8
    assert log.cost_usd == Decimal("3.2")  # 8 s x $0.40


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        (3, AIInvalidRequestError, False),  # INVALID_ARGUMENT
        (8, AIRateLimitError, True),  # RESOURCE_EXHAUSTED
        (14, AIServerError, True),  # UNAVAILABLE
        (4, AITimeoutError, True),  # DEADLINE_EXCEEDED
        (7, AIAuthError, False),  # PERMISSION_DENIED
    ],
)
async def test_veo_operation_error_codes_are_grpc(
    code: int, error: type[AIProviderError], retryable: bool, provider_server: ProviderServer
) -> None:
    name = "models/veo-3.0-generate-001/operations/op123"
    provider_server.queue(
        OPERATION, Reply(json={"name": name, "done": True, "error": {"code": code, "message": "bad prompt"}})
    )
    provider = make(provider_server)
    operation = await provider.start_video("x")
    with pytest.raises(AIProviderError) as caught:
        await provider.poll_video(operation)
    assert "bad prompt" in str(caught.value)
    assert type(caught.value) is error and caught.value.retryable is retryable


async def test_connection_refused_is_retryable() -> None:
    provider = GeminiProvider(API_KEY, "gemini-2.5-pro", "http://127.0.0.1:9", timeout=2)
    with pytest.raises(AIServerError) as caught:
        await provider.generate("hi")
    assert caught.value.retryable and API_KEY not in str(caught.value)
