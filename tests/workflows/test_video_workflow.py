"""A video job in the workflow (workflows/job.py run_video) on the time-skipping server: the render is submitted once,
then polled between durable timers that back off to a cap, rendered again when the operation failed, failed at its
deadline, and recorded CANCELLED when a cancel arrives on a timer. The last test runs the real media activities on
a real database with the offline provider, as the standalone video endpoint does."""

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.deps import StageDeps
from models.contracts import JobFinish, JobOutcome, JobRequest, StageResult, VideoPoll, VideoRender, VideoSubmit
from models.db import Database
from models.enums import JobStatus, JobType, Tier
from models.settings import Settings
from providers.base import WorkKind
from providers.offline import OfflineProvider
from providers.router import ProviderRouter
from tests.activities.test_stage_media import assets_of, job_row, new_job, seed
from worker import build_workers
from workflows.job import GenerationJobWorkflow
from workflows.policies import VIDEO_FIRST_POLL, VIDEO_POLL_CAP, VIDEO_RENDER_DEADLINE


@dataclass
class StandIns:
    """Stand-in video activities: what they were asked, and how many polls a render takes (None: never done)."""

    polls_to_finish: int | None = 3
    failing_renders: set[int] = field(default_factory=set)  # renders whose operation fails at the first poll
    poll_after_seconds: float | None = None  # the provider's hint for the first poll
    submits: list[VideoSubmit] = field(default_factory=list)
    polls: list[VideoPoll] = field(default_factory=list)
    finishes: list[JobFinish] = field(default_factory=list)
    polled: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Any]:
        stand_ins = self

        @activity.defn(name="submit_video")
        async def submit_video(submit: VideoSubmit) -> VideoRender:
            stand_ins.submits.append(submit)
            return VideoRender(
                job_id=submit.job_id,
                render=submit.render,
                name=f"operations/op-{submit.render}",
                poll_after_seconds=stand_ins.poll_after_seconds,
            )

        @activity.defn(name="poll_video")
        async def poll_video(poll: VideoPoll) -> VideoRender:
            stand_ins.polls.append(poll)
            stand_ins.polled.set()
            render = poll.render
            if render.render in stand_ins.failing_renders:
                return render.model_copy(update={"failed": True})
            of_render = [p for p in stand_ins.polls if p.render.render == render.render]
            if stand_ins.polls_to_finish is not None and len(of_render) >= stand_ins.polls_to_finish:
                return render.model_copy(update={"result": StageResult(job_id=render.job_id, summary={"ok": True})})
            if poll.final:
                raise ApplicationError(
                    f"the video was still rendering after {poll.elapsed_seconds} s (operation {render.name}); gave up",
                    type="VideoDeadline",
                    non_retryable=True,
                )
            return render

        @activity.defn(name="finish_job")
        async def finish_job(finish: JobFinish) -> bool:
            stand_ins.finishes.append(finish)
            return True

        return [submit_video, poll_video, finish_job]


@pytest.fixture
async def running(
    skipping_temporal: WorkflowEnvironment,
) -> AsyncIterator[tuple[WorkflowEnvironment, str, StandIns]]:
    stand_ins = StandIns()
    suffix = f"-{uuid.uuid4().hex[:8]}"
    client = skipping_temporal.client
    pipeline = Worker(
        client,
        task_queue=f"pipeline{suffix}",
        workflows=[GenerationJobWorkflow],
        activities=[stand_ins.activities()[2]],
    )
    media = Worker(client, task_queue=f"media{suffix}", activities=stand_ins.activities()[:2])
    async with pipeline, media:
        yield skipping_temporal, f"pipeline{suffix}", stand_ins


async def start_video_job(env: WorkflowEnvironment, queue: str) -> WorkflowHandle[Any, JobOutcome]:
    request = JobRequest(
        job_id=uuid.uuid4(), job_type=JobType.GENERATE_VIDEO, tenant_id=uuid.uuid4(), company_id=uuid.uuid4()
    )
    return await env.client.start_workflow(
        GenerationJobWorkflow.run, request, id=f"job-{request.job_id}", task_queue=queue
    )


async def timers_of(handle: WorkflowHandle[Any, Any]) -> list[timedelta]:
    history = await handle.fetch_history()
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.HasField("timer_started_event_attributes")
    ]


async def test_the_render_is_polled_between_timers_that_back_off_to_a_cap(running: Any) -> None:
    env, queue, stand_ins = running
    stand_ins.polls_to_finish = 8
    handle = await start_video_job(env, queue)
    outcome = await handle.result()

    assert outcome.status == JobStatus.COMPLETED
    assert len(stand_ins.submits) == 1 and len(stand_ins.polls) == 8
    waits = await timers_of(handle)
    assert waits[0] == VIDEO_FIRST_POLL and len(waits) == 8
    assert all(a <= b for a, b in itertools.pairwise(waits))  # backing off ...
    assert waits[-1] == VIDEO_POLL_CAP  # ... to the cap
    assert not any(p.final for p in stand_ins.polls)
    history = await handle.fetch_history()
    summaries = {
        e.user_metadata.summary.data.decode()
        for e in history.events
        if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
    }
    assert any("poll the video" in s and "operations/op-1" in s for s in summaries)
    assert any(s.startswith('"until the next poll of the video') for s in summaries)


