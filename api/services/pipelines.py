"""Pipelines: starting one (one running per company and month), reading it with its jobs, artifacts and open
gates (and bringing its row in line with a workflow that ended without recording it), and cancelling it."""

import asyncio
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Problem, not_found
from api.services.starts import StartGuard, check_month
from api.services.temporal import ended_without_record
from models.enums import TERMINAL_PIPELINE_STATUSES, PipelineStage, PipelineStatus, Platform, Tier
from models.names import PIPELINE_STAGE, pipeline_workflow_id
from models.pipeline import (
    BranchView,
    GateView,
    PipelineAccepted,
    PipelineArtifacts,
    PipelineCreate,
    PipelineJob,
    PipelineOptions,
    PipelinePublic,
    PipelineRequest,
)
from models.settings import Settings
from models.stores.pipelines import PipelineStore
from models.tables import (
    AIJob,
    BlogPostRevision,
    Company,
    CompanyDNA,
    MediaAsset,
    Persona,
    Pipeline,
    SocialPost,
    Topic,
)
from workflows.pipeline import ContentPipelineWorkflow

FINISHED = TERMINAL_PIPELINE_STATUSES


async def accept_pipeline(
    session: AsyncSession,
    temporal: Client,
    store: PipelineStore,
    guard: StartGuard,
    company: Company,
    body: PipelineCreate,
) -> PipelineAccepted:
    """Records a new pipeline for the company and month and starts its workflow; a repeated Idempotency-Key
    answers with the first request's pipeline (starting its workflow if that start never happened)."""
    principal = guard.principal
    check_month(body.month)
    # One running pipeline per company and month: the company row lock makes concurrent starts queue here.
    # The key is looked up again under the lock: a concurrent request with the same key has committed by now.
    await session.exec(select(Company).where(col(Company.id) == company.id).with_for_update())
    earlier = guard.replay_of or await guard.earlier(session)
    if earlier is None:
        running = (
            await session.exec(
                select(Pipeline).where(
                    col(Pipeline.company_id) == company.id,
                    col(Pipeline.month) == body.month,
                    col(Pipeline.status).not_in(FINISHED),
                )
            )
        ).first()
        if running is not None:
            raise Problem(
                409,
                f"pipeline {running.id} for {body.month} is still {running.status}; cancel it first",
                pipelineId=str(running.id),
            )
        pipeline = Pipeline(
            tenant_id=principal.tenant_id,
            company_id=company.id,
            month=body.month,
            tier=principal.tier,
            platforms=[p.value for p in body.platforms],
            options=body.options.model_dump(mode="json"),
            workflow_id="",
        )
        pipeline.workflow_id = pipeline_workflow_id(company.name, company.id, body.month, pipeline.id)
        session.add(pipeline)
        await session.flush()
        await guard.claim(session, pipeline.id)  # the company lock makes a lost race impossible here
        await guard.admit(session)
        await session.commit()
    else:
        found = await session.get(Pipeline, earlier)
        if found is None:
            raise Problem(409, "the pipeline of this Idempotency-Key no longer exists; use a new key")
        pipeline = found
        await session.commit()
        if pipeline.status in FINISHED:
            return PipelineAccepted(pipeline_id=pipeline.id, workflow_id=pipeline.workflow_id)
    await launch_pipeline(session, temporal, store, guard, pipeline, body)
    return PipelineAccepted(pipeline_id=pipeline.id, workflow_id=pipeline.workflow_id)


async def launch_pipeline(
    session: AsyncSession,
    temporal: Client,
    store: PipelineStore,
    guard: StartGuard,
    pipeline: Pipeline,
    body: PipelineCreate,
) -> None:
    async def refused() -> None:
        reason = "the workflow engine did not accept the pipeline; nothing ran"
        await store.end(session, pipeline.id, PipelineStatus.FAILED, reason)
        await session.commit()

    request = PipelineRequest(
        pipeline_id=pipeline.id,
        tenant_id=pipeline.tenant_id,
        company_id=pipeline.company_id,
        tier=Tier(pipeline.tier),
        month=body.month,
        platforms=body.platforms,
        options=body.options,
    )
    await guard.launch(
        session,
        temporal,
        ContentPipelineWorkflow.run,
        request,
        workflow_id=pipeline.workflow_id,
        company_id=pipeline.company_id,
        attribute=SearchAttributePair(PIPELINE_STAGE, PipelineStage.DNA.value),
        refused=refused,
        what="pipeline",
    )


async def pipeline_of_tenant(session: AsyncSession, tenant_id: uuid.UUID, pipeline_id: uuid.UUID) -> Pipeline:
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.tenant_id != tenant_id:
        raise not_found("the pipeline")
    return pipeline


