"""Images for social posts and short videos for blog posts: generated, written to the media store, recorded as
MediaAsset rows."""

import asyncio
import contextlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.deps import StageDeps
from activities.jobs import INVALID_INPUT, ArtifactWriter, StageRun, execute_stage, fail_job
from activities.prompts import render
from models.contracts import StageInput, StageResult
from models.db import Database
from models.enums import JobType, MediaKind, Platform
from models.generation import PLATFORM_ASPECT_RATIOS, ImagePrompt, VideoPrompt
from models.job_params import VideoParams
from models.media_store import media_path, media_root, resolve_media_path
from models.tables import AIJob, BlogPost, BlogPostRevision, MediaAsset, SocialPost
from providers.base import AIProviderError, GeneratedVideo, VideoOperation, aspect_size

# How often a running video operation is polled; every poll heartbeats the operation.
POLL_EVERY_SECONDS = 5.0
# Only for the progress bar: a typical Veo render; a slower one stays at the bar's top until done.
EXPECTED_RENDER_SECONDS = 120
# "One short video": what video models render in one go (Veo: 4 to 8 s).
MIN_VIDEO_SECONDS, MAX_VIDEO_SECONDS = 4, 8
BLOG_EXCERPT_CHARS = 1500
ALT_TEXT_CHARS = 200

# ---- the media store ---------------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """All of `data` at `path` or nothing there: written to a temporary file beside it, synced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@dataclass
class WrittenFile:
    asset_id: uuid.UUID
    path: Path
    done: "asyncio.Future[None]"


class AttemptFiles:
    """The media files one attempt writes. A file is on disk before its row commits; when the attempt
    fails, every file whose row is certainly not in the database is removed again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[WrittenFile] = []

    async def write(self, asset_id: uuid.UUID, relative: str, data: bytes) -> Path:
        path = resolve_media_path(self.root, relative)
        done = asyncio.get_running_loop().run_in_executor(None, write_atomically, path, data)
        self.written.append(WrittenFile(asset_id, path, done))
        # Shielded: a cancel must not leave the write running unseen while the cleanup looks for its file.
        await asyncio.shield(done)
        return path

    async def discard_uncommitted(self, db: Database) -> None:
        for written in self.written:
            with contextlib.suppress(Exception):
                await written.done
            try:
                async with db.session() as session:
                    committed = await session.get(MediaAsset, written.asset_id) is not None
            except Exception:
                # Unknown (the database is away): an orphan file does no harm, a row without its file would.
                activity.logger.warning("could not check media asset %s; keeping %s", written.asset_id, written.path)
                continue
            if not committed:
                try:
                    written.path.unlink(missing_ok=True)
                except OSError as error:  # the attempt's own error matters more than a leftover file
                    activity.logger.warning("could not remove the orphan media file %s: %s", written.path, error)


async def store_asset(session: AsyncSession, files: AttemptFiles, asset: MediaAsset, data: bytes) -> MediaAsset:
    """The job's asset: the one already stored for this job, else the file written and the row added."""
    # The job's row lock makes a duplicate attempt of the same job wait here, then find the first one's asset.
    await session.exec(select(AIJob).where(col(AIJob.id) == asset.job_id).with_for_update())
    existing = (await session.exec(select(MediaAsset).where(col(MediaAsset.job_id) == asset.job_id))).first()
    if existing is not None:
        return existing
    await files.write(asset.id, asset.path, data)
    session.add(asset)
    await session.flush()
    return asset


