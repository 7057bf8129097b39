"""The media stage's activities on a real PostgreSQL: images per platform and videos per blog post, drawn by the
offline provider or fetched by the real google-genai SDK from the local Gemini protocol server; the files in the
media store, idempotency, video renders submitted once (a retried submit resumes the saved operation) and polled by
short activities, failures, deadlines and cancellation."""

import asyncio
import dataclasses
import io
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlmodel import col, select
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deps import StageDeps
from activities.media import MediaStage, alt_text_from, excerpt, write_atomically
from models.contracts import StageInput, StageResult, VideoPoll, VideoRender, VideoSubmit
from models.db import Database
from models.enums import JobStatus, JobType, MediaKind, Platform
from models.generation import PLATFORM_ASPECT_RATIOS
from models.media_store import media_file, media_path, resolve_media_path
from models.settings import Settings
from models.stores.jobs import JobStore
from models.tables import (
    AIJob,
    BlogPost,
    BlogPostRevision,
    Company,
    JobStep,
    MediaAsset,
    Persona,
    SocialPost,
    Topic,
)
from providers.base import BaseProvider, GeneratedImage, VideoOperation, WorkKind, aspect_size
from providers.gemini import GeminiProvider
from providers.offline import OfflineProvider
from providers.router import ProviderRouter
from tests.support.provider_fixtures import API_KEY, provider_server_fixture, provider_server_session_fixture  # noqa: F401
from tests.support.provider_server import OPERATION, PREDICT, PREDICT_LONG, ProviderServer, Reply, google_error
from tests.support.stack import Tenant, make_tenant

VEO = "veo-3.0-generate-001"
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42 sample video bytes from the protocol server"


@dataclasses.dataclass
class Seeded:
    tenant: Tenant
    company: Company
    blog_post: BlogPost
    posts: dict[Platform, SocialPost]


async def seed(db: Database, *, image_prompts: bool = False) -> Seeded:
    """A tenant with a company, its persona, topic, blog post (one revision) and a social post per platform."""
    tenant = await make_tenant(db, name=f"Media tenant {uuid.uuid4().hex[:6]}")
    async with db.session() as session:
        company = Company(
            tenant_id=tenant.id, name="Bright Beans", industry="Specialty coffee", website="https://bright.example"
        )
        session.add(company)
        await session.flush()
        persona = Persona(tenant_id=tenant.id, company_id=company.id, name="Office Olivia", role="Office manager")
        session.add(persona)
        await session.flush()
        topic = Topic(
            tenant_id=tenant.id,
            company_id=company.id,
            persona_id=persona.id,
            month="2026-03",
            title="Better office coffee",
        )
        session.add(topic)
        await session.flush()
        blog = BlogPost(
            tenant_id=tenant.id,
            company_id=company.id,
            topic_id=topic.id,
            title="How to brew better coffee at the office",
            slug="better-office-coffee",
            meta_description="Five habits that make office coffee worth walking to the kitchen for.",
        )
        session.add(blog)
        await session.flush()
        session.add(
            BlogPostRevision(
                tenant_id=tenant.id,
                blog_post_id=blog.id,
                revision=1,
                markdown="# Better office coffee\n\n" + "Grind fresh. " * 400,
            )
        )
        posts = {
            platform: SocialPost(
                tenant_id=tenant.id,
                company_id=company.id,
                blog_post_id=blog.id,
                platform=platform,
                text=f"Office coffee that people queue for: five habits ({platform.value}). #coffee",
                image_prompt=(
                    f"A sunlit office kitchen with a steaming pour-over coffee, for {platform.value}. Warm tones."
                    if image_prompts
                    else ""
                ),
            )
            for platform in Platform
        }
        session.add_all(posts.values())
        await session.commit()
    return Seeded(tenant=tenant, company=company, blog_post=blog, posts=posts)


