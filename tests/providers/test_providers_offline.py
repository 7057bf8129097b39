"""OfflineProvider: sample content that satisfies every stage schema, real PNG and MP4 media, injected faults."""

from __future__ import annotations

import io
import time

import imageio.v3 as iio
import pytest
from PIL import Image
from pydantic import BaseModel, Field

from models.enums import Platform
from models.generation import (
    PLATFORM_LIMITS,
    SAMPLE_MARKER,
    BlogOutline,
    BlogSection,
    CompanyDNAExtraction,
    ImagePrompt,
    PersonaSet,
    SocialPostDraft,
    TopicPlan,
    VideoPrompt,
)
from providers.base import AIAuthError, AIInvalidOutputError, AIRateLimitError, AITimeoutError
from providers.offline import SAMPLE_SOURCE_TITLE, OfflineProvider
from providers.usage import track_usage

CONTEXT = {"company_name": "Acme Anvils", "website": "https://acme.example", "industry": "manufacturing"}


async def test_dna_research_and_extraction_fit_together() -> None:
    offline = OfflineProvider()
    research = await offline.research("Research Acme", sample_context=CONTEXT)
    assert len(research.sources) >= 8
    assert SAMPLE_MARKER in research.text
    assert all(s.url.startswith("https://example.com/") and SAMPLE_SOURCE_TITLE in s.title for s in research.sources)
    count = len(research.sources)
    dna = await offline.generate_json(
        "Extract",
        CompanyDNAExtraction,
        sample_context={**CONTEXT, "source_count": count},
        validate=lambda d: d.check_against(count),
    )
    assert len(dna.data_points) >= 30
    assert dna.check_against(count) == []
    assert SAMPLE_MARKER in dna.summary
    # a small source list still gives valid indexes
    small = await offline.generate_json("Extract", CompanyDNAExtraction, sample_context={"source_count": 2})
    assert small.check_against(2) == []


async def test_personas_topics_outline() -> None:
    offline = OfflineProvider()
    personas = await offline.generate_json("personas", PersonaSet, sample_context=CONTEXT)
    assert len(personas.personas) == 6
    assert all(SAMPLE_MARKER in p.summary for p in personas.personas)
    names = [p.name for p in personas.personas[:3]]
    plan = await offline.generate_json(
        "topics", TopicPlan, sample_context={**CONTEXT, "persona_names": names, "month": "2026-03"}
    )
    assert {t.persona_name for t in plan.topics} == set(names)
    assert all(t.persona_index is not None and names[t.persona_index] == t.persona_name for t in plan.topics)
    outline = await offline.generate_json(
        "outline", BlogOutline, sample_context={**CONTEXT, "topic_title": "AI", "target_words": 3000}
    )
    assert len(outline.meta_description) <= 160
    assert abs(outline.target_words - 3000) <= 300


@pytest.mark.parametrize("words", [150, 400, 900])
async def test_blog_section_hits_word_count_and_cites_real_sources(words: int) -> None:
    section = await OfflineProvider().generate_json(
        "write", BlogSection, sample_context={**CONTEXT, "words": words, "source_count": 5, "section_heading": "Why"}
    )
    assert abs(section.word_count - words) <= max(15, words * 0.08)
    assert section.heading == "Why"
    assert section.check_against(5) == []
    assert section.body_markdown.startswith(SAMPLE_MARKER)


@pytest.mark.parametrize("platform", list(Platform))
async def test_social_drafts_respect_platform_limits(platform: Platform) -> None:
    draft = await OfflineProvider().generate_json(
        "social",
        SocialPostDraft,
        sample_context={**CONTEXT, "platform": platform.value, "topic_title": "Forging " * 30},
    )
    assert draft.platform == platform
    assert draft.check_limits() == []
    assert len(draft.text) <= PLATFORM_LIMITS[platform].max_chars
    assert SAMPLE_MARKER in draft.text


async def test_media_prompts_and_unknown_schemas() -> None:
    offline = OfflineProvider()
    assert (await offline.generate_json("img", ImagePrompt, sample_context=CONTEXT)).prompt
    assert (await offline.generate_json("vid", VideoPrompt, sample_context=CONTEXT)).duration_seconds == 8

    class Unknown(BaseModel):
        title: str = Field(min_length=30)
        count: int = Field(ge=3, le=5)
        tags: list[str] = Field(min_length=2)
        slug: str = Field(pattern=r"^[a-z]+(-[a-z]+)*$")

    value = await offline.generate_json("x", Unknown)
    assert len(value.title) >= 30 and 3 <= value.count <= 5 and len(value.tags) >= 2
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "kind": {"enum": ["a", "b"]},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
        },
        "required": ["name", "score", "ok", "kind", "items"],
        "$defs": {
            "Item": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 4}}, "required": ["n"]}
        },
    }
    result = await offline.generate_json("x", schema)
    assert result["kind"] == "a" and len(result["items"]) == 2 and result["items"][0]["n"] >= 4


