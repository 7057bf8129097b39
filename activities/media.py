"""Images for social posts and short videos for blog posts: generated, written to the media store, recorded as
MediaAsset rows."""

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import StageDeps
from activities.jobs import (
    INVALID_INPUT,
    OFFLINE_PROVIDER,
    TRANSIENT_ERRORS,
    ArtifactWriter,
    StageRun,
    attempt_budget,
    execute_stage,
    fail_for_provider,
    fail_internally,
    fail_job,
    heartbeating,
    invalid_params_message,
    retry_after_transient,
    start_message,
)
from activities.prompts import render
from activities.steps import JobSteps
from models.contracts import StageInput, StageResult, VideoPoll, VideoRender, VideoSubmit
from models.db import Database
from models.enums import JobStatus, JobType, MediaKind, Platform
from models.generation import PLATFORM_ASPECT_RATIOS, ImagePrompt, VideoPrompt
from models.job_params import VideoParams, params_of
from models.media_store import media_path, media_root, resolve_media_path
from models.names import Activity, ErrorType
from models.pipeline import JobSpec
from models.stores.jobs import JobStore
from models.tables import AIJob, BlogPost, BlogPostRevision, Company, MediaAsset, SocialPost
from providers.base import AIProviderError, AITimeoutError, VideoOperation, aspect_size
from providers.usage import current_usage_log, track_usage

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
    run: StageRun, files: AttemptFiles, data: bytes, aspect_ratio: str, *, sample: bool | None = None, **fields: Any
) -> tuple[ArtifactWriter, dict[str, Any]]:
    """The job's MediaAsset for `data` (fields: kind, mime_type, size, prompt...) and the writer that stores it.
    `sample`: the asset shows sample content (default: when this attempt used the offline provider)."""
    job = run.job
    asset_id = uuid.uuid4()
    asset = MediaAsset(
        id=asset_id,
        tenant_id=job.tenant_id,
        company_id=job.company_id,
        job_id=job.id,
        path=media_path(job.tenant_id, asset_id, fields["mime_type"]),
        size_bytes=len(data),
        is_sample=run.used_offline_provider() if sample is None else sample,
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


# ---- the stage ---------------------------------------------------------------------------------------------


class MediaStage:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=Activity.GENERATE_IMAGE)
    async def generate_image(self, stage: StageInput) -> StageResult:
        return await self._execute(stage, JobType.GENERATE_IMAGE, self._image)

    @activity.defn(name=Activity.SUBMIT_VIDEO)
    async def submit_video(self, submit: VideoSubmit) -> VideoRender:
        """A video job's paid part: the prompt, written once, and render number `submit.render` submitted
        once (both saved as job steps, so a retried attempt resumes them instead of paying again)."""
        return await self._video_step(
            submit.job_id, submit.spec, lambda run, _: self._submit(run, submit), served_in_steps=True
        )

    @activity.defn(name=Activity.POLL_VIDEO)
    async def poll_video(self, poll: VideoPoll) -> VideoRender:
        """One poll of a render: still rendering (the workflow sleeps and polls again), failed (it submits a new
        render), or done: then the video is stored and the job COMPLETED in one transaction."""
        files = AttemptFiles(media_root(self.deps.settings))
        try:
            return await self._video_step(
                poll.render.job_id, None, lambda run, key: self._poll(run, poll, files, key), served_in_steps=False
            )
        except BaseException:
            await asyncio.shield(files.discard_uncommitted(self.deps.db))
            raise

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

    # -- videos: the workflow polls the render between durable timers (workflows/job.py run_video) --

    async def _submit(self, run: StageRun, submit: VideoSubmit) -> VideoRender:
        post, revision = await self._blog_post(run)
        aspect_ratio = run.params_as(VideoParams).aspect_ratio
        try:
            aspect_size(aspect_ratio, 16)
        except ValueError as error:
            await fail_job(run, f"the video job's aspectRatio is invalid: {error}", INVALID_INPUT)
        steps = JobSteps(self.deps.db, run.job)
        await steps.load()
        company = run.company
        if not steps.has(PROMPT_STEP):
            await run.progress(5, "writing the video prompt")
        written = await steps.once(
            PROMPT_STEP,
            VideoPrompt,
            lambda: self.deps.router.generate_json(
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
            ),
        )
        duration = max(MIN_VIDEO_SECONDS, min(MAX_VIDEO_SECONDS, written.duration_seconds))
        step = render_step(submit.render)
        if steps.has(step):
            await run.progress(20, "resuming the video operation that the previous attempt started")
        else:
            again = "" if submit.render == 1 else f" (render {submit.render}: the previous one failed)"
            await run.progress(15, f"starting a {aspect_ratio} video of {duration} s{again}")
        operation = await steps.once(
            step,
            VideoOperation,
            lambda: self.deps.router.start_video(
                written.prompt,
                duration_seconds=duration,
                aspect_ratio=aspect_ratio,
                sample_context={"company_name": company.name, "aspect_ratio": aspect_ratio},
            ),
        )
        # The steps' calls are charged by step, once, whichever attempt paid for them or found them saved.
        for name in (PROMPT_STEP, step):
            saved = steps.saved.get(name) or {}
            records = [{**record, "attempt": saved.get("attempt")} for record in saved.get("usage") or []]
            await run.store.amend(run.job.id, charge_once(f"step:{name}", records))
        await run.progress(20, f"video operation {operation.name} started")
        return VideoRender(
            job_id=run.job.id,
            render=submit.render,
            name=operation.name,
            operation=operation.for_heartbeat().model_dump(mode="json"),
            poll_after_seconds=operation.poll_after_seconds,
        )

    async def _poll(self, run: StageRun, poll: VideoPoll, files: AttemptFiles, key: str) -> VideoRender:
        current = poll.render
        operation = VideoOperation.model_validate(current.operation)
        resumed = run.resumed_checkpoint() or {}
        try:
            polled = await self.deps.router.poll_video(operation)
        except AIProviderError as error:
            # A finished operation answers every poll the same way, so the same error on the retry of this poll
            # means the operation itself failed; any other error was the poll's.
            if resumed.get("poll_error") == str(error):
                activity.logger.warning(
                    "job %s: video operation %s failed (%s); starting a new one", run.job.id, operation.name, error
                )
                await run.progress(20, f"video operation {operation.name} failed; starting a new one")
                return current.model_copy(update={"failed": True})
            run.checkpoint = {"poll_error": str(error)}
            raise
        elapsed = poll.elapsed_seconds
        if not polled.done or polled.video is None:
            if poll.final:
                await fail_job(
                    run,
                    f"the video was still rendering after {elapsed} s (operation {operation.name}); gave up",
                    ErrorType.VIDEO_DEADLINE,
                )
            percent = 25 + min(60, 60 * elapsed // EXPECTED_RENDER_SECONDS)
            await run.progress(percent, f"rendering video, {elapsed} s so far")
            return current.model_copy(update={"operation": polled.for_heartbeat().model_dump(mode="json")})

        post, _ = await self._blog_post(run)
        video = polled.video
        duration = video.duration_seconds or float(polled.duration_seconds)
        await run.progress(90, f"video rendered in {elapsed} s: {duration:g} s, {len(video.data) // 1024} KB")
        steps = JobSteps(self.deps.db, run.job)
        await steps.load()
        writer, summary = asset_writer(
            run,
            files,
            video.data,
            run.params_as(VideoParams).aspect_ratio,
            sample=run.used_offline_provider() or OFFLINE_PROVIDER in steps.providers,
            blog_post_id=post.id,
            kind=MediaKind.VIDEO,
            mime_type=video.mime_type,
            width=video.width,
            height=video.height,
            duration_seconds=duration,
            prompt=polled.prompt,
            alt_text=f'Short video for the blog post "{post.title}"'[:500],
        )
        await run.progress(95, "saving")
        usage = current_usage_log()
        async with self.deps.db.session() as session:
            artifact_ids = await writer(session)
            result = StageResult(job_id=run.job.id, artifact_ids=artifact_ids, summary=summary)
            await steps.clear(session)  # every step was charged when it was saved (see _submit)
            records = [r.model_dump(mode="json") for r in usage.records] if usage is not None else []
            charge = charge_once(key, [{**r, "attempt": activity.info().attempt} for r in records])
            await run.store.complete(session, run.job.id, result, charge)
            await session.commit()
        activity.logger.info("job %s generate_video completed: %s", run.job.id, summary)
        return current.model_copy(update={"operation": {}, "result": result})

    async def _video_step(
        self,
        job_id: uuid.UUID,
        spec: JobSpec | None,
        body: Callable[[StageRun, str], Awaitable[VideoRender]],
        *,
        served_in_steps: bool,
    ) -> VideoRender:
        """One activity of a video job with execute_stage's bookkeeping: the row created from the spec, the
        stored result of a completed job, PROCESSING with progress, usage recorded once, provider errors retried
        by the seed's rules or FAILED, CANCELLED on a cancel. Only the poll that stores the video completes it."""
        store = JobStore(self.deps.db)
        if spec is not None:
            if spec.job_id != job_id or spec.job_type != JobType.GENERATE_VIDEO:
                raise ApplicationError(
                    f"the spec of AIJob {spec.job_id} ({spec.job_type}) is not for video job {job_id}",
                    type=ErrorType.WRONG_JOB_TYPE,
                    non_retryable=True,
                )
            await store.create(spec)
        job = await store.load(job_id)
        if job.job_type != JobType.GENERATE_VIDEO:
            raise ApplicationError(
                f"AIJob {job.id} is {job.job_type}, not a video job", type=ErrorType.WRONG_JOB_TYPE, non_retryable=True
            )
        if job.status == JobStatus.COMPLETED and job.result_data is not None:
            return VideoRender(job_id=job.id, result=StageResult.from_result_data(job.id, job.result_data))
        if JobStatus(job.status).is_terminal:
            raise ApplicationError(
                f"AIJob {job.id} already ended {job.status}", type=ErrorType.JOB_ALREADY_ENDED, non_retryable=True
            )
        async with self.deps.db.session() as session:
            company = await session.get(Company, job.company_id)
        if company is None or company.tenant_id != job.tenant_id:
            await store.finish(job.id, JobStatus.FAILED, "the company no longer exists")
            raise ApplicationError(
                f"company {job.company_id} not found", type=ErrorType.COMPANY_NOT_FOUND, non_retryable=True
            )
        try:
            params = params_of(JobType.GENERATE_VIDEO, job.params)
        except ValidationError as error:
            message = invalid_params_message(error, job.params, {})
            await store.finish(job.id, JobStatus.FAILED, message)
            raise ApplicationError(message, type=INVALID_INPUT, non_retryable=True) from None

        info = activity.info()
        provider_attempt = job.provider_failures + 1
        if job.status == JobStatus.PENDING or info.attempt > 1:
            await store.start(job.id, start_message(info.attempt, provider_attempt))
        run = StageRun(job=job, company=company, deps=self.deps, store=store, params=params)
        # What this attempt's calls are charged under: the attempt number alone does not tell a video job's
        # activities apart (execute_stage's key), this activity's id within its workflow run does.
        key = f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}"
        with track_usage() as usage:
            try:
                try:
                    async with (
                        heartbeating(run.heartbeat),
                        asyncio.timeout(attempt_budget(info.start_to_close_timeout)),
                    ):
                        return await body(run, key)
                except TimeoutError:
                    raise AITimeoutError(
                        f"the video step used up its {info.start_to_close_timeout} attempt",
                        provider="worker",
                        model=JobType.GENERATE_VIDEO.value,
                    ) from None
            except asyncio.CancelledError:
                details = activity.cancellation_details()
                if details is not None and details.cancel_requested:
                    await asyncio.shield(
                        store.finish(job.id, JobStatus.CANCELLED, "cancelled while running; nothing was stored")
                    )
                raise
            except AIProviderError as error:
                run.heartbeat()  # the poll error, for the retry of this poll (see _poll)
                await fail_for_provider(store, job.id, error, provider_attempt)
            except ApplicationError:
                raise
            except TRANSIENT_ERRORS as error:
                await retry_after_transient(store, job.id, error)
            except Exception as error:
                activity.logger.exception("job %s generate_video failed unexpectedly", job.id)
                await fail_internally(store, job.id, JobType.GENERATE_VIDEO, error)
            finally:
                # Failed calls cost money too; served calls are charged here unless their steps charged them.
                unsaved = [r for r in usage.records if not (r.ok and served_in_steps)]
                records = [{**r.model_dump(mode="json"), "attempt": info.attempt} for r in unsaved]
                try:
                    await asyncio.shield(store.amend(job.id, charge_once(key, records)))
                except Exception as error:  # the attempt's own outcome matters more than its bill
                    activity.logger.warning("job %s: could not record the usage of %s: %s", job.id, key, error)

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


