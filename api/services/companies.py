"""Managing a company: finding the tenant's, changing its fields, listing its pipelines, and deleting it with
everything it produced (rows in one transaction, then its media files).

A company is deleted only while nothing runs for it: a pipeline that is RUNNING or AWAITING_APPROVAL, or a job
that is PENDING or PROCESSING, has a workflow that would fail as soon as its next activity reads a row that is
gone. Such work is named in the refusal (409), to be cancelled first. Workflows that no such row stands for (a
post being published again) are found by their CompanyId search attribute in Temporal's visibility store.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import Field, field_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import Problem, not_found
from api.services.pipelines import gates_of
from models.api import CompanyBase, CompanyCreate, InputModel
from models.enums import JobStatus, PipelineStatus
from models.media_store import resolve_media_path
from models.names import COMPANY_ID
from models.pipeline import PipelineSummary
from models.tables import (
    AIJob,
    BlogPost,
    BlogPostRevision,
    Channel,
    ChannelAttempt,
    Company,
    CompanyDNA,
    IdempotencyKey,
    JobEvent,
    JobStep,
    MediaAsset,
    Persona,
    Pipeline,
    SocialPost,
    Topic,
)

logger = logging.getLogger(__name__)

OPEN_PIPELINE_STATUSES = (PipelineStatus.RUNNING.value, PipelineStatus.AWAITING_APPROVAL.value)
OPEN_JOB_STATUSES = (JobStatus.PENDING.value, JobStatus.PROCESSING.value)
# How many pieces of running work a refusal names one by one; the ids of all of them are in its fields.
NAMED_IN_REFUSAL = 5
VISIBILITY_TIMEOUT = timedelta(seconds=5)


async def company_of_tenant(session: AsyncSession, tenant_id: uuid.UUID, company_id: uuid.UUID) -> Company:
    """Another tenant's company is indistinguishable from a missing one."""
    company = await session.get(Company, company_id)
    if company is None or company.tenant_id != tenant_id:
        raise not_found("the company")
    return company


# ---- changing a company ----------------------------------------------------------------------------------------


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _kept(name: str, **constraints: Any) -> Any:
    """A field that a PATCH may leave out (then it is kept) but may not set to null: the document shows it as the
    plain string it is, without a default."""
    return Field(
        default=None, examples=CompanyBase.model_fields[name].examples, json_schema_extra=_no_default, **constraints
    )


def _clearable(name: str, **constraints: Any) -> Any:
    """A field that a PATCH may leave out (kept), set, or set to null (cleared)."""
    return Field(default=None, examples=CompanyBase.model_fields[name].examples, **constraints)


