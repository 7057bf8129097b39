"""The seed's job endpoints: start a generation job (202 at once), read it with its live state, list a company's jobs."""

import asyncio
import logging
import uuid
from datetime import UTC
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Query
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from api.deps import (
    LimitQuery,
    MarketerDep,
    OffsetQuery,
    OptionalTemporalDep,
    Principal,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import PROBLEMS, Problem, not_found
from api.routes.companies import company_of_tenant
from api.routing import SlashRouter
from models.api import AIJobPublic, JobAccepted, LiveState, Page, Usage
from models.contracts import JobRequest
from models.enums import TERMINAL_JOB_STATUSES, JobStatus, JobType
from models.settings import Settings
from models.tables import AIJob, Company, utcnow
from workflows.job import GenerationJobWorkflow
from workflows.policies import PIPELINE_QUEUE, job_workflow_id, priority_for

logger = logging.getLogger(__name__)

router = SlashRouter(prefix="/ai", tags=["jobs"])

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
COMPANY_ID = SearchAttributeKey.for_keyword("CompanyId")
JOB_TYPE = SearchAttributeKey.for_keyword("JobType")

STARTED: dict[int | str, dict[str, Any]] = {202: {"description": "the job was accepted and its workflow started"}, **PROBLEMS}


async def start_job(
    session: SessionDep,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    company: Company,
    job_type: JobType,
    **links: Any,
) -> AIJob:
    """Writes the AIJob (PENDING), starts its workflow, and returns without waiting for any AI work."""
    job = AIJob(tenant_id=principal.tenant_id, company_id=company.id, job_type=job_type, progress_message="queued", **links)
    job.workflow_id = job_workflow_id(job.id)
    session.add(job)
    await session.commit()
    try:
        await temporal.start_workflow(
            GenerationJobWorkflow.run,
            JobRequest(job_id=job.id, job_type=job_type, tenant_id=principal.tenant_id, company_id=company.id, tier=principal.tier),
            id=job.workflow_id,
            task_queue=PIPELINE_QUEUE + settings.task_queue_suffix,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID, str(principal.tenant_id)),
                    SearchAttributePair(COMPANY_ID, str(company.id)),
                    SearchAttributePair(JOB_TYPE, job_type.value),
                ]
            ),
            priority=priority_for(principal.tier),
        )
    except Exception as exc:
        logger.exception("could not start the workflow of job %s", job.id)
        job.status = JobStatus.FAILED
        job.error_message = "the workflow engine did not accept the job; nothing ran"
        job.completed_at = utcnow()
        session.add(job)
        await session.commit()
        raise Problem(503, "the workflow engine is not reachable; the job was not started", headers={"Retry-After": "5"}) from exc
    return job


@router.post(
    "/companies/{company_id}/scrape-dna/",
    status_code=202,
    response_model=JobAccepted,
    responses=STARTED,
    summary="Research the company's DNA (30+ sourced data points)",
)
async def scrape_dna(
    company_id: uuid.UUID, principal: MarketerDep, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> JobAccepted:
    company = await company_of_tenant(session, principal.tenant_id, company_id)
    job = await start_job(session, temporal, settings, principal, company, JobType.GENERATE_DNA)
    return JobAccepted(job_id=job.id)


async def live_state(temporal: Client, workflow_id: str) -> LiveState | None:
    """What Temporal knows right now: the workflow's status and the running activity's attempt and last failure."""
    try:
        description = await asyncio.wait_for(temporal.get_workflow_handle(workflow_id).describe(), timeout=3)
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


def job_public(job: AIJob, settings: Settings, live: LiveState | None = None) -> AIJobPublic:
    return AIJobPublic(
        id=job.id,
        job_type=job.job_type,
        status=job.status,
        company_id=job.company_id,
        persona_id=job.persona_id,
        topic_id=job.topic_id,
        progress=job.progress,
        progress_message=job.progress_message,
        result_data=job.result_data,
        error_message=job.error_message,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        workflow_id=job.workflow_id,
        temporal_ui_url=settings.temporal_ui_link(job.workflow_id) if job.workflow_id else None,
        usage=Usage(
            input_tokens=job.input_tokens,
            output_tokens=job.output_tokens,
            cost_usd=Decimal(job.cost_usd or 0),
            provider=job.provider,
            model=job.model,
        ),
        live=live,
    )


# A workflow that ended without its stage recording the end (an operator terminated it, it timed out):
# the job row is brought in line with what Temporal says, so it never stays PROCESSING forever.
ENDED_WITHOUT_RECORD = {
    "TERMINATED": (JobStatus.FAILED, "the job's workflow was terminated (by an operator or a deployment)"),
    "TIMED_OUT": (JobStatus.FAILED, "the job's workflow timed out"),
    "FAILED": (JobStatus.FAILED, "the job's workflow failed"),
    "CANCELED": (JobStatus.CANCELLED, "cancelled"),
}


async def reconcile_ended(session: SessionDep, job: AIJob, live: LiveState) -> bool:
    ended = ENDED_WITHOUT_RECORD.get(live.workflow_status)
    if ended is None:
        return False
    status, message = ended
    values: dict[str, Any] = {"status": status.value, "completed_at": utcnow(), "progress_message": message}
    if status == JobStatus.FAILED:
        values["error_message"] = message
    await session.exec(  # type: ignore[call-overload]
        sa.update(AIJob).where(col(AIJob.id) == job.id, col(AIJob.status).not_in(TERMINAL_JOB_STATUSES)).values(**values)
    )
    await session.commit()
    await session.refresh(job)
    return True


@router.get("/jobs/{job_id}/", response_model=AIJobPublic, responses=PROBLEMS, summary="A job with its live state")
async def get_job(
    job_id: uuid.UUID, principal: MarketerDep, session: SessionDep, settings: SettingsDep, temporal: OptionalTemporalDep
) -> AIJobPublic:
    job = await session.get(AIJob, job_id)
    if job is None or job.tenant_id != principal.tenant_id:
        raise not_found("the job")
    live = None
    if not JobStatus(job.status).is_terminal and job.workflow_id and temporal is not None:
        live = await live_state(temporal, job.workflow_id)
        if live is not None and await reconcile_ended(session, job, live):
            live = None
    return job_public(job, settings, live)


@router.get("/companies/{company_id}/jobs/", response_model=Page[AIJobPublic], responses=PROBLEMS, summary="A company's jobs, newest first")
async def list_company_jobs(
    company_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    job_type: Annotated[JobType | None, Query(alias="jobType", description="only jobs of this type")] = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> dict[str, object]:
    await company_of_tenant(session, principal.tenant_id, company_id)
    conditions = [col(AIJob.tenant_id) == principal.tenant_id, col(AIJob.company_id) == company_id]
    if status is not None:
        conditions.append(col(AIJob.status) == status.value)
    if job_type is not None:
        conditions.append(col(AIJob.job_type) == job_type.value)
    count = (await session.exec(select(sa.func.count()).select_from(AIJob).where(*conditions))).one()
    rows = (
        await session.exec(
            select(AIJob).where(*conditions).order_by(col(AIJob.created_at).desc(), col(AIJob.id).desc()).limit(limit).offset(offset)
        )
    ).all()
    return {"data": [job_public(job, settings) for job in rows], "count": count, "limit": limit, "offset": offset}
