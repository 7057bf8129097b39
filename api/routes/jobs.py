"""The seed's job endpoints: start a generation job (202 at once), read it with its live state, list a company's jobs."""

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BeforeValidator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
)
from temporalio.service import RPCError, RPCStatusCode

from api.deps import (
    LimitQuery,
    MarketerDep,
    OffsetQuery,
    OptionalTemporalDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import PROBLEMS, Problem, not_found, problems
from api.routes.companies import OwnCompanyDep, company_of_tenant
from api.routing import SlashRouter
from api.starts import START_PROBLEMS, StartGuard, StartGuardDep, check_month
from models.api import AIJobPublic, JobAccepted, LiveState, Page, Usage
from models.contracts import JobRequest
from models.enums import TERMINAL_JOB_STATUSES, JobStatus, JobType, Tier
from models.job_requests import (
    BlogPostJobCreate,
    Durations,
    ImageJobCreate,
    JobStats,
    JobTypeStats,
    PersonasJobCreate,
    SocialJobCreate,
    TopicsJobCreate,
    UsageTotals,
    VideoJobCreate,
)
from models.settings import Settings
from models.tables import AIJob, BlogPost, Company, CompanyDNA, Persona, SocialPost, Topic, utcnow
from workflows.job import GenerationJobWorkflow
from workflows.policies import job_workflow_id

logger = logging.getLogger(__name__)

router = SlashRouter(prefix="/ai", tags=["jobs"])

JOB_TYPE = SearchAttributeKey.for_keyword("JobType")

STARTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "the job was accepted and its workflow started (or, for a repeated Idempotency-Key, the first request's job)"
    },
    **PROBLEMS,
    **START_PROBLEMS,
}


def invalid_reference(field: str, what: str) -> Problem:
    """A body id that names nothing of this company (missing, or another tenant's: the same answer)."""
    return Problem(
        422,
        f"{field} does not name {what} of this company",
        errors=[{"field": field, "message": f"no such {what} in this company", "type": "not_found"}],
    )


@dataclass
class JobStarter:
    """Everything a start endpoint needs: checks of its input against the company, and the start itself."""

    company: Company
    session: AsyncSession
    temporal: Client
    settings: Settings
    guard: StartGuard

    def needs(self, tier: Tier, what: str) -> None:
        if not self.guard.principal.tier.includes(tier):
            raise Problem(
                403,
                f"{what} needs the {tier.value} tier or higher; this tenant is on {self.guard.principal.tier.value}",
            )

    async def owned(self, table: Any, object_id: uuid.UUID, company: Company, field: str, what: str) -> Any:
        row = await self.session.get(table, object_id)
        if row is None or row.company_id != company.id or row.tenant_id != company.tenant_id:
            raise invalid_reference(field, what)
        return row

    async def require_dna(self, company: Company) -> None:
        found = (
            await self.session.exec(select(CompanyDNA.id).where(col(CompanyDNA.company_id) == company.id).limit(1))
        ).first()
        if found is None:
            raise Problem(409, f"research the company's DNA first: POST /api/v1/ai/companies/{company.id}/scrape-dna/")

    async def start(
        self, company: Company, job_type: JobType, params: dict[str, Any] | None = None, **links: Any
    ) -> JobAccepted:
        """Writes the AIJob (PENDING) and starts its workflow, without waiting for any AI work; a repeated
        Idempotency-Key returns the first request's job (and starts its workflow if that request could not)."""
        session, guard = self.session, self.guard
        earlier = guard.replay_of
        if earlier is None:
            job = AIJob(
                tenant_id=guard.principal.tenant_id,
                company_id=company.id,
                job_type=job_type,
                progress_message="queued",
                params={k: v for k, v in (params or {}).items() if v is not None},
                **links,
            )
            job.workflow_id = job_workflow_id(job.id)
            session.add(job)
            await session.flush()
            earlier = await guard.claim(session, job.id)
            if earlier is None:
                await guard.admit(session)
                await session.commit()
                await self.launch(job)
                return JobAccepted(job_id=job.id)
        replayed = await session.get(AIJob, earlier)
        if replayed is None:  # the key outlived its job
            raise Problem(409, "the job of this Idempotency-Key no longer exists; use a new key")
        if replayed.status == JobStatus.PENDING:
            await self.launch(replayed)
        return JobAccepted(job_id=replayed.id)

    async def launch(self, job: AIJob) -> None:
        async def refused() -> None:
            await self.session.exec(  # type: ignore[call-overload]
                sa.update(AIJob)
                .where(col(AIJob.id) == job.id, col(AIJob.status) == JobStatus.PENDING.value)
                .values(
                    status=JobStatus.FAILED.value,
                    error_message="the workflow engine did not accept the job; nothing ran",
                    completed_at=utcnow(),
                )
            )
            await self.session.commit()

        request = JobRequest(
            job_id=job.id,
            job_type=job.job_type,
            tenant_id=job.tenant_id,
            company_id=job.company_id,
            tier=self.guard.principal.tier,
        )
        await self.guard.launch(
            self.session,
            self.temporal,
            GenerationJobWorkflow.run,
            request,
            workflow_id=job_workflow_id(job.id),
            company_id=job.company_id,
            attribute=SearchAttributePair(JOB_TYPE, JobType(job.job_type).value),
            refused=refused,
            what="job",
        )


