"""The seed's job endpoints besides the starts (routes/job_starts.py): a job with its live state, a company's jobs
and their statistics, and cancelling a job."""

import uuid
from typing import Annotated

from fastapi import Query

from api.deps import (
    JobStoreDep,
    LimitQuery,
    MarketerDep,
    OffsetQuery,
    OptionalTemporalDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import PROBLEMS, problems
from api.routing import SlashRouter
from api.services.job_stats import SinceQuery, job_stats
from api.services.jobs import job_of_tenant, list_jobs, read_job, request_cancel
from models.api import AIJobPublic, Page
from models.enums import JobStatus, JobType
from models.job_requests import JobStats

router = SlashRouter(prefix="/ai", tags=["jobs"])


@router.get("/jobs/{job_id}/", response_model=AIJobPublic, responses=PROBLEMS, summary="A job with its live state")
async def get_job(
    job_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: OptionalTemporalDep,
    store: JobStoreDep,
) -> AIJobPublic:
    job = await job_of_tenant(session, principal.tenant_id, job_id)
    return await read_job(session, store, settings, temporal, job)


@router.get(
    "/companies/{company_id}/jobs/",
    response_model=Page[AIJobPublic],
    responses=PROBLEMS,
    summary="A company's jobs, newest first",
)
async def list_company_jobs(
    company_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    job_type: Annotated[JobType | None, Query(alias="jobType", description="only jobs of this type")] = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> Page[AIJobPublic]:
    tenant_id = principal.tenant_id
    return await list_jobs(session, settings, tenant_id, company_id, status, job_type, limit=limit, offset=offset)


@router.post(
    "/jobs/{job_id}/cancel/",
    status_code=202,
    response_model=AIJobPublic,
    responses={
        202: {"description": "cancellation was requested (or the job is already CANCELLED); the job ends CANCELLED"},
        **PROBLEMS,
        **problems(
            _409="the job has already finished, or it belongs to a pipeline (cancel the pipeline)",
            _503="the workflow engine is not reachable",
        ),
    },
    summary="Cancel a job (idempotent)",
)
async def cancel_job(
    job_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    store: JobStoreDep,
) -> AIJobPublic:
    job = await job_of_tenant(session, principal.tenant_id, job_id)
    return await request_cancel(session, store, settings, temporal, job)


@router.get(
    "/companies/{company_id}/jobs/stats/",
    response_model=JobStats,
    responses=PROBLEMS,
    summary="A company's job statistics",
)
async def company_job_stats(
    company_id: uuid.UUID, principal: MarketerDep, session: SessionDep, since: SinceQuery = None
) -> JobStats:
    """Counts by status and by type, p50 and p95 durations (start to completion of COMPLETED jobs) per type,
    and tokens and cost in total and per type."""
    return await job_stats(session, principal.tenant_id, company_id, since)
