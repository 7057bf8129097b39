"""Pipelines: a marketer starts one per company and month; a supervisor decides at its three gates."""

import asyncio
import logging
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends
from sqlmodel import col, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import (
    KeyDep,
    MarketerDep,
    OptionalTemporalDep,
    SessionDep,
    SettingsDep,
    SupervisorDep,
    TemporalDep,
    check_role,
    owned_by_path,
)
from api.errors import PROBLEMS, Problem, not_found, problems
from api.routes.companies import OwnCompanyDep
from api.routes.jobs import ended_without_record
from api.routing import SlashRouter
from api.starts import START_PROBLEMS, StartGuard, StartGuardDep, check_month
from models.enums import TERMINAL_PIPELINE_STATUSES, PipelineStage, PipelineStatus, Platform, Role, Tier
from models.pipeline import (
    ApprovalInboxItem,
    BlogPostDecision,
    BlogPostVerdictIn,
    BranchView,
    DecisionAccepted,
    FailureDecision,
    FailureVerdictIn,
    GateView,
    PipelineAccepted,
    PipelineArtifacts,
    PipelineCreate,
    PipelineJob,
    PipelineOptions,
    PipelinePublic,
    PipelineRequest,
    SelectPersonas,
    TopicDecision,
)
from models.settings import Settings
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
    utcnow,
)
from workflows.pipeline import PIPELINE_STAGE, ContentPipelineWorkflow

logger = logging.getLogger(__name__)

router = SlashRouter(prefix="/ai", tags=["pipelines"])
inbox_router = SlashRouter(tags=["pipelines"])

FINISHED = TERMINAL_PIPELINE_STATUSES
DECISION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    **problems(
        _409="the decision does not fit the pipeline's state (wrong gate, already decided, revision limit, ended)",
        _503="the workflow engine is not reachable; nothing was decided",
    ),
}
# Refusals by the workflow's validators: a state conflict is 409, a decision that is wrong in itself is 422.
CONFLICTS = {"GateNotPending", "AlreadyDecided", "RevisionLimit"}
UPDATE_WAIT_SECONDS = 20


def pipeline_workflow_id(company_id: uuid.UUID, month: str, pipeline_id: uuid.UUID) -> str:
    return f"pipeline-{company_id}-{month}-{pipeline_id.hex[:8]}"