def job_starter(
    company: OwnCompanyDep, guard: StartGuardDep, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> JobStarter:
    """In this order: the company (404), the Idempotency-Key (422), then the engine (503); the body comes after."""
    return JobStarter(company=company, session=session, temporal=temporal, settings=settings, guard=guard)


StarterDep = Annotated[JobStarter, Depends(job_starter)]


def start_route(endpoint: str, summary: str) -> Callable[[Any], Any]:
    return router.post(
        f"/companies/{{company_id}}/{endpoint}/",
        status_code=202,
        response_model=JobAccepted,
        responses=STARTED,
        summary=summary,
    )


@start_route("scrape-dna", "Research the company's DNA (30+ sourced data points)")
async def scrape_dna(starter: StarterDep) -> JobAccepted:
    company = starter.company
    return await starter.start(company, JobType.GENERATE_DNA)


@start_route("generate-personas", "Propose 6 personas from the company's latest DNA")
async def generate_personas(starter: StarterDep, body: PersonasJobCreate | None = None) -> JobAccepted:
    company = starter.company
    await starter.require_dna(company)
    return await starter.start(company, JobType.GENERATE_PERSONAS, {"language": body.language if body else None})


@start_route("generate-topics", "Plan a persona's topics for a month")
async def generate_topics(body: TopicsJobCreate, starter: StarterDep) -> JobAccepted:
    company = starter.company
    persona = await starter.owned(Persona, body.persona_id, company, "personaId", "persona")
    check_month(body.month)
    await starter.require_dna(company)
    params = {"month": body.month, "count": body.count, "language": body.language}
    return await starter.start(company, JobType.GENERATE_TOPICS, params, persona_id=persona.id)


@start_route("generate-blogpost", "Write a blog post (4 to 10 pages, cited) for a topic")
async def generate_blogpost(body: BlogPostJobCreate, starter: StarterDep) -> JobAccepted:
    company = starter.company
    topic = await starter.owned(Topic, body.topic_id, company, "topicId", "topic")
    params = {"target_words": body.target_words, "language": body.language}
    return await starter.start(
        company, JobType.GENERATE_BLOGPOST, params, persona_id=topic.persona_id, topic_id=topic.id
    )


@start_route("generate-social", "Turn a blog post into one social post per platform")
async def generate_social(body: SocialJobCreate, starter: StarterDep) -> JobAccepted:
    company = starter.company
    post = await starter.owned(BlogPost, body.blog_post_id, company, "blogPostId", "blog post")
    params = {"platforms": [p.value for p in body.platforms], "link_url": body.link_url}
    return await starter.start(company, JobType.GENERATE_SOCIAL, params, topic_id=post.topic_id, blog_post_id=post.id)


@start_route("generate-image", "Make the image of a social post (PRO tier and up)")
async def generate_image(body: ImageJobCreate, starter: StarterDep) -> JobAccepted:
    starter.needs(Tier.PRO, "images")
    company = starter.company
    post = await starter.owned(SocialPost, body.social_post_id, company, "socialPostId", "social post")
    return await starter.start(company, JobType.GENERATE_IMAGE, blog_post_id=post.blog_post_id, social_post_id=post.id)


@start_route("generate-video", "Make a short video for a blog post (ULTIMATE tier)")
async def generate_video(body: VideoJobCreate, starter: StarterDep) -> JobAccepted:
    starter.needs(Tier.ULTIMATE, "videos")
    company = starter.company
    post = await starter.owned(BlogPost, body.blog_post_id, company, "blogPostId", "blog post")
    params = {"aspectRatio": body.aspect_ratio}
    return await starter.start(company, JobType.GENERATE_VIDEO, params, topic_id=post.topic_id, blog_post_id=post.id)


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


# How a workflow can end without its own code recording the end (an operator terminated it, it timed out).
ENDED_WITHOUT_RECORD = {
    "TERMINATED": "was terminated (by an operator or a deployment)",
    "TIMED_OUT": "timed out",
    "FAILED": "failed",
    "CANCELED": None,
}


def ended_without_record(workflow_status: str, what: str) -> tuple[bool, str] | None:
    """(cancelled?, reason) for a workflow that ended without recording it; None while it runs or ended normally.
    Rows are brought in line with it, so nothing stays PROCESSING or RUNNING forever."""
    if workflow_status not in ENDED_WITHOUT_RECORD:
        return None
    how = ENDED_WITHOUT_RECORD[workflow_status]
    return (True, "cancelled") if how is None else (False, f"the {what}'s workflow {how}")


async def reconcile_ended(session: SessionDep, job: AIJob, live: LiveState) -> bool:
    ended = ended_without_record(live.workflow_status, "job")
    if ended is None:
        return False
    cancelled, message = ended
    values: dict[str, Any] = {
        "status": (JobStatus.CANCELLED if cancelled else JobStatus.FAILED).value,
        "completed_at": utcnow(),
        "progress_message": message,
    }
    if not cancelled:
        values["error_message"] = message
    await session.exec(  # type: ignore[call-overload]
        sa.update(AIJob)
        .where(col(AIJob.id) == job.id, col(AIJob.status).not_in(TERMINAL_JOB_STATUSES))
        .values(**values)
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
            select(AIJob)
            .where(*conditions)
            .order_by(col(AIJob.created_at).desc(), col(AIJob.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return {"data": [job_public(job, settings) for job in rows], "count": count, "limit": limit, "offset": offset}


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
    job_id: uuid.UUID, principal: MarketerDep, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> AIJobPublic:
    job = await session.get(AIJob, job_id)
    if job is None or job.tenant_id != principal.tenant_id:
        raise not_found("the job")
    # A pipeline's stage is refused whatever its status, so the answer does not depend on how far it got.
    if job.pipeline_id is not None:
        raise Problem(
            409,
            f"the job is a stage of pipeline {job.pipeline_id}; cancel the pipeline: POST /api/v1/ai/pipelines/{job.pipeline_id}/cancel/",
            pipelineId=str(job.pipeline_id),
        )
    if job.status == JobStatus.CANCELLED:
        return job_public(job, settings)
    if JobStatus(job.status).is_terminal:
        raise Problem(409, f"the job has already finished: {job.status}")
    try:
        # The workflow cancels its stage through the heartbeat; the stage records CANCELLED and keeps nothing.
        await temporal.get_workflow_handle(job_workflow_id(job.id)).cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Problem(
                503, "the workflow engine is not reachable; nothing was cancelled", headers={"Retry-After": "5"}
            ) from None
        # No workflow to cancel (its start never happened, or it is gone): the row is the whole job.
        await mark_cancelled(session, job)
    await session.refresh(job)
    return job_public(job, settings)


async def mark_cancelled(session: SessionDep, job: AIJob) -> None:
    await session.exec(  # type: ignore[call-overload]
        sa.update(AIJob)
        .where(col(AIJob.id) == job.id, col(AIJob.status).not_in(TERMINAL_JOB_STATUSES))
        .values(status=JobStatus.CANCELLED.value, progress_message="cancelled", completed_at=utcnow())
    )
    await session.commit()


def iso_only(value: object) -> object:
    """pydantic would read a bare number as unix time; the parameter is documented as an ISO 8601 date-time."""
    if (
        isinstance(value, str)
        and value.strip().lstrip("+-").replace(".", "", 1).replace("e", "", 1).replace("E", "", 1).isdigit()
    ):
        raise ValueError("use an ISO 8601 date-time such as 2026-11-01T00:00:00Z")
    return value


@router.get(
    "/companies/{company_id}/jobs/stats/",
    response_model=JobStats,
    responses=PROBLEMS,
    summary="A company's job statistics",
)
async def company_job_stats(
    company_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    since: Annotated[
        datetime | None,
        BeforeValidator(iso_only),
        Query(description="only jobs created at or after this time (ISO 8601)"),
    ] = None,
) -> JobStats:
    """Counts by status and by type, p50 and p95 durations (start to completion of COMPLETED jobs) per type,
    and tokens and cost in total and per type."""
    await company_of_tenant(session, principal.tenant_id, company_id)
    conditions = [col(AIJob.tenant_id) == principal.tenant_id, col(AIJob.company_id) == company_id]
    if since is not None:
        conditions.append(col(AIJob.created_at) >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
    counts = await session.exec(  # type: ignore[call-overload]
        sa.select(
            col(AIJob.job_type),
            col(AIJob.status),
            sa.func.count(),
            sa.func.sum(col(AIJob.input_tokens)),
            sa.func.sum(col(AIJob.output_tokens)),
            sa.func.sum(col(AIJob.cost_usd)),
        )
        .where(*conditions)
        .group_by(col(AIJob.job_type), col(AIJob.status))
    )
    seconds = sa.extract("epoch", col(AIJob.completed_at) - col(AIJob.started_at))
    durations = await session.exec(  # type: ignore[call-overload]
        sa.select(
            col(AIJob.job_type),
            sa.func.count(),
            sa.func.percentile_cont(0.5).within_group(seconds),
            sa.func.percentile_cont(0.95).within_group(seconds),
        )
        .where(
            *conditions,
            col(AIJob.status) == JobStatus.COMPLETED.value,
            col(AIJob.started_at).is_not(None),
            col(AIJob.completed_at).is_not(None),
        )
        .group_by(col(AIJob.job_type))
    )
    stats = JobStats(
        total=0,
        by_status=dict.fromkeys(JobStatus, 0),
        by_type={
            t: JobTypeStats(by_status=dict.fromkeys(JobStatus, 0), durations=Durations(), usage=UsageTotals())
            for t in JobType
        },
        usage=UsageTotals(),
    )
    for job_type, status, count, input_tokens, output_tokens, cost in counts.all():
        of_type = stats.by_type[JobType(job_type)]
        for totals in (stats.usage, of_type.usage):
            totals.input_tokens += int(input_tokens or 0)
            totals.output_tokens += int(output_tokens or 0)
            totals.cost_usd += Decimal(cost or 0)
        of_type.count += count
        of_type.by_status[JobStatus(status)] += count
        stats.by_status[JobStatus(status)] += count
        stats.total += count
    for job_type, count, p50, p95 in durations.all():
        stats.by_type[JobType(job_type)].durations = Durations(
            count=count, p50_seconds=round(float(p50), 3), p95_seconds=round(float(p95), 3)
        )
    return stats