async def new_job(db: Database, seeded: Seeded, job_type: JobType, **inputs: Any) -> AIJob:
    async with db.session() as session:
        job = AIJob(tenant_id=seeded.tenant.id, company_id=seeded.company.id, job_type=job_type, **inputs)
        session.add(job)
        await session.commit()
        return job


async def job_row(db: Database, job_id: uuid.UUID) -> AIJob:
    async with db.session() as session:
        row = await session.get(AIJob, job_id)
    assert row is not None
    return row


async def assets_of(db: Database, job_id: uuid.UUID) -> list[MediaAsset]:
    async with db.session() as session:
        return list((await session.exec(select(MediaAsset).where(col(MediaAsset.job_id) == job_id))).all())


def files_under(root: Path) -> list[Path]:
    """Every file in the media store, temporary ones included."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(media_dir=tmp_path / "media", _env_file=None)  # type: ignore[call-arg]


class Activity:
    """An ActivityEnvironment set up like the media queue runs video activities, recording every heartbeat."""

    def __init__(self, attempt: int = 1, heartbeat_details: Sequence[Any] = ()) -> None:
        self.env = ActivityEnvironment()
        self.env.info = dataclasses.replace(
            ActivityEnvironment.default_info(),
            activity_id=uuid.uuid4().hex[:8],  # each run is its own activity, as Temporal numbers them
            attempt=attempt,
            heartbeat_details=list(heartbeat_details),
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=60),
            task_queue="media",
        )
        self.heartbeats: list[tuple[Any, ...]] = []
        self.env.on_heartbeat = lambda *details: self.heartbeats.append(details)

    async def run(self, method: Any, job: AIJob) -> StageResult:
        result: StageResult = await self.env.run(method, StageInput(job_id=job.id))
        return result

    async def call(self, method: Any, argument: Any) -> VideoRender:
        render: VideoRender = await self.env.run(method, argument)
        return render

    def messages(self) -> list[str]:
        return [d[0]["message"] for d in self.heartbeats if d and "message" in d[0]]

    def last_details(self) -> list[Any]:
        """The last heartbeat's details as the next attempt receives them: through the data converter."""
        converter = pydantic_data_converter.payload_converter
        return converter.from_payloads(converter.to_payloads(list(self.heartbeats[-1])))


def offline_router(provider: BaseProvider | None = None) -> ProviderRouter:
    provider = provider or OfflineProvider()
    return ProviderRouter({kind: [provider] for kind in WorkKind})


def gemini_router(server: ProviderServer, offline: OfflineProvider | None = None) -> ProviderRouter:
    """Prompts from the offline provider; images (Imagen) and video (Veo) from the Gemini protocol server."""
    gemini = GeminiProvider(
        API_KEY, "gemini-2.5-pro", server.base_url, timeout=5.0, image_model="imagen-4.0-generate-001", video_model=VEO
    )
    return ProviderRouter(
        {WorkKind.JSON: [offline or OfflineProvider()], WorkKind.IMAGE: [gemini], WorkKind.VIDEO: [gemini]}
    )


def media_stage(db: Database, settings: Settings, router: ProviderRouter) -> MediaStage:
    return MediaStage(StageDeps(db=db, router=router, settings=settings))


async def make_video(stage: MediaStage, job: AIJob, runs: list[Activity] | None = None) -> StageResult:
    """What the workflow does (workflows/job.py run_video), without the timers: submit, poll until the video is
    stored, submit a new render when the operation failed. Every activity's run lands in `runs`."""
    runs = runs if runs is not None else []
    runs.append(Activity())
    render = await runs[-1].call(stage.submit_video, VideoSubmit(job_id=job.id))
    elapsed = 0
    while render.result is None:
        runs.append(Activity())
        if render.failed:
            render = await runs[-1].call(stage.submit_video, VideoSubmit(job_id=job.id, render=render.render + 1))
            continue
        elapsed += 2
        render = await runs[-1].call(stage.poll_video, VideoPoll(render=render, elapsed_seconds=elapsed))
    return render.result


# ---- the media store -------------------------------------------------------------------------------------


