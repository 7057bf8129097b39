"""Pipelines: a marketer starts one per company and month, reads it, cancels it; a supervisor decides at its
gates (routes/approvals.py)."""

import uuid

from api.deps import (
    MarketerDep,
    PipelineStoreDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import PROBLEMS, problems
from api.routes import approvals
from api.routes.companies import OwnCompanyDep
from api.routing import SlashRouter
from api.services.pipelines import accept_pipeline, pipeline_of_tenant, read_pipeline, request_pipeline_cancel
from api.services.starts import START_PROBLEMS, StartGuardDep
from models.pipeline import PipelineAccepted, PipelineCreate, PipelinePublic

router = SlashRouter(prefix="/ai", tags=["pipelines"])


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
    store: PipelineStoreDep,
) -> PipelineAccepted:
    return await accept_pipeline(session, temporal, store, guard, company, body)


@router.get(
    "/pipelines/{pipeline_id}/",
    response_model=PipelinePublic,
    responses=PROBLEMS,
    summary="A pipeline: stage, pending gate, jobs, artifacts",
)
async def get_pipeline(
    pipeline_id: uuid.UUID, principal: MarketerDep, session: SessionDep, settings: SettingsDep
) -> PipelinePublic:
    return await read_pipeline(session, settings, principal.tenant_id, pipeline_id)


# The gates' decisions, here so that the API document keeps listing them between reading and cancelling.
router.include_router(approvals.router)


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
    pipeline_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    temporal: TemporalDep,
    store: PipelineStoreDep,
) -> PipelineAccepted:
    pipeline = await pipeline_of_tenant(session, principal.tenant_id, pipeline_id)
    return await request_pipeline_cancel(session, store, temporal, pipeline)