class CompanyUpdate(InputModel):
    """Any of the fields of CompanyCreate, checked the same way; a field left out keeps its value. `website`,
    `country` and `industry` may be null to clear them; `name`, `language` and `timezone` may not."""

    name: str = _kept("name", min_length=1, max_length=200)
    website: str | None = _clearable("website", max_length=2000)
    country: str | None = _clearable("country", max_length=100)
    language: str = _kept("language", min_length=2, max_length=20)
    industry: str | None = _clearable("industry", max_length=200)
    timezone: str = _kept("timezone", max_length=64)

    # CompanyCreate's own checks, so that a company cannot be changed into one it could not have been created as.
    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return CompanyCreate._name_not_blank(value)

    @field_validator("website")
    @classmethod
    def _website(cls, value: str | None) -> str | None:
        return CompanyCreate._website(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return CompanyCreate._timezone(value)

    def changes(self) -> dict[str, Any]:
        """The fields the request named, with their new values."""
        return self.model_dump(exclude_unset=True)


async def update_company(session: AsyncSession, company: Company, update: CompanyUpdate) -> Company:
    for name, value in update.changes().items():
        setattr(company, name, value)
    session.add(company)
    await session.commit()
    await session.refresh(company)
    return company


# ---- a company's pipelines -------------------------------------------------------------------------------------


def pipeline_summary(pipeline: Pipeline) -> PipelineSummary:
    return PipelineSummary.model_validate(
        {
            "id": pipeline.id,
            "month": pipeline.month,
            "status": pipeline.status,
            "stage": pipeline.stage,
            "platforms": pipeline.platforms,
            "tier": pipeline.tier,
            "created_at": pipeline.created_at,
            "completed_at": pipeline.completed_at,
            "pending_gates": len(gates_of(pipeline.status, pipeline.pending_gate, pipeline.summary)),
        }
    )


async def company_pipelines(
    session: AsyncSession, company_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[PipelineSummary], int]:
    """A page of the company's pipelines, newest first, and how many it has in all."""
    where = col(Pipeline.company_id) == company_id
    count = (await session.exec(select(sa.func.count()).select_from(Pipeline).where(where))).one()
    rows = (
        await session.exec(
            select(Pipeline)
            .where(where)
            .order_by(col(Pipeline.created_at).desc(), col(Pipeline.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return [pipeline_summary(row) for row in rows], int(count)


# ---- deleting a company ----------------------------------------------------------------------------------------


@dataclass
class CompanyDeletion:
    """What a deletion removed: rows per table, and the media files (paths relative to the media store)."""

    company_id: uuid.UUID
    rows: dict[str, int] = field(default_factory=dict)
    media_paths: list[str] = field(default_factory=list)


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED_IN_REFUSAL])
    more = len(items) - NAMED_IN_REFUSAL
    return f"{shown} and {more} more" if more > 0 else shown


async def refuse_while_running(session: AsyncSession, company_id: uuid.UUID) -> None:
    """409 naming the company's pipelines that still run and its open jobs (those outside such a pipeline: a
    pipeline's cancel ends its own jobs)."""
    pipelines = (
        await session.exec(
            select(Pipeline)
            .where(col(Pipeline.company_id) == company_id, col(Pipeline.status).in_(OPEN_PIPELINE_STATUSES))
            .order_by(col(Pipeline.created_at))
        )
    ).all()
    running = {pipeline.id for pipeline in pipelines}
    jobs = [
        job
        for job in (
            await session.exec(
                select(AIJob)
                .where(col(AIJob.company_id) == company_id, col(AIJob.status).in_(OPEN_JOB_STATUSES))
                .order_by(col(AIJob.created_at))
            )
        ).all()
        if job.pipeline_id not in running
    ]
    if not pipelines and not jobs:
        return
    parts = []
    if pipelines:
        named = [f"{p.id} ({p.month}, {p.status})" for p in pipelines]
        parts.append(f"pipeline{'s' if len(named) > 1 else ''} {_named(named)}")
    if jobs:
        named = [f"{j.id} ({j.job_type}, {j.status})" for j in jobs]
        parts.append(f"job{'s' if len(named) > 1 else ''} {_named(named)}")
    raise Problem(
        409,
        f"the company still has work running: {'; '.join(parts)}. Cancel it first (POST /api/v1/ai/pipelines/"
        "{id}/cancel/, POST /api/v1/ai/jobs/{id}/cancel/) and wait until it has ended: deleting the company under "
        "a running workflow would break it. Nothing was deleted.",
        pipelineIds=[str(p.id) for p in pipelines],
        jobIds=[str(j.id) for j in jobs],
    )


async def refuse_while_workflows_run(temporal: Client | None, company_id: uuid.UUID) -> None:
    """409 naming the company's workflows that Temporal reports running; 503 when it cannot be asked (a deletion
    that cannot tell whether something runs does not happen)."""
    unreachable = Problem(
        503,
        "the workflow engine is not reachable, so it cannot be told that nothing runs for the company; nothing was "
        "deleted; try again shortly",
        headers={"Retry-After": "5"},
    )
    if temporal is None:
        raise unreachable
    query = f"{COMPANY_ID.name} = '{company_id}' AND ExecutionStatus = 'Running'"
    try:
        running = [
            execution.id
            async for execution in temporal.list_workflows(
                query, limit=NAMED_IN_REFUSAL + 1, rpc_timeout=VISIBILITY_TIMEOUT
            )
        ]
    except Exception as exc:
        raise unreachable from exc
    if running:
        more = " and more" if len(running) > NAMED_IN_REFUSAL else ""
        raise Problem(
            409,
            f"workflows of the company are still running: {', '.join(running[:NAMED_IN_REFUSAL])}{more}. Cancel them "
            "(or let them end) first: "
            "deleting the company under a running workflow would break it. Nothing was deleted.",
            workflowIds=running[:NAMED_IN_REFUSAL],
        )


async def delete_company(session: AsyncSession, temporal: Client | None, company: Company) -> CompanyDeletion:
    """Deletes the company and every row it produced in one transaction, children before parents along the foreign
    keys; 409 (nothing deleted) while work runs for it. Its media files are left for remove_media_files, to be
    called after this returns: a rolled-back transaction must not have removed a file."""
    company_id, tenant_id = company.id, company.tenant_id
    # Checked before the lock first (plain reads lock nothing), so that no row stays locked while Temporal is asked.
    await refuse_while_running(session, company_id)
    await refuse_while_workflows_run(temporal, company_id)
    # Then the company row locked: a job or pipeline start for it (whose row's foreign key takes a share lock on it)
    # either committed before this, and is seen by the check again, or waits and then finds the company gone.
    locked = (await session.exec(select(Company).where(col(Company.id) == company_id).with_for_update())).first()
    if locked is None:
        raise not_found("the company")
    await refuse_while_running(session, company_id)

    jobs = select(AIJob.id).where(col(AIJob.company_id) == company_id)
    pipelines = select(Pipeline.id).where(col(Pipeline.company_id) == company_id)
    posts = select(BlogPost.id).where(col(BlogPost.company_id) == company_id)
    deletion = CompanyDeletion(company_id=company_id)
    media = await session.exec(  # type: ignore[call-overload]
        sa.delete(MediaAsset).where(col(MediaAsset.company_id) == company_id).returning(col(MediaAsset.path))
    )
    deletion.media_paths = [path for path in media.scalars().all() if path]
    deletion.rows["media assets"] = len(deletion.media_paths)
    steps: list[tuple[str, Any]] = [
        # Keys whose replay would answer with a job or pipeline that no longer exists: a retry starts afresh
        # (and is refused: the company is gone).
        (
            "idempotency keys",
            sa.delete(IdempotencyKey).where(
                col(IdempotencyKey.tenant_id) == tenant_id,
                sa.or_(col(IdempotencyKey.resource_id).in_(jobs), col(IdempotencyKey.resource_id).in_(pipelines)),
            ),
        ),
        ("job events", sa.delete(JobEvent).where(col(JobEvent.job_id).in_(jobs))),
        ("job steps", sa.delete(JobStep).where(col(JobStep.job_id).in_(jobs))),
        # Usage and cost are recorded on the job rows: they go with them.
        ("jobs", sa.delete(AIJob).where(col(AIJob.company_id) == company_id)),
        ("social posts", sa.delete(SocialPost).where(col(SocialPost.company_id) == company_id)),
        ("blog post revisions", sa.delete(BlogPostRevision).where(col(BlogPostRevision.blog_post_id).in_(posts))),
        ("blog posts", sa.delete(BlogPost).where(col(BlogPost.company_id) == company_id)),
        ("topics", sa.delete(Topic).where(col(Topic.company_id) == company_id)),
        ("personas", sa.delete(Persona).where(col(Persona.company_id) == company_id)),
        ("pipelines", sa.delete(Pipeline).where(col(Pipeline.company_id) == company_id)),
        ("DNA versions", sa.delete(CompanyDNA).where(col(CompanyDNA.company_id) == company_id)),
        # Its connected accounts' credentials go with it (the platforms' own sessions simply expire).
        ("channel attempts", sa.delete(ChannelAttempt).where(col(ChannelAttempt.company_id) == company_id)),
        ("channels", sa.delete(Channel).where(col(Channel.company_id) == company_id)),
        ("company", sa.delete(Company).where(col(Company.id) == company_id)),
    ]
    for name, statement in steps:
        result = await session.exec(statement)
        deletion.rows[name] = int(result.rowcount or 0)
    await session.commit()
    logger.info(
        "deleted company %s of tenant %s: %s",
        company_id,
        tenant_id,
        ", ".join(f"{count} {name}" for name, count in deletion.rows.items() if count),
    )
    return deletion


def remove_media_files(root: Path, paths: list[str]) -> list[str]:
    """Removes the files of deleted media assets from the media store; answers the paths that could not be
    removed (each logged). A file that is already gone is no failure; a path that would leave the store is never
    followed."""
    failed = []
    for relative in paths:
        try:
            resolve_media_path(root, relative).unlink()
        except FileNotFoundError:
            continue
        except (ValueError, OSError) as exc:
            logger.warning("the media file %r of a deleted company was not removed: %s", relative, exc)
            failed.append(relative)
    return failed