def test_media_path_is_tenant_and_asset_with_the_type_extension(tmp_path: Path) -> None:
    tenant, asset = uuid.uuid4(), uuid.uuid4()
    assert media_path(tenant, asset, "image/png") == f"{tenant}/{asset}.png"
    assert media_path(tenant, asset, "image/jpeg") == f"{tenant}/{asset}.jpg"
    assert media_path(tenant, asset, "video/mp4") == f"{tenant}/{asset}.mp4"
    assert media_path(tenant, asset, "application/x-unknown") == f"{tenant}/{asset}.bin"
    settings = Settings(media_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    row = MediaAsset(
        tenant_id=tenant,
        company_id=uuid.uuid4(),
        kind=MediaKind.IMAGE,
        mime_type="image/png",
        path=f"{tenant}/{asset}.png",
    )
    assert media_file(settings, row) == tmp_path.resolve() / str(tenant) / f"{asset}.png"
    for bad in ("../outside.png", "/etc/passwd", f"{tenant}/../../x.png", ""):
        with pytest.raises(ValueError, match="outside the media store"):
            resolve_media_path(tmp_path, bad)


def test_atomic_write_leaves_the_whole_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "t" / "a.png"
    write_atomically(target, b"first")
    write_atomically(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert files_under(tmp_path) == [target]


def test_prompt_text_helpers() -> None:
    assert alt_text_from("A red bike by a lake. Flat style, no text.") == "A red bike by a lake."
    assert len(alt_text_from("word " * 200)) <= 200
    assert excerpt("short") == "short"
    long = excerpt("word " * 1000)
    assert len(long) <= 1500 and long.endswith("word")


# ---- images ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "image_prompts"),
    [(Platform.X, False), (Platform.INSTAGRAM, True), (Platform.LINKEDIN, False), (Platform.THREADS, True)],
)
async def test_an_image_fits_its_platform_and_is_stored(
    db: Database, settings: Settings, platform: Platform, image_prompts: bool
) -> None:
    seeded = await seed(db, image_prompts=image_prompts)
    post = seeded.posts[platform]
    job = await new_job(db, seeded, JobType.GENERATE_IMAGE, social_post_id=post.id)
    run = Activity()
    result = await run.run(media_stage(db, settings, offline_router()).generate_image, job)

    ratio = PLATFORM_ASPECT_RATIOS[platform]
    expected = aspect_size(ratio, 1024)
    [asset] = await assets_of(db, job.id)
    assert result.artifact_ids == [asset.id]
    assert result.summary == {
        "mediaId": str(asset.id),
        "kind": "image",
        "aspectRatio": ratio,
        "width": expected[0],
        "height": expected[1],
        "bytes": asset.size_bytes,
    }
    path = media_file(settings, asset)
    assert asset.path == f"{seeded.tenant.id}/{asset.id}.png"
    assert path.is_file() and path.stat().st_size == asset.size_bytes > 0
    assert files_under(settings.resolved_media_dir) == [path]
    with Image.open(io.BytesIO(path.read_bytes())) as picture:
        assert picture.format == "PNG" and picture.size == expected
    width, height = (float(n) for n in ratio.split(":"))
    assert abs(expected[0] / expected[1] - width / height) < 0.01

    assert (asset.kind, asset.mime_type, asset.width, asset.height) == (MediaKind.IMAGE, "image/png", *expected)
    assert asset.social_post_id == post.id and asset.blog_post_id is None
    assert asset.tenant_id == seeded.tenant.id and asset.company_id == seeded.company.id
    assert asset.is_sample is True and asset.alt_text
    if image_prompts:
        assert asset.prompt == post.image_prompt  # the social stage's prompt, used as it is
    else:
        assert asset.prompt.startswith(
            "Sample flat illustration about How to brew better coffee"
        )  # written by generate_json

    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED and row.progress == 100
    assert row.result_data == result.to_result_data()
    kinds = [r["kind"] for r in row.usage_records]
    assert kinds == (["image"] if image_prompts else ["json", "image"])
    assert row.provider == "offline"
    assert any(m.startswith(f"generating a {ratio} image for {platform.value}") for m in run.messages())


async def test_the_same_job_twice_writes_no_second_file_or_row(db: Database, settings: Settings) -> None:
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_IMAGE, social_post_id=seeded.posts[Platform.X].id)
    provider = OfflineProvider()
    stage = media_stage(db, settings, offline_router(provider))
    first = await Activity().run(stage.generate_image, job)
    calls = provider.calls

    # A retried activity after success: the stored result, no provider call, nothing written.
    assert await Activity(attempt=2).run(stage.generate_image, job) == first
    assert provider.calls == calls

    # A duplicate attempt that got past the job check before the first one committed: it finds the
    # first one's asset by job id and writes no file of its own.
    async with db.session() as session:
        row = await session.get(AIJob, job.id)
        assert row is not None
        row.status = JobStatus.PROCESSING
        session.add(row)
        await session.commit()
    again = await Activity(attempt=2).run(stage.generate_image, job)
    assert again.artifact_ids == first.artifact_ids and again.summary == first.summary
    [asset] = await assets_of(db, job.id)
    assert files_under(settings.resolved_media_dir) == [media_file(settings, asset)]


