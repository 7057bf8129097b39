"""Temporal operations of the API: starting a workflow with its search attributes, and describing, cancelling and
reconciling a job's workflow."""

import asyncio
import uuid
from datetime import UTC
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Principal
from api.errors import Problem
from models.api import LiveState
from models.enums import JobStatus
from models.names import COMPANY_ID, TENANT_ID
from models.settings import Settings
from models.stores.jobs import JobStore
from models.tables import AIJob
from models.workflow_ends import ended_without_record
from workflows.policies import PIPELINE_QUEUE, job_workflow_id, priority_for

DESCRIBE_TIMEOUT_SECONDS = 3


async def start_workflow(
    temporal: Client,
    settings: Settings,
    principal: Principal,
    run: Any,
    argument: Any,
    *,
    workflow_id: str,
    company_id: uuid.UUID,
    attribute: SearchAttributePair[str],
) -> None:
    """Starts a workflow under the id its row recorded, findable by tenant and company (and `attribute`) in the
    Web UI: a repeat is a no-op, never a second workflow. Raises what the engine raised when it refused."""
    try:
        await temporal.start_workflow(
            run,
            argument,
            id=workflow_id,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            task_queue=PIPELINE_QUEUE + settings.task_queue_suffix,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID, str(principal.tenant_id)),
                    SearchAttributePair(COMPANY_ID, str(company_id)),
                    attribute,
                ]
            ),
            priority=priority_for(principal.tier),
        )
    except WorkflowAlreadyStartedError:
        return


async def live_state(temporal: Client, workflow_id: str) -> LiveState | None:
    """What Temporal knows right now: the workflow's status and the running activity's attempt and last failure."""
    try:
        description = await asyncio.wait_for(
            temporal.get_workflow_handle(workflow_id).describe(), timeout=DESCRIBE_TIMEOUT_SECONDS
        )
    except Exception:
        return None
    status = description.status.name if description.status else WorkflowExecutionStatus.RUNNING.name
    state = LiveState(workflow_status=status)
    pending = list(description.raw_description.pending_activities)
    if pending:
        activity = pending[0]
        state.activity = activity.activity_type.name
        state.attempt = activity.attempt
        if activity.HasField("last_failure") and activity.last_failure.message:
            state.last_failure = activity.last_failure.message
        if activity.HasField("next_attempt_schedule_time"):
            state.next_attempt_at = activity.next_attempt_schedule_time.ToDatetime().replace(tzinfo=UTC)
    return state


async def reconcile_ended(store: JobStore, session: AsyncSession, job: AIJob, live: LiveState) -> bool:
    """A job whose workflow ended without recording it ends the same way; `job` is read again from `session`."""
    ended = ended_without_record(live.workflow_status, "job")
    if ended is None:
        return False
    cancelled, message = ended
    status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
    await store.finish(job.id, status, message, progress_message=message)
    await session.refresh(job)
    return True


async def cancel_job_workflow(store: JobStore, temporal: Client, job: AIJob) -> None:
    """Asks the job's workflow to cancel (its stage records CANCELLED and keeps nothing); with no workflow to
    cancel (its start never happened, or it is gone) the row is the whole job and ends CANCELLED here."""
    try:
        await temporal.get_workflow_handle(job_workflow_id(job.id)).cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Problem(
                503, "the workflow engine is not reachable; nothing was cancelled", headers={"Retry-After": "5"}
            ) from None
        await store.finish(job.id, JobStatus.CANCELLED, "cancelled")
