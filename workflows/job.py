"""GenerationJobWorkflow: one AIJob started alone through its endpoint, run as a single stage activity."""

import asyncio
import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from models.contracts import (
        JobFinish,
        JobOutcome,
        JobRequest,
        StageInput,
        StageResult,
        VideoPoll,
        VideoRender,
        VideoSubmit,
    )
    from models.enums import JobStatus, JobType, Tier
    from models.names import Activity, ErrorType, WorkflowName
    from models.pipeline import JobSpec
    from workflows.policies import (
        HEARTBEAT_TIMEOUT,
        MEDIA_QUEUE,
        MEDIA_RETRY,
        QUICK_RETRY,
        QUICK_TIMEOUT,
        VIDEO_FIRST_POLL,
        VIDEO_POLL_BACKOFF,
        VIDEO_POLL_CAP,
        VIDEO_POLL_TIMEOUT,
        VIDEO_RENDER_DEADLINE,
        VIDEO_SUBMIT_TIMEOUT,
        priority_for,
        sibling_queue,
        stage_schedule,
    )


def failure_message(error: BaseException) -> str:
    """The innermost application error's message: what the stage said, not Temporal's wrapper."""
    cause: BaseException | None = error
    message = str(error)
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.message:
            message = cause.message
        cause = cause.__cause__
    return message


async def run_stage(
    job_type: JobType, job_id: uuid.UUID, tier: Tier, *, spec: JobSpec | None = None, summary: str | None = None
) -> StageResult:
    """One stage activity, by name, on its queue with its limits: the same for a job alone and a pipeline's stage.
    Given a spec, the stage creates its job's row first. The stage records CANCELLED and drops its half-done work
    before the workflow goes on."""
    if job_type == JobType.GENERATE_VIDEO:
        return await run_video(job_id, tier, spec=spec, summary=summary)
    schedule = stage_schedule(job_type)
    result: StageResult = await workflow.execute_activity(
        Activity.stage(job_type),
        StageInput(job_id=job_id, spec=spec),
        result_type=StageResult,
        task_queue=sibling_queue(workflow.info().task_queue, schedule.queue),
        start_to_close_timeout=schedule.timeout,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=schedule.retry,
        priority=priority_for(tier),
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=summary,
    )
    return result


async def run_video(
    job_id: uuid.UUID, tier: Tier, *, spec: JobSpec | None = None, summary: str | None = None
) -> StageResult:
    """A video job, split so that no worker slot waits while the provider renders: one activity writes the prompt
    and submits the render (saved at once, so a retry never pays for a second one), then the workflow polls it
    between durable timers, soon at first and then every VIDEO_POLL_CAP. The poll that finds the video done
    stores it and completes the job in one transaction; a failed operation is rendered again; a render still
    running at VIDEO_RENDER_DEADLINE fails the job. Errors and cancellation reach the caller as from run_stage."""
    what = summary or f"video (AIJob {job_id})"
    queue = sibling_queue(workflow.info().task_queue, MEDIA_QUEUE)

    async def submit(render: int) -> VideoRender:
        submitted: VideoRender = await workflow.execute_activity(
            Activity.SUBMIT_VIDEO,
            VideoSubmit(job_id=job_id, spec=spec, render=render),
            result_type=VideoRender,
            task_queue=queue,
            start_to_close_timeout=VIDEO_SUBMIT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=MEDIA_RETRY,
            priority=priority_for(tier),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=what if render == 1 else f"{what}, render {render}",
        )
        return submitted

    async def poll(render: VideoRender, elapsed: timedelta) -> VideoRender:
        polled: VideoRender = await workflow.execute_activity(
            Activity.POLL_VIDEO,
            VideoPoll(
                render=render, final=elapsed >= VIDEO_RENDER_DEADLINE, elapsed_seconds=int(elapsed.total_seconds())
            ),
            result_type=VideoRender,
            task_queue=queue,
            start_to_close_timeout=VIDEO_POLL_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=MEDIA_RETRY,
            priority=priority_for(tier),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"poll the {what}: {render.name}",
        )
        return polled

    def first_poll(render: VideoRender) -> timedelta:
        """The provider's hint when it gave one (the offline provider: at once), else VIDEO_FIRST_POLL."""
        hint = render.poll_after_seconds
        return VIDEO_FIRST_POLL if hint is None else timedelta(seconds=max(0.0, hint))

    render = await submit(1)
    started = workflow.now()
    interval = first_poll(render)
    try:
        while render.result is None:
            if render.failed:
                workflow.logger.warning("%s: operation %s failed; rendering it again", what, render.name)
                render = await submit(render.render + 1)
                interval = first_poll(render)
                continue
            left = VIDEO_RENDER_DEADLINE - (workflow.now() - started)
            wait = max(timedelta(0), min(interval, left))
            if wait > timedelta(0):  # a zero timer is no wait, yet its task round trip costs up to a second
                await workflow.sleep(wait, summary=f"until the next poll of the {what}")
            # Never below VIDEO_FIRST_POLL after a poll: a hint of 0 that was wrong must not poll in a tight loop.
            interval = min(VIDEO_POLL_CAP, max(VIDEO_FIRST_POLL, interval * VIDEO_POLL_BACKOFF))
            render = await poll(render, workflow.now() - started)
    except asyncio.CancelledError:
        # A cancel that arrives on the timer reaches no activity, so the job's end is recorded here.
        await finish_job(job_id, JobStatus.CANCELLED, "cancelled while the video rendered; nothing was stored")
        raise
    return render.result


async def finish_job(job_id: uuid.UUID, status: JobStatus, message: str) -> None:
    """FAILED or CANCELLED for a job whose stage could not record its own end."""
    await workflow.execute_activity(
        Activity.FINISH_JOB,
        JobFinish(job_id=job_id, status=status, message=message),
        task_queue=workflow.info().task_queue,
        start_to_close_timeout=QUICK_TIMEOUT,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=QUICK_RETRY,
    )


@workflow.defn(name=WorkflowName.JOB)
class GenerationJobWorkflow:
    def __init__(self) -> None:
        self._status = JobStatus.PENDING

    @workflow.query
    def status(self) -> str:
        return self._status.value

    @workflow.run
    async def run(self, request: JobRequest) -> JobOutcome:
        self._status = JobStatus.PROCESSING
        try:
            what = f"{request.job_type.value.removeprefix('generate_')} (AIJob {request.job_id})"
            result = await run_stage(request.job_type, request.job_id, request.tier, summary=what)
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return await self._cancelled(request)
            message = failure_message(error)
            self._status = JobStatus.FAILED
            await self._finish(request, JobStatus.FAILED, message)
            raise ApplicationError(message, type=ErrorType.JOB_FAILED, non_retryable=True) from error
        except asyncio.CancelledError:
            return await self._cancelled(request)
        self._status = JobStatus.COMPLETED
        return JobOutcome(job_id=request.job_id, status=JobStatus.COMPLETED, artifact_ids=result.artifact_ids)

    async def _cancelled(self, request: JobRequest) -> JobOutcome:
        self._status = JobStatus.CANCELLED
        await self._finish(request, JobStatus.CANCELLED, "cancelled")
        raise asyncio.CancelledError("the job was cancelled")

    async def _finish(self, request: JobRequest, status: JobStatus, message: str) -> None:
        await finish_job(request.job_id, status, message)