class EndsTheJobMeanwhile(OfflineProvider):
    """Draws the image, but meanwhile the job is ended elsewhere (a cancel recorded by the workflow)."""

    def __init__(self, db: Database, job_id: uuid.UUID) -> None:
        super().__init__()
        self.store, self.job_id = JobStore(db), job_id

    async def generate_image(self, prompt: str, aspect_ratio: str = "1:1", **kwargs: Any) -> GeneratedImage:
        image = await super().generate_image(prompt, aspect_ratio, **kwargs)
        await self.store.finish(self.job_id, JobStatus.CANCELLED, "cancelled by the user")
        return image


async def test_a_failed_transaction_leaves_no_orphan_file(db: Database, settings: Settings) -> None:
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_IMAGE, social_post_id=seeded.posts[Platform.LINKEDIN].id)
    stage = media_stage(db, settings, offline_router(EndsTheJobMeanwhile(db, job.id)))
    with pytest.raises(ApplicationError) as caught:
        await Activity().run(stage.generate_image, job)
    assert caught.value.type == "JobAlreadyEnded"
    assert await assets_of(db, job.id) == []
    assert files_under(settings.resolved_media_dir) == []
    assert (await job_row(db, job.id)).status == JobStatus.CANCELLED


async def test_a_missing_or_foreign_social_post_fails_the_job(db: Database, settings: Settings) -> None:
    seeded, other = await seed(db), await seed(db)
    stage = media_stage(db, settings, offline_router())
    cases = [
        ({}, "names no social post"),
        ({"social_post_id": other.posts[Platform.X].id}, "does not exist for this company"),
    ]
    for inputs, reason in cases:
        job = await new_job(db, seeded, JobType.GENERATE_IMAGE, **inputs)
        with pytest.raises(ApplicationError) as caught:
            await Activity().run(stage.generate_image, job)
        assert caught.value.type == "MissingInput" and caught.value.non_retryable
        row = await job_row(db, job.id)
        assert row.status == JobStatus.FAILED and reason in row.error_message and row.completed_at
    assert files_under(settings.resolved_media_dir) == []


