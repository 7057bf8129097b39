"""GenerationJobWorkflow: one AIJob started alone through its endpoint, run as a single stage activity."""

import asyncio
import uuid

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from models.contracts import JobFinish, JobOutcome, JobRequest, StageInput, StageResult
    from models.enums import JobStatus, JobType, Tier
    from models.names import Activity, ErrorType, WorkflowName
    from models.pipeline import JobSpec
    from workflows.policies import (
        HEARTBEAT_TIMEOUT,
        QUICK_RETRY,
        QUICK_TIMEOUT,
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
        await workflow.execute_activity(
            Activity.FINISH_JOB,
            JobFinish(job_id=request.job_id, status=status, message=message),
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=QUICK_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