async def test_a_provider_that_hints_ready_is_polled_at_once_and_then_backs_off(running: Any) -> None:
    """The offline provider renders while it is polled: its hint of 0 skips the first timer (a zero timer still
    costs a task round trip); a render still running then is polled again no sooner than VIDEO_FIRST_POLL."""
    env, queue, stand_ins = running
    stand_ins.poll_after_seconds = 0.0
    stand_ins.polls_to_finish = 3
    handle = await start_video_job(env, queue)
    outcome = await handle.result()

    assert outcome.status == JobStatus.COMPLETED
    assert len(stand_ins.polls) == 3
    waits = await timers_of(handle)
    assert waits[0] == VIDEO_FIRST_POLL and len(waits) == 2  # no timer before the first poll


async def test_a_failed_operation_is_rendered_again(running: Any) -> None:
    env, queue, stand_ins = running
    stand_ins.failing_renders = {1}
    outcome = await (await start_video_job(env, queue)).result()
    assert outcome.status == JobStatus.COMPLETED
    assert [s.render for s in stand_ins.submits] == [1, 2]
    assert [p.render.render for p in stand_ins.polls] == [1, 2, 2, 2]


async def test_a_render_still_running_at_the_deadline_fails_the_job(running: Any) -> None:
    env, queue, stand_ins = running
    stand_ins.polls_to_finish = None
    handle = await start_video_job(env, queue)
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert "still rendering after 900 s" in str(caught.value.cause)
    assert stand_ins.polls[-1].final and not any(p.final for p in stand_ins.polls[:-1])
    # The last wait ends at the deadline (the polls themselves take some of the time too).
    assert sum(await timers_of(handle), timedelta()) <= VIDEO_RENDER_DEADLINE
    assert stand_ins.polls[-1].elapsed_seconds >= VIDEO_RENDER_DEADLINE.total_seconds()
    assert [(f.status, "still rendering" in f.message) for f in stand_ins.finishes] == [(JobStatus.FAILED, True)]


async def no_activity_in_flight(handle: WorkflowHandle[Any, Any]) -> None:
    """Waits until the poll that set `polled` has completed in the history: a cancel that races an activity's
    completion can make the time-skipping server reject the workflow task (ACTIVITY_UNKNOWN) and stop skipping
    time, so the workflow would never see the cancel."""
    for _ in range(400):
        if not (await handle.describe()).raw_description.pending_activities:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the poll stayed in flight")


async def test_a_cancel_on_the_timer_records_the_job_cancelled(running: Any) -> None:
    env, queue, stand_ins = running
    stand_ins.polls_to_finish = None
    handle = await start_video_job(env, queue)
    await asyncio.wait_for(stand_ins.polled.wait(), timeout=60)
    await no_activity_in_flight(handle)  # the workflow now waits on a timer
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert stand_ins.finishes[0].status == JobStatus.CANCELLED
    assert "while the video rendered" in stand_ins.finishes[0].message


async def test_a_standalone_video_job_runs_the_real_activities_end_to_end(
    skipping_temporal: WorkflowEnvironment, db: Database, tmp_path: Path
) -> None:
    """The same job a client starts through the video endpoint: real activities, real rows, a real MP4."""
    seeded = await seed(db)
    job = await new_job(db, seeded, JobType.GENERATE_VIDEO, blog_post_id=seeded.blog_post.id)
    settings = Settings(media_dir=tmp_path / "media", task_queue_suffix=f"-{uuid.uuid4().hex[:8]}", _env_file=None)  # type: ignore[call-arg]
    provider = OfflineProvider()
    router = ProviderRouter({kind: [provider] for kind in WorkKind})
    client = skipping_temporal.client
    workers = build_workers(client, StageDeps(db=db, router=router, settings=settings), settings)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        request = JobRequest(
            job_id=job.id,
            job_type=JobType.GENERATE_VIDEO,
            tenant_id=seeded.tenant.id,
            company_id=seeded.company.id,
            tier=Tier.ULTIMATE,
        )
        outcome = await client.execute_workflow(
            GenerationJobWorkflow.run,
            request,
            id=f"job-{job.id}",
            task_queue=f"pipeline{settings.task_queue_suffix}",
        )
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        await router.close()
    [asset] = await assets_of(db, job.id)
    assert outcome.status == JobStatus.COMPLETED and outcome.artifact_ids == [asset.id]
    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED and row.progress == 100
    assert row.result_data is not None and row.result_data["summary"]["kind"] == "video"
    assert [r["kind"] for r in row.usage_records] == ["json", "video", "video"]