async def test_a_rate_limited_image_retries_after_the_providers_delay(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    provider_server.queue(PREDICT, Reply(status=429, json=google_error(429, "slow down"), headers={"Retry-After": "7"}))
    seeded = await seed(db, image_prompts=True)
    job = await new_job(db, seeded, JobType.GENERATE_IMAGE, social_post_id=seeded.posts[Platform.INSTAGRAM].id)
    stage = media_stage(db, settings, gemini_router(provider_server))
    with pytest.raises(ApplicationError) as caught:
        await Activity().run(stage.generate_image, job)
    assert caught.value.type == "AIRateLimitError" and not caught.value.non_retryable
    assert caught.value.next_retry_delay == timedelta(seconds=7)
    row = await job_row(db, job.id)
    assert row.status == JobStatus.PROCESSING and row.progress_message.startswith("rate limited, retrying in 7 s")
    assert [r["error"] for r in row.usage_records] == ["AIRateLimitError"]
    assert [r.json["parameters"]["aspectRatio"] for r in provider_server.requests_for(PREDICT)] == [
        "3:4"
    ]  # Imagen's nearest to 4:5

    # The next attempt gets the image from Imagen through the real SDK.
    result = await Activity(attempt=2).run(stage.generate_image, job)
    [asset] = await assets_of(db, job.id)
    assert result.artifact_ids == [asset.id] and not asset.is_sample
    assert media_file(settings, asset).stat().st_size == asset.size_bytes
    assert (await job_row(db, job.id)).provider == "gemini"


# ---- videos ----------------------------------------------------------------------------------------------


def messages_of(runs: Sequence[Activity]) -> list[str]:
    return [m for run in runs for m in run.messages()]


async def test_an_offline_video_is_rendered_and_stored(db: Database, settings: Settings) -> None:
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    runs: list[Activity] = []
    provider = OfflineProvider()
    try:
        result = await make_video(media_stage(db, settings, offline_router(provider)), job, runs)
    finally:
        await provider.close()

    [asset] = await assets_of(db, job.id)
    data = media_file(settings, asset).read_bytes()
    assert data[4:8] == b"ftyp" and len(data) == asset.size_bytes  # a real MP4, rendered in the renderer process
    assert (asset.kind, asset.mime_type, asset.duration_seconds) == (MediaKind.VIDEO, "video/mp4", 8.0)
    assert (asset.width, asset.height) == aspect_size("16:9", 640)
    assert asset.blog_post_id == seeded.blog_post.id and asset.social_post_id is None and asset.is_sample
    assert asset.prompt.startswith("Sample short video about How to brew better coffee")
    assert result.summary == {
        "mediaId": str(asset.id),
        "kind": "video",
        "aspectRatio": "16:9",
        "width": 640,
        "height": 360,
        "bytes": asset.size_bytes,
        "durationSeconds": 8.0,
    }
    assert len(runs) == 2  # one submit, one poll: the offline render is done at the first poll
    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED and row.progress == 100
    assert row.result_data == result.to_result_data()
    assert [r["kind"] for r in row.usage_records] == ["json", "video", "video"]  # prompt, start, render: once each
    assert [r["video_seconds"] for r in row.usage_records if r["kind"] == "video"] == [0.0, 8.0]
    assert any(m.startswith("video rendered in 2 s") for m in messages_of(runs))
    async with db.session() as session:
        assert (await session.exec(select(JobStep).where(col(JobStep.job_id) == job.id))).all() == []


async def test_a_video_is_polled_by_short_activities_until_done(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    name = f"models/{VEO}/operations/op123"
    provider_server.files["vid123"] = VIDEO_BYTES
    provider_server.queue(
        OPERATION, Reply(json={"name": name, "done": False}), Reply(json={"name": name, "done": False})
    )
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    runs: list[Activity] = []
    await make_video(media_stage(db, settings, gemini_router(provider_server)), job, runs)

    [start] = provider_server.requests_for(PREDICT_LONG)
    assert start.json["parameters"] == {"aspectRatio": "16:9", "durationSeconds": 8}
    assert start.json["instances"][0]["prompt"].startswith("Sample short video about How to brew")
    assert len(provider_server.requests_for(OPERATION)) == 3
    assert len(runs) == 4  # the submit, then one short activity per poll: none of them waits for the render
    [asset] = await assets_of(db, job.id)
    assert media_file(settings, asset).read_bytes() == VIDEO_BYTES
    # The prompt came from the offline provider (in the submit), so the video shows sample content: marked as such.
    assert (asset.mime_type, asset.duration_seconds, asset.is_sample) == ("video/mp4", 8.0, True)
    assert [m for m in messages_of(runs) if m.startswith("rendering video, ")] == [
        "rendering video, 2 s so far",
        "rendering video, 4 s so far",
    ]
    row = await job_row(db, job.id)
    assert [r["kind"] for r in row.usage_records] == ["json", "video", "video", "video", "video"]
    assert row.usage_records[-1]["video_seconds"] == 8


async def test_a_retried_submit_resumes_the_saved_operation_and_pays_for_no_second_video(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    provider_server.files["vid123"] = VIDEO_BYTES
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    offline = OfflineProvider()
    stage = media_stage(db, settings, gemini_router(provider_server, offline))
    first = await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id))
    calls = offline.calls
    # The attempt's answer was lost (its worker died after the submit): the retry finds both steps saved.
    again = Activity(attempt=2)
    second = await again.call(stage.submit_video, VideoSubmit(job_id=job.id))
    assert second == first and second.name == f"models/{VEO}/operations/op123"
    assert len(provider_server.requests_for(PREDICT_LONG)) == 1 and offline.calls == calls
    assert any(m.startswith("resuming the video operation") for m in again.messages())
    assert "video" not in second.operation or second.operation["video"] is None

    render = await Activity().call(stage.poll_video, VideoPoll(render=second, elapsed_seconds=3))
    assert render.result is not None
    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED
    assert [r["kind"] for r in row.usage_records] == ["json", "video", "video"]  # each call charged once


async def test_a_rate_limited_poll_retries_and_the_retry_polls_the_same_operation(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    provider_server.files["vid123"] = VIDEO_BYTES
    provider_server.queue(
        OPERATION, Reply(status=429, json=google_error(429, "too many polls"), headers={"Retry-After": "3"})
    )
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    stage = media_stage(db, settings, gemini_router(provider_server))
    render = await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id))
    first = Activity()
    with pytest.raises(ApplicationError) as caught:
        await first.call(stage.poll_video, VideoPoll(render=render))
    assert caught.value.type == "AIRateLimitError" and caught.value.next_retry_delay == timedelta(seconds=3)
    row = await job_row(db, job.id)
    assert row.status == JobStatus.PROCESSING and row.progress_message.startswith("rate limited, retrying in 3 s")
    assert files_under(settings.resolved_media_dir) == []

    details = first.last_details()
    assert "too many polls" in details[0]["checkpoint"]["poll_error"]
    done = await Activity(attempt=2, heartbeat_details=details).call(stage.poll_video, VideoPoll(render=render))
    assert done.result is not None
    assert len(provider_server.requests_for(PREDICT_LONG)) == 1, "the retry must not pay for a second video"
    assert len(provider_server.requests_for(OPERATION)) == 2
    assert (await job_row(db, job.id)).status == JobStatus.COMPLETED
    assert len(files_under(settings.resolved_media_dir)) == 1