async def reconcile(session: AsyncSession, store: PipelineStore, temporal: Client | None, pipeline: Pipeline) -> None:
    """A workflow that ended without recording it (terminated in the Web UI): the row follows Temporal."""
    if pipeline.status in FINISHED or temporal is None:
        return
    try:
        description = await asyncio.wait_for(temporal.get_workflow_handle(pipeline.workflow_id).describe(), timeout=3)
    except Exception:
        return
    ended = ended_without_record(description.status.name if description.status else "", "pipeline")
    if ended is None:
        return
    cancelled, reason = ended
    status = PipelineStatus.CANCELLED if cancelled else PipelineStatus.FAILED
    await store.end(session, pipeline.id, status, reason)
    await session.commit()
    await session.refresh(pipeline)


async def blog_posts_of(session: AsyncSession, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Blog posts carry their jobs on their revisions (one per writing job)."""
    if not job_ids:
        return []
    rows = await session.exec(
        select(BlogPostRevision.blog_post_id, sa.func.min(BlogPostRevision.created_at))
        .where(col(BlogPostRevision.job_id).in_(job_ids))
        .group_by(col(BlogPostRevision.blog_post_id))
        .order_by(sa.func.min(BlogPostRevision.created_at))
    )
    return [row[0] for row in rows.all()]


def open_gates(pipeline: Pipeline) -> list[GateView]:
    """Every gate waiting for a person, the earliest deadline first (blog posts and failed branches can wait
    at once); rows written before there could be several hold only `pending_gate`."""
    if pipeline.status in FINISHED or pipeline.pending_gate is None:
        return []
    listed = (pipeline.summary or {}).get("openGates")
    if not listed:
        return [GateView.model_validate(pipeline.pending_gate)]
    return [GateView.model_validate(view) for view in listed]


async def pipeline_public(session: AsyncSession, settings: Settings, pipeline: Pipeline) -> PipelinePublic:
    jobs = (
        await session.exec(
            select(AIJob).where(col(AIJob.pipeline_id) == pipeline.id).order_by(col(AIJob.created_at), col(AIJob.id))
        )
    ).all()
    job_ids = [job.id for job in jobs]

    async def ids_of(table: Any) -> list[uuid.UUID]:
        if not job_ids:
            return []
        rows = await session.exec(
            select(table.id).where(col(table.job_id).in_(job_ids)).order_by(col(table.created_at))
        )
        return list(rows.all())

    summary = pipeline.summary or {}
    gates = open_gates(pipeline)
    return PipelinePublic(
        id=pipeline.id,
        company_id=pipeline.company_id,
        month=pipeline.month,
        platforms=[Platform(p) for p in pipeline.platforms],
        tier=Tier(pipeline.tier),
        status=pipeline.status,
        stage=pipeline.stage,
        reason=pipeline.status_reason,
        pending_approval=gates[0] if gates else None,
        pending_approvals=gates,
        jobs=[PipelineJob.model_validate(job) for job in jobs],
        artifacts=PipelineArtifacts(
            dna=await ids_of(CompanyDNA),
            personas=await ids_of(Persona),
            topics=await ids_of(Topic),
            blog_posts=await blog_posts_of(session, job_ids),
            social_posts=await ids_of(SocialPost),
            media=await ids_of(MediaAsset),
        ),
        counts=summary.get("counts", {}),
        branches=[BranchView.model_validate(b) for b in summary.get("branches", [])],
        options=PipelineOptions.model_validate(pipeline.options),
        created_at=pipeline.created_at,
        completed_at=pipeline.completed_at,
        workflow_id=pipeline.workflow_id,
        temporal_ui_url=settings.temporal_ui_link(pipeline.workflow_id),
    )


async def read_pipeline(
    session: AsyncSession, store: PipelineStore, settings: Settings, temporal: Client | None, pipeline: Pipeline
) -> PipelinePublic:
    """The pipeline as it is now; a workflow that ended without recording it ends the row the same way first."""
    await reconcile(session, store, temporal, pipeline)
    return await pipeline_public(session, settings, pipeline)


async def request_pipeline_cancel(
    session: AsyncSession, store: PipelineStore, temporal: Client, pipeline: Pipeline
) -> PipelineAccepted:
    """Asks the pipeline's workflow to cancel: running stages stop, everything produced is kept. A workflow that
    is gone ends the row as Temporal ended it, and the caller learns that it was no longer running."""
    if pipeline.status in FINISHED:
        raise Problem(409, f"the pipeline has already ended ({pipeline.status})")
    try:
        await temporal.get_workflow_handle(pipeline.workflow_id).cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Problem(
                503, "the workflow engine is not reachable; nothing was cancelled", headers={"Retry-After": "5"}
            ) from None
        await reconcile(session, store, temporal, pipeline)
        raise Problem(409, "the pipeline is no longer running") from None
    return PipelineAccepted(pipeline_id=pipeline.id, workflow_id=pipeline.workflow_id)