def asset_writer(
    run: StageRun, files: AttemptFiles, data: bytes, aspect_ratio: str, **fields: Any
) -> tuple[ArtifactWriter, dict[str, Any]]:
    """The job's MediaAsset for `data` (fields: kind, mime_type, size, prompt...) and the writer that stores it."""
    job = run.job
    asset_id = uuid.uuid4()
    asset = MediaAsset(
        id=asset_id,
        tenant_id=job.tenant_id,
        company_id=job.company_id,
        job_id=job.id,
        path=media_path(job.tenant_id, asset_id, fields["mime_type"]),
        size_bytes=len(data),
        is_sample=run.used_offline_provider(),
        **fields,
    )
    summary = asset_summary(asset, aspect_ratio)

    async def write(session: AsyncSession) -> list[uuid.UUID]:
        stored = await store_asset(session, files, asset, data)
        summary.update(asset_summary(stored, aspect_ratio))
        return [stored.id]

    return write, summary


def asset_summary(asset: MediaAsset, aspect_ratio: str) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "mediaId": str(asset.id),
        "kind": MediaKind(asset.kind).value,
        "aspectRatio": aspect_ratio,
        "width": asset.width,
        "height": asset.height,
        "bytes": asset.size_bytes,
    }
    if asset.kind == MediaKind.VIDEO:
        summary["durationSeconds"] = asset.duration_seconds
    return summary


# ---- prompts -----------------------------------------------------------------------------------------------


def orientation(aspect_ratio: str) -> str:
    width, height = aspect_size(aspect_ratio, 1000)
    return "landscape" if width > height else "portrait" if height > width else "square"


def alt_text_from(prompt: str) -> str:
    """Alt text when only an image prompt is known: its first sentence, which says what the image shows."""
    first = re.split(r"(?<=[.!?])\s", " ".join(prompt.split()), maxsplit=1)[0]
    return first if len(first) <= ALT_TEXT_CHARS else first[: ALT_TEXT_CHARS - 3].rstrip() + "..."


def excerpt(markdown: str, limit: int = BLOG_EXCERPT_CHARS) -> str:
    text = markdown.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[: cut.rfind(" ")] if " " in cut else cut


# ---- video operations across attempts ----------------------------------------------------------------------


class VideoCheckpoint(BaseModel):
    """What a video attempt heartbeats, so that the next attempt polls the same (paid) operation."""

    job_id: uuid.UUID
    operation: VideoOperation
    started_at: float  # epoch seconds: the render's age counts across attempts and workers
    # The last poll's error. A finished operation answers every poll the same way, so the same error
    # again on the next attempt means the operation itself failed; any other error was the poll's.
    poll_error: str | None = None

    def details(self) -> dict[str, Any]:
        return self.model_copy(update={"operation": self.operation.for_heartbeat()}).model_dump(mode="json")


def resumed_video(run: StageRun) -> VideoCheckpoint | None:
    details = run.resumed_checkpoint()
    if details is None:
        return None
    try:
        checkpoint = VideoCheckpoint.model_validate(details)
    except ValidationError:
        activity.logger.warning("job %s: ignoring unreadable heartbeat details from the previous attempt", run.job.id)
        return None
    return checkpoint if checkpoint.job_id == run.job.id else None


# ---- the stage ---------------------------------------------------------------------------------------------