async def test_an_operation_that_ends_with_a_permanent_error_fails_the_job(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    name = f"models/{VEO}/operations/op123"
    provider_server.queue(
        OPERATION, Reply(json={"name": name, "done": True, "error": {"code": 3, "message": "bad prompt"}})
    )
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    with pytest.raises(ApplicationError) as caught:
        await make_video(media_stage(db, settings, gemini_router(provider_server)), job)
    assert caught.value.type == "AIInvalidRequestError" and caught.value.non_retryable
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED and "bad prompt" in row.error_message
    assert [r["kind"] for r in row.usage_records] == ["json", "video", "video"]  # the failed poll is recorded too
    assert await assets_of(db, job.id) == [] and files_under(settings.resolved_media_dir) == []


async def test_an_operation_that_ends_with_a_transient_error_is_rendered_again(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    name = f"models/{VEO}/operations/op123"
    failed = Reply(json={"name": name, "done": True, "error": {"code": 14, "message": "backend unavailable"}})
    provider_server.files["vid123"] = VIDEO_BYTES
    provider_server.queue(OPERATION, failed, failed)  # a finished operation answers every poll the same
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    stage = media_stage(db, settings, gemini_router(provider_server))
    render = await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id))
    first = Activity()
    with pytest.raises(ApplicationError) as caught:
        await first.call(stage.poll_video, VideoPoll(render=render))
    assert caught.value.type == "AIServerError" and not caught.value.non_retryable
    assert (await job_row(db, job.id)).status == JobStatus.PROCESSING

    # The retry of that poll sees the same error: the operation failed, and the workflow submits a new render.
    retried = await Activity(attempt=2, heartbeat_details=first.last_details()).call(
        stage.poll_video, VideoPoll(render=render)
    )
    assert retried.failed and retried.result is None
    offline_calls = len(provider_server.requests_for(PREDICT_LONG))
    again = await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id, render=2))
    assert len(provider_server.requests_for(PREDICT_LONG)) == offline_calls + 1 == 2
    done = await Activity().call(stage.poll_video, VideoPoll(render=again))
    assert done.result is not None
    assert len(provider_server.requests_for(OPERATION)) == 3
    assert (await job_row(db, job.id)).status == JobStatus.COMPLETED


