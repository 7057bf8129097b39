"""Reading a job with its live state (and bringing its row in line with a workflow that ended without recording
it), listing a company's jobs, and cancelling a job."""

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import Problem, not_found
from api.routes.companies import company_of_tenant
from api.services.temporal import cancel_job_workflow, live_state, reconcile_ended
from models.api import AIJobPublic, LiveState, Page, Usage
from models.enums import JobStatus, JobType
from models.settings import Settings
from models.stores.jobs import JobStore
from models.tables import AIJob


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


async def job_of_tenant(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> AIJob:
    """The tenant's job; 404 for a job that does not exist or is another tenant's."""
    job = await session.get(AIJob, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise not_found("the job")
    return job


async def read_job(
    session: AsyncSession, store: JobStore, settings: Settings, temporal: Client | None, job: AIJob
) -> AIJobPublic:
    """The job with what Temporal knows of it while it runs; a workflow that ended without recording it ends
    the row the same way first."""
    live = None
    if not JobStatus(job.status).is_terminal and job.workflow_id and temporal is not None:
        live = await live_state(temporal, job.workflow_id)
        if live is not None and await reconcile_ended(store, session, job, live):
            live = None
    return job_public(job, settings, live)


async def list_jobs(
    session: AsyncSession,
    settings: Settings,
    tenant_id: uuid.UUID,
    company_id: uuid.UUID,
    status: JobStatus | None,
    job_type: JobType | None,
    *,
    limit: int,
    offset: int,
) -> Page[AIJobPublic]:
    """One page of a company's jobs, newest first; 404 for a company that is not the tenant's."""
    await company_of_tenant(session, tenant_id, company_id)
    conditions = [col(AIJob.tenant_id) == tenant_id, col(AIJob.company_id) == company_id]
    if status is not None:
        conditions.append(col(AIJob.status) == status.value)
    if job_type is not None:
        conditions.append(col(AIJob.job_type) == job_type.value)
    count = (await session.exec(select(sa.func.count()).select_from(AIJob).where(*conditions))).one()
    rows = (
        await session.exec(
            select(AIJob)
            .where(*conditions)
            .order_by(col(AIJob.created_at).desc(), col(AIJob.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return Page[AIJobPublic](data=[job_public(job, settings) for job in rows], count=count, limit=limit, offset=offset)


async def request_cancel(
    session: AsyncSession, store: JobStore, settings: Settings, temporal: Client, job: AIJob
) -> AIJobPublic:
    """Cancels a job started alone (idempotent); a pipeline's stage is cancelled with its pipeline."""
    # A pipeline's stage is refused whatever its status, so the answer does not depend on how far it got.
    if job.pipeline_id is not None:
        raise Problem(
            409,
            f"the job is a stage of pipeline {job.pipeline_id}; cancel the pipeline: "
            f"POST /api/v1/ai/pipelines/{job.pipeline_id}/cancel/",
            pipelineId=str(job.pipeline_id),
        )
    if job.status == JobStatus.CANCELLED:
        return job_public(job, settings)
    if JobStatus(job.status).is_terminal:
        raise Problem(409, f"the job has already finished: {job.status}")
    await cancel_job_workflow(store, temporal, job)
    await session.refresh(job)
    return job_public(job, settings)