PROMPT_STEP = "video-prompt"


def render_step(render_number: int) -> str:
    return f"video-render-{render_number}"


def charge_once(key: str, records: Sequence[dict[str, Any]]) -> Callable[[AIJob], None]:
    """Adds provider calls to the job's usage once per `key` (a retried write adds nothing). A video job's calls
    are made by several activities, so execute_stage's key, the attempt number, does not tell them apart."""

    def add(row: AIJob) -> None:
        existing = list(row.usage_records or [])
        if not records or any(record.get("charge") == key for record in existing):
            return
        fresh = [{**record, "charge": key} for record in records]
        row.usage_records = [*existing, *fresh]
        row.input_tokens = (row.input_tokens or 0) + sum(int(r.get("input_tokens") or 0) for r in fresh)
        row.output_tokens = (row.output_tokens or 0) + sum(int(r.get("output_tokens") or 0) for r in fresh)
        row.cost_usd = Decimal(row.cost_usd or 0) + sum(
            (Decimal(str(r.get("cost_usd") or 0)) for r in fresh), Decimal(0)
        )
        served = [r for r in row.usage_records if not r.get("error")]
        if served:
            row.provider = ",".join(sorted({str(r["provider"]) for r in served}))
            row.model = ",".join(sorted({str(r["model"]) for r in served}))

    return add