async def test_deterministic() -> None:
    a = await OfflineProvider().generate_json("same prompt", PersonaSet, sample_context=CONTEXT)
    b = await OfflineProvider().generate_json("same prompt", PersonaSet, sample_context=CONTEXT)
    assert a == b
    assert await OfflineProvider().generate("p", sample_context={"words": 50}) == await OfflineProvider().generate(
        "p", sample_context={"words": 50}
    )


@pytest.mark.parametrize(
    ("ratio", "expected"), [("1:1", 1.0), ("4:5", 0.8), ("9:16", 9 / 16), ("16:9", 16 / 9), ("1.91:1", 1.91)]
)
async def test_image_is_png_with_aspect_ratio(ratio: str, expected: float) -> None:
    with track_usage() as log:
        image = await OfflineProvider().generate_image("A bright anvil on a workbench", ratio)
    assert image.mime_type == "image/png"
    with Image.open(io.BytesIO(image.data)) as picture:
        assert picture.format == "PNG"
        width, height = picture.size
    assert (width, height) == (image.width, image.height)
    assert abs(width / height - expected) < 0.01
    assert log.records[0].images == 1 and log.records[0].cost_usd == 0 and log.records[0].model == "offline-sample"


async def test_video_is_a_real_mp4() -> None:
    offline = OfflineProvider()
    operation = await offline.start_video("A slow pan over the forge", duration_seconds=3, aspect_ratio="16:9")
    assert not operation.done
    operation = await offline.poll_video(operation)
    assert operation.done and operation.video is not None
    data = operation.video.data
    assert data[4:8] == b"ftyp" and operation.video.mime_type == "video/mp4"
    frame = iio.imread(data, index=0, extension=".mp4", plugin="pyav") if _has_pyav() else _first_frame(data)
    assert frame.shape[1] / frame.shape[0] == pytest.approx(16 / 9, rel=0.02)
    assert operation.video.duration_seconds == 3


async def test_the_render_starts_at_the_submit_and_its_poll_collects_it() -> None:
    """Like a hosted model, the offline provider renders from the submit on and hints that its first poll may come
    at once; a poll of an operation it holds no render for (another worker's submit) renders it then."""
    offline = OfflineProvider()
    try:
        operation = await offline.start_video("A slow pan over the forge", duration_seconds=2)
        assert operation.poll_after_seconds == 0.0 and operation.name in offline._renders
        done = await offline.poll_video(operation)
        assert done.done and done.video is not None and not offline._renders
        again = await offline.poll_video(operation)  # no render held: rendered now
        assert again.video is not None and again.video.mime_type == done.video.mime_type
    finally:
        await offline.close()


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _first_frame(data: bytes):  # type: ignore[no-untyped-def]
    import os
    import tempfile

    import imageio.v2 as imageio

    handle, path = tempfile.mkstemp(suffix=".mp4")
    os.write(handle, data)
    os.close(handle)
    try:
        reader = imageio.get_reader(path, format="FFMPEG")  # type: ignore[arg-type]
        try:
            assert reader.count_frames() >= 20  # type: ignore[attr-defined]
            return reader.get_data(0)
        finally:
            reader.close()
    finally:
        os.unlink(path)


async def test_fault_rate_limit_every_second_call() -> None:
    offline = OfflineProvider(fault="rate_limit", fault_every=2)
    await offline.generate("one")
    with pytest.raises(AIRateLimitError) as caught:
        await offline.generate("two")
    assert caught.value.retry_after == 1.0 and caught.value.retryable
    await offline.generate("three")


@pytest.mark.parametrize(("fault", "error"), [("timeout", AITimeoutError), ("auth", AIAuthError)])
async def test_fault_timeout_and_auth(fault: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await OfflineProvider(fault=fault, fault_every=1).research("x")  # type: ignore[arg-type]


async def test_fault_invalid_json_repaired_or_failing() -> None:
    with track_usage() as log:
        personas = await OfflineProvider(fault="invalid_json", fault_every=2).generate_json("p", PersonaSet)
        assert len(personas.personas) == 6
    assert len(log.records) == 1  # call 1 fine
    with track_usage() as log:
        offline = OfflineProvider(fault="invalid_json", fault_every=1)
        with pytest.raises(AIInvalidOutputError):
            await offline.generate_json("p", PersonaSet)
    assert [r.note for r in log.records] == ["", "repair"]


async def test_latency_setting() -> None:
    offline = OfflineProvider(latency_ms=60, jitter_ms=20)
    started = time.perf_counter()
    await offline.generate("x")
    assert time.perf_counter() - started >= 0.06