async def test_a_render_still_running_at_its_deadline_fails_the_job(
    db: Database, settings: Settings, provider_server: ProviderServer
) -> None:
    name = f"models/{VEO}/operations/op123"
    provider_server.queue(OPERATION, Reply(json={"name": name, "done": False}))
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    stage = media_stage(db, settings, gemini_router(provider_server))
    render = await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id))
    with pytest.raises(ApplicationError) as caught:
        await Activity().call(stage.poll_video, VideoPoll(render=render, final=True, elapsed_seconds=900))
    assert caught.value.type == "VideoDeadline" and caught.value.non_retryable
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED
    assert row.error_message == f"the video was still rendering after 900 s (operation {name}); gave up"


class SlowPolls(OfflineProvider):
    """An offline provider whose operations take for ever to poll."""

    def __init__(self) -> None:
        super().__init__()
        self.polling = asyncio.Event()

    async def poll_video(self, operation: VideoOperation) -> VideoOperation:
        self.polling.set()
        await asyncio.sleep(3600)
        return operation


async def test_cancelling_a_poll_stores_nothing_and_ends_the_job_cancelled(db: Database, settings: Settings) -> None:
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    provider = SlowPolls()
    stage = media_stage(db, settings, offline_router(provider))
    render = await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id))
    run = Activity()
    task = asyncio.create_task(run.call(stage.poll_video, VideoPoll(render=render)))
    await asyncio.wait_for(provider.polling.wait(), timeout=30)
    run.env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await job_row(db, job.id)
    assert row.status == JobStatus.CANCELLED and row.completed_at
    assert [r["kind"] for r in row.usage_records][:2] == ["json", "video"]  # what was spent is still recorded
    assert await assets_of(db, job.id) == [] and files_under(settings.resolved_media_dir) == []
    await provider.close()


async def test_a_video_job_needs_a_blog_post_with_text(db: Database, settings: Settings) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        empty = BlogPost(
            tenant_id=seeded.tenant.id,
            company_id=seeded.company.id,
            topic_id=seeded.blog_post.topic_id,
            title="Empty",
            slug="empty",
        )
        session.add(empty)
        await session.commit()
    stage = media_stage(db, settings, offline_router())
    cases = [({}, "names no blog post"), ({"blog_post_id": empty.id}, "has no text yet")]
    for inputs, reason in cases:
        job = await new_job(db, seeded, JobType.GENERATE_VIDEO, **inputs)
        with pytest.raises(ApplicationError) as caught:
            await Activity().call(stage.submit_video, VideoSubmit(job_id=job.id))
        assert caught.value.type == "MissingInput"
        row = await job_row(db, job.id)
        assert row.status == JobStatus.FAILED and reason in row.error_message
