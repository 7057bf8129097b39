"""Pipelines: starting one (one running per company and month), reading it with its jobs, artifacts and open
gates in one query, and cancelling it (bringing its row in line with a workflow that had already ended)."""

import asyncio
import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair
from temporalio.service import RPCError, RPCStatusCode

from api.deps import driver_rows
from api.errors import Problem, not_found
from api.services.starts import StartGuard, check_month
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
    Company,
    Pipeline,
)
from models.workflow_ends import ended_without_record
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
        await guard.admit(session, pipeline.id)  # the company lock makes a lost race impossible here
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


async def reconcile(session: AsyncSession, store: PipelineStore, temporal: Client, pipeline: Pipeline) -> None:
    """A workflow that ended without recording it (terminated in the Web UI): the row follows Temporal. Only a
    cancel that found no workflow to cancel asks here; reads leave it to the worker's reconciler."""
    if pipeline.status in FINISHED:
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


def open_gates(pipeline: Pipeline) -> list[GateView]:
    """Every gate waiting for a person, the earliest deadline first (blog posts and failed branches can wait
    at once); rows written before there could be several hold only `pending_gate`."""
    return gates_of(pipeline.status, pipeline.pending_gate, pipeline.summary)


def gates_of(status: str, pending_gate: dict[str, Any] | None, summary: dict[str, Any] | None) -> list[GateView]:
    if status in FINISHED or pending_gate is None:
        return []
    listed = (summary or {}).get("openGates")
    if not listed:
        return [GateView.model_validate(pending_gate)]
    return [GateView.model_validate(view) for view in listed]


# The whole read in one statement: the row, its jobs, and the ids of what each kind of job made, every part
# through an index (ai_job.pipeline_id, and job_id on each artifact table). A status page polls this, so it
# costs one round trip and builds no ORM objects. The orders are the ones the API has always answered with.
PIPELINE_READ = """
    WITH jobs AS (SELECT id FROM ai_job WHERE pipeline_id = %(pipeline_id)s)
    SELECT
        p.id, p.company_id, p.month, p.platforms, p.tier, p.status, p.stage, p.status_reason, p.pending_gate,
        p.summary, p.options, p.created_at, p.completed_at, p.workflow_id,
        (
            SELECT coalesce(
                json_agg(
                    json_build_object(
                        'id', j.id, 'job_type', j.job_type, 'status', j.status, 'progress', j.progress,
                        'progress_message', j.progress_message, 'error_message', j.error_message,
                        'persona_id', j.persona_id, 'topic_id', j.topic_id, 'blog_post_id', j.blog_post_id,
                        'social_post_id', j.social_post_id
                    )
                    ORDER BY j.created_at, j.id
                ),
                '[]'::json
            )
            FROM ai_job j WHERE j.pipeline_id = p.id
        ) AS jobs,
        ARRAY(SELECT a.id FROM company_dna a WHERE a.job_id IN (SELECT id FROM jobs) ORDER BY a.created_at) AS dna,
        ARRAY(SELECT a.id FROM persona a WHERE a.job_id IN (SELECT id FROM jobs) ORDER BY a.created_at) AS personas,
        ARRAY(SELECT a.id FROM topic a WHERE a.job_id IN (SELECT id FROM jobs) ORDER BY a.created_at) AS topics,
        ARRAY(
            SELECT r.blog_post_id FROM blog_post_revision r WHERE r.job_id IN (SELECT id FROM jobs)
            GROUP BY r.blog_post_id ORDER BY min(r.created_at)
        ) AS blog_posts,
        ARRAY(
            SELECT a.id FROM social_post a WHERE a.job_id IN (SELECT id FROM jobs) ORDER BY a.created_at
        ) AS social_posts,
        ARRAY(SELECT a.id FROM media_asset a WHERE a.job_id IN (SELECT id FROM jobs) ORDER BY a.created_at) AS media
    FROM pipeline p
    WHERE p.id = %(pipeline_id)s AND p.tenant_id = %(tenant_id)s
"""


async def read_pipeline(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID, pipeline_id: uuid.UUID
) -> PipelinePublic:
    """The pipeline as its row says, in one query; 404 for another tenant's. Temporal is not asked: a workflow
    that ended without recording it is brought in line by the worker's reconciler (activities/reconciler.py)."""
    rows = await driver_rows(
        session, PIPELINE_READ, {"pipeline_id": pipeline_id, "tenant_id": tenant_id}, as_dicts=True
    )
    if not rows:
        raise not_found("the pipeline")
    row = rows[0]
    summary = row["summary"] or {}
    gates = gates_of(row["status"], row["pending_gate"], summary)
    return PipelinePublic(
        id=row["id"],
        company_id=row["company_id"],
        month=row["month"],
        platforms=[Platform(p) for p in row["platforms"]],
        tier=Tier(row["tier"]),
        status=row["status"],
        stage=row["stage"],
        reason=row["status_reason"],
        pending_approval=gates[0] if gates else None,
        pending_approvals=gates,
        jobs=[PipelineJob.model_validate(job) for job in row["jobs"]],
        artifacts=PipelineArtifacts(
            dna=row["dna"],
            personas=row["personas"],
            topics=row["topics"],
            blog_posts=row["blog_posts"],
            social_posts=row["social_posts"],
            media=row["media"],
        ),
        counts=summary.get("counts", {}),
        branches=[BranchView.model_validate(b) for b in summary.get("branches", [])],
        options=PipelineOptions.model_validate(row["options"]),
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        workflow_id=row["workflow_id"],
        temporal_ui_url=settings.temporal_ui_link(row["workflow_id"]),
    )


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