class MediaStage:
    def __init__(self, deps: StageDeps, *, poll_every_seconds: float = POLL_EVERY_SECONDS) -> None:
        self.deps = deps
        self.poll_every_seconds = poll_every_seconds

    @activity.defn(name="generate_image")
    async def generate_image(self, stage: StageInput) -> StageResult:
        return await self._execute(stage, JobType.GENERATE_IMAGE, self._image)

    @activity.defn(name="generate_video")
    async def generate_video(self, stage: StageInput) -> StageResult:
        return await self._execute(stage, JobType.GENERATE_VIDEO, self._video)

    async def _execute(
        self, stage: StageInput, job_type: JobType, body: Callable[[StageRun, AttemptFiles], Awaitable[Any]]
    ) -> StageResult:
        files = AttemptFiles(media_root(self.deps.settings))
        try:
            return await execute_stage(self.deps, stage, job_type, lambda run: body(run, files))
        except BaseException:
            await asyncio.shield(files.discard_uncommitted(self.deps.db))
            raise

    # -- images --

    async def _image(self, run: StageRun, files: AttemptFiles) -> tuple[ArtifactWriter, dict[str, Any]]:
        job, company = run.job, run.company
        if job.social_post_id is None:
            await fail_job(run, "the image job names no social post")
        async with self.deps.db.session() as session:
            post = await session.get(SocialPost, job.social_post_id)
            blog = await session.get(BlogPost, post.blog_post_id) if post is not None else None
        if post is None or post.tenant_id != job.tenant_id or post.company_id != job.company_id:
            await fail_job(run, f"social post {job.social_post_id} does not exist for this company")
        platform = Platform(post.platform)
        aspect_ratio = PLATFORM_ASPECT_RATIOS[platform]
        blog_title = blog.title if blog is not None else ""
        context = {
            "company_name": company.name,
            "topic_title": blog_title or post.text[:100],
            "platform": platform.value,
            "aspect_ratio": aspect_ratio,
        }

        if post.image_prompt.strip():
            await run.progress(10, f"using the {platform.value} post's image prompt")
            prompt = post.image_prompt.strip()
            alt_text = alt_text_from(prompt)
        else:
            await run.progress(10, f"writing an image prompt for the {platform.value} post")
            written = await self.deps.router.generate_json(
                render(
                    "image_prompt",
                    company_name=company.name,
                    industry=company.industry or "its industry",
                    language=company.language,
                    platform=platform.value,
                    aspect_ratio=aspect_ratio,
                    orientation=orientation(aspect_ratio),
                    blog_title=blog_title or "(none)",
                    post_text=post.text,
                ),
                ImagePrompt,
                sample_context=context,
            )
            prompt = written.prompt
            alt_text = written.alt_text.strip() or alt_text_from(prompt)

        await run.progress(30, f"generating a {aspect_ratio} image for {platform.value}")
        image = await self.deps.router.generate_image(prompt, aspect_ratio, sample_context=context)
        await run.progress(85, f"image ready: {image.width}x{image.height}, {len(image.data) // 1024} KB")

        return asset_writer(
            run,
            files,
            image.data,
            aspect_ratio,
            social_post_id=post.id,
            kind=MediaKind.IMAGE,
            mime_type=image.mime_type,
            width=image.width,
            height=image.height,
            prompt=prompt,
            alt_text=alt_text,
        )

    # -- videos --

    async def _video(self, run: StageRun, files: AttemptFiles) -> tuple[ArtifactWriter, dict[str, Any]]:
        post, revision = await self._blog_post(run)
        aspect_ratio = run.params_as(VideoParams).aspect_ratio
        try:
            aspect_size(aspect_ratio, 16)
        except ValueError as error:
            await fail_job(run, f"the video job's aspectRatio is invalid: {error}", INVALID_INPUT)

        checkpoint = resumed_video(run)
        if checkpoint is not None:
            await run.progress(20, f"resuming video operation {checkpoint.operation.name} from the previous attempt")
        else:
            checkpoint = await self._start_video(run, post, revision, aspect_ratio)
        operation, video = await self._poll_until_done(run, checkpoint)
        duration = video.duration_seconds or float(operation.duration_seconds)
        await run.progress(90, f"video ready: {duration:g} s, {len(video.data) // 1024} KB")

        return asset_writer(
            run,
            files,
            video.data,
            aspect_ratio,
            blog_post_id=post.id,
            kind=MediaKind.VIDEO,
            mime_type=video.mime_type,
            width=video.width,
            height=video.height,
            duration_seconds=duration,
            prompt=operation.prompt,
            alt_text=f'Short video for the blog post "{post.title}"'[:500],
        )

    async def _blog_post(self, run: StageRun) -> tuple[BlogPost, BlogPostRevision]:
        job = run.job
        if job.blog_post_id is None:
            await fail_job(run, "the video job names no blog post")
        async with self.deps.db.session() as session:
            post = await session.get(BlogPost, job.blog_post_id)
            revision = None
            if post is not None:
                # The current revision, or the newest before it if that one is missing.
                revision = (
                    await session.exec(
                        select(BlogPostRevision)
                        .where(
                            col(BlogPostRevision.blog_post_id) == post.id,
                            col(BlogPostRevision.revision) <= post.current_revision,
                        )
                        .order_by(col(BlogPostRevision.revision).desc())
                        .limit(1)
                    )
                ).first()
        if post is None or post.tenant_id != job.tenant_id or post.company_id != job.company_id:
            await fail_job(run, f"blog post {job.blog_post_id} does not exist for this company")
        if revision is None:
            await fail_job(run, f"blog post {post.id} has no text yet")
        return post, revision

    async def _start_video(
        self, run: StageRun, post: BlogPost, revision: BlogPostRevision, aspect_ratio: str
    ) -> VideoCheckpoint:
        company = run.company
        await run.progress(5, "writing the video prompt")
        written = await self.deps.router.generate_json(
            render(
                "video_prompt",
                company_name=company.name,
                industry=company.industry or "its industry",
                aspect_ratio=aspect_ratio,
                orientation=orientation(aspect_ratio),
                duration_seconds=MAX_VIDEO_SECONDS,
                title=post.title,
                meta_description=post.meta_description or "(none)",
                excerpt=excerpt(revision.markdown),
            ),
            VideoPrompt,
            sample_context={"company_name": company.name, "topic_title": post.title, "aspect_ratio": aspect_ratio},
        )
        duration = max(MIN_VIDEO_SECONDS, min(MAX_VIDEO_SECONDS, written.duration_seconds))
        return await self._submit(run, written.prompt, duration, aspect_ratio)

    async def _submit(self, run: StageRun, prompt: str, duration: int, aspect_ratio: str) -> VideoCheckpoint:
        await run.progress(15, f"starting a {aspect_ratio} video of {duration} s")
        operation = await self.deps.router.start_video(
            prompt,
            duration_seconds=duration,
            aspect_ratio=aspect_ratio,
            sample_context={"company_name": run.company.name, "aspect_ratio": aspect_ratio},
        )
        checkpoint = VideoCheckpoint(job_id=run.job.id, operation=operation, started_at=time.time())
        # At once: a crash from here on must resume this operation, not pay for another one.
        run.checkpoint = checkpoint.details()
        await run.progress(20, f"video operation {operation.name} started")
        return checkpoint

    async def _poll_until_done(
        self, run: StageRun, checkpoint: VideoCheckpoint
    ) -> tuple[VideoOperation, GeneratedVideo]:
        resumed_error = checkpoint.poll_error
        run.checkpoint = checkpoint.model_copy(update={"poll_error": None}).details()
        while True:
            if checkpoint.operation.done and checkpoint.operation.video is not None:
                return checkpoint.operation, checkpoint.operation.video
            await asyncio.sleep(self.poll_every_seconds)
            try:
                operation = await self.deps.router.poll_video(checkpoint.operation)
            except AIProviderError as error:
                if resumed_error is not None and str(error) == resumed_error:
                    activity.logger.warning(
                        "job %s: video operation %s failed (%s); starting a new one",
                        run.job.id,
                        checkpoint.operation.name,
                        error,
                    )
                    previous = checkpoint.operation
                    checkpoint = await self._submit(
                        run, previous.prompt, previous.duration_seconds, previous.aspect_ratio
                    )
                    resumed_error = None
                    continue
                run.checkpoint = checkpoint.model_copy(update={"poll_error": str(error)}).details()
                run.heartbeat()
                raise
            resumed_error = None
            checkpoint = checkpoint.model_copy(update={"operation": operation})
            run.checkpoint = checkpoint.details()
            elapsed = max(0, round(time.time() - checkpoint.started_at))
            percent = 25 + min(60, 60 * elapsed // EXPECTED_RENDER_SECONDS)
            message = f"video rendered in {elapsed} s" if operation.done else f"rendering video, {elapsed} s so far"
            await run.progress(percent, message)
