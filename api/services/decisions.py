"""A supervisor's decisions at a pipeline's gates: the pipeline decided on, the topic branch a decision goes to,
sending it as a workflow Update (its validator's refusal mapped to 409 or 422), and the inbox of open gates."""

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import Depends
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import KeyDep, SessionDep, check_role, owned_by_path
from api.errors import PROBLEMS, Problem, problems
from api.services.pipelines import FINISHED, open_gates, pipeline_of_tenant
from models.enums import Gate, Role
from models.names import Refusal, branch_workflow_id
from models.pipeline import ApprovalInboxItem, DecisionAccepted
from models.settings import Settings
from models.tables import BlogPost, Company, Pipeline

DECISION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    **problems(
        _409="the decision does not fit the pipeline's state (wrong gate, already decided, revision limit, ended)",
        _503="the workflow engine is not reachable; nothing was decided",
    ),
}
# Refusals by the workflow's validators: a state conflict is 409, a decision that is wrong in itself is 422.
CONFLICTS = {refusal.value for refusal in Refusal if refusal.is_conflict}
UPDATE_WAIT_SECONDS = 20


@owned_by_path("pipeline_id", role=Role.SUPERVISOR)
async def decided_pipeline(pipeline_id: uuid.UUID, principal: KeyDep, session: SessionDep) -> Pipeline:
    """The pipeline a supervisor decides on, as a dependency: another tenant's is a 404 (whatever the key's role,
    and before the body is validated); then a key below supervisor is a 403."""
    pipeline = await pipeline_of_tenant(session, principal.tenant_id, pipeline_id)
    check_role(principal, Role.SUPERVISOR)
    return pipeline


DecidedPipelineDep = Annotated[Pipeline, Depends(decided_pipeline)]


def branch_of(pipeline: Pipeline, topic_id: uuid.UUID | None, gate: Gate, item_id: uuid.UUID) -> str:
    """The workflow id of the topic branch a blog post or failure decision goes to. An item of no branch of this
    pipeline is refused as the branch itself would refuse it: no such gate open (409), or not waiting (422)."""
    branches = {str(b.get("topicId")) for b in (pipeline.summary or {}).get("branches", [])}
    if topic_id is not None and str(topic_id) in branches:
        return branch_workflow_id(pipeline.workflow_id, topic_id)
    gates = open_gates(pipeline)
    if not any(view.gate == gate for view in gates):
        current = ", ".join(f"the {view.gate.value} gate is open" for view in gates) or "no gate is open"
        raise Problem(409, f"no {gate.value} approval is pending ({current})", reason=Refusal.GATE_NOT_PENDING.value)
    raise Problem(
        422,
        f"{item_id} is not awaiting a {gate.value} decision in this pipeline",
        reason=Refusal.INVALID_DECISION.value,
    )


async def blog_post_branch(session: AsyncSession, pipeline: Pipeline, blog_post_id: uuid.UUID) -> str:
    """The branch of the blog post's topic; a post that is missing or another tenant's belongs to no branch."""
    post = await session.get(BlogPost, blog_post_id)
    topic_id = post.topic_id if post is not None and post.tenant_id == pipeline.tenant_id else None
    return branch_of(pipeline, topic_id, Gate.BLOGPOST, blog_post_id)


async def decide(
    temporal: Client, pipeline: Pipeline, update: Any, decision: Any, workflow_id: str | None = None
) -> DecisionAccepted:
    """Sends a gate decision as a workflow Update to the pipeline, or to one of its topic branches; a refusal by
    its validator changed nothing."""
    if pipeline.status in FINISHED:
        raise Problem(409, f"the pipeline has ended ({pipeline.status}); no decision is pending")
    handle = temporal.get_workflow_handle(workflow_id or pipeline.workflow_id)
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
            what = "this topic's branch has ended" if workflow_id else "the pipeline is no longer running"
            raise Problem(409, f"{what}; no decision is pending", reason=Refusal.ALREADY_DECIDED.value) from None
        raise Problem(
            503, "the workflow engine is not reachable; nothing was decided", headers={"Retry-After": "5"}
        ) from None
    except TimeoutError:
        raise Problem(
            504, "the pipeline did not answer in time (is a worker running?); read the pipeline before deciding again"
        ) from None
    return result


async def approvals_of_tenant(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID
) -> list[ApprovalInboxItem]:
    """Every open gate of the tenant's running pipelines, the earliest deadline first."""
    rows = (
        await session.exec(
            select(Pipeline, Company)
            .join(Company, col(Company.id) == col(Pipeline.company_id))
            .where(
                col(Pipeline.tenant_id) == tenant_id,
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
