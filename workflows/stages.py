"""Running a pipeline's stages from workflow code, shared by the pipeline workflow and its topic branches: each
stage is one AIJob whose row the stage activity creates, quick DB work on the pipeline queue, tenant notices."""

import asyncio
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.contracts import JobFinish, StageResult
    from models.enums import JobStatus, JobType
    from models.job_params import AnyJobParams
    from models.names import Activity
    from models.pipeline import JobRef, JobSpec, PipelineRequest, TenantNotice
    from workflows.job import failure_message, run_stage
    from workflows.policies import HEARTBEAT_TIMEOUT, PIPELINE_QUEUE, PUBLISH_QUEUE, QUICK_RETRY, QUICK_TIMEOUT
    from workflows.policies import sibling_queue as sibling

T = TypeVar("T")


class StageFailed(Exception):
    """A stage's job ended FAILED: the branch (or, before the branches, the pipeline) stops with this reason."""


async def settle(work: Iterable[Awaitable[T]]) -> tuple[list[T], list[BaseException]]:
    """Runs independent work together and splits what came back into results (in order) and failures;
    a cancellation is never taken for a failure."""
    results: list[T] = []
    failures: list[BaseException] = []
    for outcome in await asyncio.gather(*work, return_exceptions=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            failures.append(outcome)
        else:
            results.append(outcome)
    return results, failures


async def all_or_fail(work: Iterable[Awaitable[T]]) -> list[T]:
    """Runs independent jobs together; if any fails, StageFailed with every reason."""
    results, errors = await settle(work)
    if errors:
        raise StageFailed("; ".join(str(error) for error in errors))
    return results


def queue(base: str) -> str:
    return sibling(workflow.info().task_queue, base)


class Stages:
    """A workflow's jobs (for its `state` query) and the calls that run them."""

    def __init__(self, request: PipelineRequest) -> None:
        self.request = request
        self.jobs: list[JobRef] = []

    async def run(
        self,
        job_type: JobType,
        what: str,
        params: AnyJobParams,
        *,
        persona_id: uuid.UUID | None = None,
        topic_id: uuid.UUID | None = None,
        blog_post_id: uuid.UUID | None = None,
        social_post_id: uuid.UUID | None = None,
    ) -> StageResult:
        """One stage as an AIJob: the activity creates the job's row, runs it and records its end. `what` is
        the summary an operator reads in the Web UI."""
        request = self.request
        job_id = workflow.uuid4()
        ref = JobRef(job_id=job_id, job_type=job_type, status=JobStatus.PROCESSING)
        self.jobs.append(ref)
        spec = JobSpec(
            job_id=job_id,
            job_type=job_type,
            tenant_id=request.tenant_id,
            company_id=request.company_id,
            pipeline_id=request.pipeline_id,
            workflow_id=workflow.info().workflow_id,
            persona_id=persona_id,
            topic_id=topic_id,
            blog_post_id=blog_post_id,
            social_post_id=social_post_id,
            params=params,
        )
        try:
            result = await run_stage(job_type, job_id, request.tier, spec=spec, summary=what)
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                ref.status = JobStatus.CANCELLED
                raise asyncio.CancelledError("the stage was cancelled") from error
            ref.status = JobStatus.FAILED
            message = failure_message(error)
            # The stage records its own failures; this covers the ones it could not (timeouts, a lost worker).
            finish = JobFinish(job_id=job_id, status=JobStatus.FAILED, message=message)
            await self.quick(Activity.FINISH_JOB, finish, summary=f"record the failure of {what}")
            raise StageFailed(f"{job_type.value} failed: {message}") from None
        except asyncio.CancelledError:
            ref.status = JobStatus.CANCELLED  # cancelled on a timer of the stage (a video waiting for its render)
            raise
        ref.status = JobStatus.COMPLETED
        return result

    async def quick(self, activity: Activity, argument: Any, result_type: type | None = None, *, summary: str) -> Any:
        """Quick DB work on the pipeline queue."""
        return await workflow.execute_activity(
            activity,
            argument,
            result_type=result_type,
            task_queue=queue(PIPELINE_QUEUE),
            start_to_close_timeout=QUICK_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=summary,
        )

    async def notify(self, event: str, data: Mapping[str, Any]) -> None:
        """A tenant notice (logged, and sent to the tenant's webhook); one that cannot be delivered never stops
        the pipeline."""
        request = self.request
        notice = TenantNotice(
            tenant_id=request.tenant_id, event=event, pipeline_id=request.pipeline_id, data=dict(data)
        )
        workflow.logger.info("pipeline %s: %s %s", request.pipeline_id, event, data)
        try:
            await workflow.execute_activity(
                Activity.NOTIFY_TENANT,
                notice,
                result_type=bool,
                task_queue=queue(PUBLISH_QUEUE),
                start_to_close_timeout=QUICK_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary=f"notify the tenant: {event}",
            )
        except ActivityError as error:
            workflow.logger.warning("pipeline %s: %s not delivered: %s", request.pipeline_id, event, error)
