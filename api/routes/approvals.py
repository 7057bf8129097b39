"""A supervisor's decisions at a pipeline's three gates (and on failed topic branches), and the inbox of open gates.

`router` has neither prefix nor tag of its own: routes/pipelines.py includes it, under its `/ai` and its tag,
between reading a pipeline and cancelling it, which is where the API document lists these routes."""

import uuid

from api.deps import SessionDep, SettingsDep, SupervisorDep, TemporalDep
from api.errors import PROBLEMS
from api.routing import SlashRouter
from api.services.decisions import (
    DECISION_PROBLEMS,
    DecidedPipelineDep,
    approvals_of_tenant,
    blog_post_branch,
    branch_of,
    decide,
)
from models.enums import Gate
from models.pipeline import (
    ApprovalInboxItem,
    BlogPostDecision,
    BlogPostVerdictIn,
    DecisionAccepted,
    FailureDecision,
    FailureVerdictIn,
    SelectPersonas,
    TopicDecision,
)
from workflows.branch import TopicBranchWorkflow
from workflows.pipeline import ContentPipelineWorkflow

router = SlashRouter()
inbox_router = SlashRouter(tags=["pipelines"])


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
    pipeline: DecidedPipelineDep,
    blog_post_id: uuid.UUID,
    body: BlogPostVerdictIn,
    session: SessionDep,
    temporal: TemporalDep,
) -> DecisionAccepted:
    decision = BlogPostDecision(blog_post_id=blog_post_id, decision=body.decision, feedback=body.feedback)
    branch = await blog_post_branch(session, pipeline, blog_post_id)
    return await decide(temporal, pipeline, TopicBranchWorkflow.decide_blogpost, decision, branch)


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
    branch = branch_of(pipeline, topic_id, Gate.FAILURE, topic_id)
    return await decide(temporal, pipeline, TopicBranchWorkflow.decide_failure, decision, branch)


@inbox_router.get(
    "/approvals/",
    response_model=list[ApprovalInboxItem],
    responses=PROBLEMS,
    summary="The supervisor's inbox of open gates",
)
async def approvals_inbox(
    principal: SupervisorDep, session: SessionDep, settings: SettingsDep
) -> list[ApprovalInboxItem]:
    return await approvals_of_tenant(session, settings, principal.tenant_id)