@router.post(
    "/companies/{company_id}/pipelines/",
    status_code=202,
    response_model=PipelineAccepted,
    responses={
        **PROBLEMS,
        **START_PROBLEMS,
        **problems(_409="a pipeline for this company and month is already running"),
    },
    summary="Start a month of content for a company",
)
async def start_pipeline(
    company: OwnCompanyDep,
    body: PipelineCreate,
    guard: StartGuardDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> PipelineAccepted:
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
        pipeline.workflow_id = pipeline_workflow_id(company.id, body.month, pipeline.id)
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
    await launch_pipeline(session, temporal, guard, pipeline, body)
    return PipelineAccepted(pipeline_id=pipeline.id, workflow_id=pipeline.workflow_id)


async def launch_pipeline(
    session: SessionDep, temporal: Client, guard: StartGuard, pipeline: Pipeline, body: PipelineCreate
) -> None:
    async def refused() -> None:
        pipeline.status = PipelineStatus.FAILED
        pipeline.status_reason = "the workflow engine did not accept the pipeline; nothing ran"
        pipeline.completed_at = utcnow()
        session.add(pipeline)
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


async def pipeline_of_tenant(session: SessionDep, tenant_id: uuid.UUID, pipeline_id: uuid.UUID) -> Pipeline:
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.tenant_id != tenant_id:
        raise not_found("the pipeline")
    return pipeline


@owned_by_path("pipeline_id", role=Role.SUPERVISOR)
async def decided_pipeline(pipeline_id: uuid.UUID, principal: KeyDep, session: SessionDep) -> Pipeline:
    """The pipeline a supervisor decides on, as a dependency: another tenant's is a 404 (whatever the key's role,
    and before the body is validated); then a key below supervisor is a 403."""
    pipeline = await pipeline_of_tenant(session, principal.tenant_id, pipeline_id)
    check_role(principal, Role.SUPERVISOR)
    return pipeline


DecidedPipelineDep = Annotated[Pipeline, Depends(decided_pipeline)]


async def reconcile(session: SessionDep, temporal: Client | None, pipeline: Pipeline) -> None:
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
    await session.exec(  # type: ignore[call-overload]
        sa.update(Pipeline)
        .where(col(Pipeline.id) == pipeline.id, col(Pipeline.status).not_in(FINISHED))
        .values(status=status.value, status_reason=reason, pending_gate=None, completed_at=utcnow())
    )
    await session.commit()
    await session.refresh(pipeline)


async def blog_posts_of(session: SessionDep, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
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


async def pipeline_public(session: SessionDep, settings: Settings, pipeline: Pipeline) -> PipelinePublic:
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


@router.get(
    "/pipelines/{pipeline_id}/",
    response_model=PipelinePublic,
    responses=PROBLEMS,
    summary="A pipeline: stage, pending gate, jobs, artifacts",
)
async def get_pipeline(
    pipeline_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: OptionalTemporalDep,
) -> PipelinePublic:
    pipeline = await pipeline_of_tenant(session, principal.tenant_id, pipeline_id)
    await reconcile(session, temporal, pipeline)
    return await pipeline_public(session, settings, pipeline)


async def decide(temporal: Client, pipeline: Pipeline, update: Any, decision: Any) -> DecisionAccepted:
    """Sends a gate decision as a workflow Update; a refusal by its validator changed nothing."""
    if pipeline.status in FINISHED:
        raise Problem(409, f"the pipeline has ended ({pipeline.status}); no decision is pending")
    handle = temporal.get_workflow_handle(pipeline.workflow_id)
    try:
        result: DecisionAccepted = await asyncio.wait_for(
            handle.execute_update(update, decision), timeout=UPDATE_WAIT_SECONDS
        )
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        kind = cause.type if isinstance(cause, ApplicationError) else None
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise Problem(409 if kind in CONFLICTS else 422, message, reason=kind or "Refused") from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, "the pipeline is no longer running; no decision is pending") from None
        raise Problem(
            503, "the workflow engine is not reachable; nothing was decided", headers={"Retry-After": "5"}
        ) from None
    except TimeoutError:
        raise Problem(
            504, "the pipeline did not answer in time (is a worker running?); read the pipeline before deciding again"
        ) from None
    return result


@router.post(
    "/pipelines/{pipeline_id}/approvals/personas/",
    response_model=DecisionAccepted,
    responses=DECISION_PROBLEMS,
    summary="Gate 1: select 3 to 6 of the 6 personas",
)
async def select_personas(
    pipeline: DecidedPipelineDep, body: SelectPersonas, temporal: TemporalDep
) -> DecisionAccepted:
    return await decide(temporal, pipeline, ContentPipelineWorkflow.select_personas, body)


@router.post(
    "/pipelines/{pipeline_id}/approvals/topics/",
    response_model=DecisionAccepted,
    responses=DECISION_PROBLEMS,
    summary="Gate 2: approve topics, reject others with feedback",
)
async def decide_topics(pipeline: DecidedPipelineDep, body: TopicDecision, temporal: TemporalDep) -> DecisionAccepted:
    return await decide(temporal, pipeline, ContentPipelineWorkflow.decide_topics, body)


@router.post(
    "/pipelines/{pipeline_id}/approvals/blogposts/{blog_post_id}/",
    response_model=DecisionAccepted,
    responses=DECISION_PROBLEMS,
    summary="Gate 3: approve a blog post or request changes with feedback",
)
async def decide_blogpost(
    pipeline: DecidedPipelineDep, blog_post_id: uuid.UUID, body: BlogPostVerdictIn, temporal: TemporalDep
) -> DecisionAccepted:
    decision = BlogPostDecision(blog_post_id=blog_post_id, decision=body.decision, feedback=body.feedback)
    return await decide(temporal, pipeline, ContentPipelineWorkflow.decide_blogpost, decision)


@router.post(
    "/pipelines/{pipeline_id}/approvals/failures/{topic_id}/",
    response_model=DecisionAccepted,
    responses=DECISION_PROBLEMS,
    summary="A failed branch: retry it from the stage that failed, or drop it",
)
async def decide_failure(
    pipeline: DecidedPipelineDep, topic_id: uuid.UUID, body: FailureVerdictIn, temporal: TemporalDep
) -> DecisionAccepted:
    decision = FailureDecision(topic_id=topic_id, decision=body.decision)
    return await decide(temporal, pipeline, ContentPipelineWorkflow.decide_failure, decision)


@router.post(
    "/pipelines/{pipeline_id}/cancel/",
    status_code=202,
    response_model=PipelineAccepted,
    responses={
        **PROBLEMS,
        **problems(_409="the pipeline has already ended", _503="the workflow engine is not reachable"),
    },
    summary="Cancel a pipeline: running stages stop, everything produced is kept",
)
async def cancel_pipeline(
    pipeline_id: uuid.UUID, principal: MarketerDep, session: SessionDep, temporal: TemporalDep
) -> PipelineAccepted:
    pipeline = await pipeline_of_tenant(session, principal.tenant_id, pipeline_id)
    if pipeline.status in FINISHED:
        raise Problem(409, f"the pipeline has already ended ({pipeline.status})")
    try:
        await temporal.get_workflow_handle(pipeline.workflow_id).cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Problem(
                503, "the workflow engine is not reachable; nothing was cancelled", headers={"Retry-After": "5"}
            ) from None
        await reconcile(session, temporal, pipeline)
        raise Problem(409, "the pipeline is no longer running") from None
    return PipelineAccepted(pipeline_id=pipeline.id, workflow_id=pipeline.workflow_id)


@inbox_router.get(
    "/approvals/",
    response_model=list[ApprovalInboxItem],
    responses=PROBLEMS,
    summary="The supervisor's inbox of open gates",
)
async def approvals_inbox(
    principal: SupervisorDep, session: SessionDep, settings: SettingsDep
) -> list[ApprovalInboxItem]:
    rows = (
        await session.exec(
            select(Pipeline, Company)
            .join(Company, col(Company.id) == col(Pipeline.company_id))
            .where(
                col(Pipeline.tenant_id) == principal.tenant_id,
                col(Pipeline.pending_gate).is_not(None),
                col(Pipeline.status).not_in(FINISHED),
            )
        )
    ).all()
    inbox = [
        ApprovalInboxItem(
            pipeline_id=pipeline.id,
            company_id=company.id,
            company_name=company.name,
            month=pipeline.month,
            gate=gate.gate,
            items=gate.items,
            deadline=gate.deadline,
            workflow_id=pipeline.workflow_id,
            temporal_ui_url=settings.temporal_ui_link(pipeline.workflow_id),
        )
        for pipeline, company in rows
        for gate in open_gates(pipeline)
    ]
    return sorted(inbox, key=lambda item: item.deadline)
