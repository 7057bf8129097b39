"""JobStore: the only code that moves an AIJob's status, used by the stage activities and the API alike.

A terminal row (COMPLETED, FAILED, CANCELLED) never changes again: every status change is one conditional update
through `_move`, which holds that rule. Nothing here knows about providers: what an attempt cost is added by the
caller (`amend`, `complete`), which knows how.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from models.contracts import StageResult
from models.db import Database, RowInsert
from models.enums import JobStatus, JobType
from models.job_params import AnyJobParams, stored_params
from models.names import ErrorType
from models.pipeline import JobSpec
from models.tables import AIJob, Company, JobStep

# What the API records when the engine would not start a job's workflow.
NOT_STARTED_MESSAGE = "the workflow engine did not accept the job; nothing ran"


def now() -> datetime:
    return datetime.now(UTC)


def still_open() -> Any:
    """The one place that says which AIJob rows may change: a job that has not ended."""
    return col(AIJob.status).in_([s.value for s in JobStatus if not s.is_terminal])


async def _move(session: AsyncSession, *where: Any, **values: Any) -> int:
    """Changes the rows that match and have not ended, in the caller's transaction; answers how many changed."""
    statement = sa.update(AIJob).where(*where, still_open()).values(**values)
    result = await session.exec(statement)  # type: ignore[call-overload]
    return int(result.rowcount)


def clamp_percent(percent: int) -> int:
    return max(0, min(100, percent))


def ended_values(status: JobStatus, message: str, progress_message: str | None = None) -> dict[str, Any]:
    """FAILED with its reason, or CANCELLED with what cancelled it."""
    values: dict[str, Any] = {"status": status.value, "completed_at": now()}
    if status == JobStatus.FAILED:
        values["error_message"] = message
        values["progress_message"] = progress_message or "failed"
    else:
        values["progress_message"] = progress_message or message or "cancelled"
    return values


@dataclass(frozen=True)
class Claim:
    """What `JobStore.claim` found: the job, its company (None when it no longer exists for the job's tenant),
    whether the claim marked it PROCESSING (a job left as it was is the caller's to judge: a wrong type, an end), and
    the steps that earlier attempts saved (JobStep.data by step), read in the same statement."""

    job: AIJob
    company: Company | None
    started: bool
    saved_steps: dict[str, dict[str, Any]]


def saved_steps_of_the_job() -> Any:
    """The job's saved steps as one JSON object by step, beside the job row in the statement that reads it."""
    steps = sa.func.jsonb_object_agg(col(JobStep.step), col(JobStep.data))
    return (
        sa.select(sa.func.coalesce(steps, sa.text("'{}'::jsonb")))
        .where(col(JobStep.job_id) == col(AIJob.id))
        .scalar_subquery()
    )


# A job started alone through the API (JobStore.new_row): every column the table needs, as AIJob's defaults are.
INSERT_STARTED_JOB = """
    INSERT INTO ai_job (
        id, tenant_id, company_id, job_type, status, persona_id, topic_id, blog_post_id, social_post_id, params,
        progress, progress_message, error_message, provider_failures, workflow_id, created_at,
        input_tokens, output_tokens, cost_usd, usage_records
    )
    VALUES (
        %(job_id)s, %(tenant_id)s, %(company_id)s, %(job_type)s, %(status)s, %(persona_id)s, %(topic_id)s,
        %(blog_post_id)s, %(social_post_id)s, %(params)s,
        0, 'queued', '', 0, %(workflow_id)s, now(),
        0, 0, 0, '[]'::jsonb
    )"""


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- rows ---------------------------------------------------------------------------------------------

    async def load(self, job_id: uuid.UUID) -> AIJob:
        async with self.db.session() as session:
            job = await session.get(AIJob, job_id)
        if job is None:
            raise ApplicationError(f"AIJob {job_id} does not exist", type=ErrorType.JOB_NOT_FOUND, non_retryable=True)
        return job

    async def create(self, spec: JobSpec) -> bool:
        """The AIJob row of a pipeline's stage, PENDING; its id comes from the workflow, so a retried or a
        concurrent duplicate inserts nothing new. True when this call made the row."""
        values: dict[str, Any] = {
            "id": spec.job_id,
            "tenant_id": spec.tenant_id,
            "company_id": spec.company_id,
            "pipeline_id": spec.pipeline_id,
            "job_type": spec.job_type.value,
            "status": JobStatus.PENDING.value,
            "persona_id": spec.persona_id,
            "topic_id": spec.topic_id,
            "blog_post_id": spec.blog_post_id,
            "social_post_id": spec.social_post_id,
            "params": stored_params(spec.params),
            "progress": 0,
            "progress_message": "queued",
            "error_message": "",
            "workflow_id": spec.workflow_id,
            "created_at": now(),
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0,
            "usage_records": [],
        }
        statement = (
            insert(AIJob).values(**values).on_conflict_do_nothing(index_elements=["id"]).returning(col(AIJob.id))
        )
        async with self.db.session() as session:
            made = (await session.exec(statement)).first()  # type: ignore[call-overload]
            await session.commit()
        return made is not None

    @staticmethod
    def new_row(
        job_id: uuid.UUID,
        *,
        tenant_id: uuid.UUID,
        company_id: uuid.UUID,
        job_type: JobType,
        params: AnyJobParams,
        workflow_id: str,
        persona_id: uuid.UUID | None = None,
        topic_id: uuid.UUID | None = None,
        blog_post_id: uuid.UUID | None = None,
        social_post_id: uuid.UUID | None = None,
    ) -> RowInsert:
        """The row of a job started alone through the API, PENDING, for the caller's start statement (with its
        Idempotency-Key and rate limit: api/services/starts.py)."""
        return RowInsert(
            INSERT_STARTED_JOB,
            {
                "job_id": job_id,
                "tenant_id": tenant_id,
                "company_id": company_id,
                "job_type": job_type.value,
                "status": JobStatus.PENDING.value,
                "persona_id": persona_id,
                "topic_id": topic_id,
                "blog_post_id": blog_post_id,
                "social_post_id": social_post_id,
                "params": Jsonb(stored_params(params)),
                "workflow_id": workflow_id,
            },
        )

    # ---- the status -----------------------------------------------------------------------------------------

    async def _update(
        self, job_id: uuid.UUID, *, then: Callable[[AsyncSession], Awaitable[object]] | None = None, **values: Any
    ) -> bool:
        """Changes a job that has not ended; `then` runs in the same transaction when it did change."""
        async with self.db.session() as session:
            changed = await _move(session, col(AIJob.id) == job_id, **values)
            if changed and then is not None:
                await then(session)
            await session.commit()
        return bool(changed)

    async def start(self, job_id: uuid.UUID, message: str) -> None:
        await self._update(
            job_id,
            status=JobStatus.PROCESSING.value,
            progress_message=message,
            started_at=sa.func.coalesce(AIJob.started_at, now()),
        )

    async def claim(self, job_id: uuid.UUID, job_type: JobType, message: Callable[[int], str]) -> Claim:
        """An attempt takes its job: an open job of `job_type` whose company still exists becomes PROCESSING with
        `message(provider_failures)`, and comes back with its company and its saved steps, in one statement when the
        job has no provider failure yet (every first attempt). Anything else (a wrong type, an ended job, a company
        gone, an earlier provider failure) takes a second look at the row under lock; only the last case starts.
        """
        started_values = {
            "status": JobStatus.PROCESSING.value,
            "started_at": sa.func.coalesce(AIJob.started_at, now()),
        }
        same_company = (col(Company.id) == col(AIJob.company_id), col(Company.tenant_id) == col(AIJob.tenant_id))
        fresh = (
            sa.update(AIJob)
            .where(
                col(AIJob.id) == job_id,
                col(AIJob.job_type) == job_type.value,
                col(AIJob.provider_failures) == 0,
                still_open(),
                *same_company,
            )
            .values(progress_message=message(0), **started_values)
            .returning(AIJob, Company, saved_steps_of_the_job())
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            claimed = (await session.exec(fresh)).first()  # type: ignore[call-overload]
            if claimed is not None:
                await session.commit()
                job, company, saved = claimed
                return Claim(job=job, company=company, started=True, saved_steps=saved)
            look = (
                sa.select(AIJob, Company, saved_steps_of_the_job())
                .outerjoin(Company, sa.and_(*same_company))
                .where(col(AIJob.id) == job_id)
                .with_for_update(of=AIJob)
            )
            found = (await session.exec(look)).first()  # type: ignore[call-overload]
            if found is None:
                raise ApplicationError(
                    f"AIJob {job_id} does not exist", type=ErrorType.JOB_NOT_FOUND, non_retryable=True
                )
            job, company, saved = found
            if job.job_type != job_type or JobStatus(job.status).is_terminal or company is None:
                return Claim(job=job, company=company, started=False, saved_steps=saved)
            job.progress_message = message(job.provider_failures)
            job.status = JobStatus.PROCESSING
            job.started_at = job.started_at or now()
            session.add(job)
            await session.commit()
        return Claim(job=job, company=company, started=True, saved_steps=saved)

    async def progress(self, job_id: uuid.UUID, percent: int, message: str) -> None:
        await self._update(job_id, progress=clamp_percent(percent), progress_message=message)

    async def finish(
        self, job_id: uuid.UUID, status: JobStatus, message: str, *, progress_message: str | None = None
    ) -> bool:
        """FAILED or CANCELLED with the reason, and the job's saved steps dropped (a retry from the inbox is a new
        job); a no-op when the job already ended."""

        async def drop_steps(session: AsyncSession) -> None:
            await session.exec(sa.delete(JobStep).where(col(JobStep.job_id) == job_id))  # type: ignore[call-overload]

        return await self._update(job_id, then=drop_steps, **ended_values(status, message, progress_message))

    async def refuse_start(self, job_id: uuid.UUID) -> bool:
        """The engine did not accept the job's workflow: a job that never ran (still PENDING) ends FAILED."""
        async with self.db.session() as session:
            changed = await _move(
                session,
                col(AIJob.id) == job_id,
                col(AIJob.status) == JobStatus.PENDING.value,
                status=JobStatus.FAILED.value,
                error_message=NOT_STARTED_MESSAGE,
                completed_at=now(),
            )
            await session.commit()
        return bool(changed)

    @staticmethod
    async def cancel_pipeline_jobs(session: AsyncSession, pipeline_id: uuid.UUID) -> int:
        """A cancelled pipeline leaves no job running, in the caller's transaction; answers how many ended."""
        return await _move(
            session,
            col(AIJob.pipeline_id) == pipeline_id,
            **ended_values(JobStatus.CANCELLED, "the pipeline was cancelled"),
        )

    async def complete(
        self,
        session: AsyncSession,
        job_id: uuid.UUID,
        result: StageResult,
        charge: Callable[[AIJob], None],
        *,
        last_report: tuple[int, str] | None = None,
    ) -> None:
        """COMPLETED with its result, in the caller's transaction (the one that stored the artifacts); `charge`
        adds what the job cost to the locked row. A job that ended meanwhile keeps its end and nothing is stored.

        `last_report` is the stage's progress that was not written yet: it goes in with the cost, so that the job's
        events still show it, just before the end, at no extra round trip."""
        row = await session.get(AIJob, job_id, with_for_update=True)
        if row is not None and not JobStatus(row.status).is_terminal:
            charge(row)
            if last_report is not None:
                percent, message = last_report
                row.progress, row.progress_message = clamp_percent(percent), message
            session.add(row)
        changed = await _move(
            session,
            col(AIJob.id) == job_id,
            status=JobStatus.COMPLETED.value,
            progress=100,
            progress_message="completed",
            result_data=result.to_result_data(),
            completed_at=now(),
        )
        if not changed:
            raise ApplicationError(
                f"AIJob {job_id} ended ({row.status if row else 'deleted'}) while the stage ran; nothing stored",
                type=ErrorType.JOB_ALREADY_ENDED,
                non_retryable=True,
            )

    # ---- other fields ---------------------------------------------------------------------------------------

    async def amend(self, job_id: uuid.UUID, change: Callable[[AIJob], None]) -> None:
        """Changes fields other than the status on the locked row, whether or not the job ended (what a failed
        attempt cost is recorded after its end too)."""
        async with self.db.session() as session:
            row = await session.get(AIJob, job_id, with_for_update=True)
            if row is not None:
                change(row)
                session.add(row)
                await session.commit()

    async def count_provider_failure(self, job_id: uuid.UUID) -> int:
        """One more attempt ended in a provider error; answers how many have. Only these count against the
        seed's budget: an attempt lost with its worker (a crash, a deploy) never does."""
        statement = (
            sa.update(AIJob)
            .where(col(AIJob.id) == job_id)
            .values(provider_failures=AIJob.provider_failures + 1)
            .returning(col(AIJob.provider_failures))
        )
        async with self.db.session() as session:
            failures = (await session.exec(statement)).scalar_one()  # type: ignore[call-overload]
            await session.commit()
        return int(failures)
