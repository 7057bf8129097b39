"""Finished steps of a job that makes several paid provider calls, kept in PostgreSQL so that a retry resumes."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from models.db import Database
from models.stores.jobs import still_open
from models.tables import AIJob, JobStep
from providers.usage import track_usage

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class JobSteps:
    """The saved steps of one job: read once per attempt, each new one written as soon as its call succeeded.

    A step's data is {"result": the provider result as JSON, "providers": who served it, "usage": what it
    cost, "attempt": the attempt that paid for it}. The usage is a record, not a charge: the attempt that
    made the call adds it to the job (execute_stage); a resumed attempt makes no call for it, so it counts once.
    """

    def __init__(self, db: Database, job: AIJob, saved: dict[str, dict[str, Any]] | None = None) -> None:
        """`saved`: the job's steps when they were read with the job (StageRun.saved_steps), sparing `load` a query."""
        self.db = db
        self.job = job
        self.preloaded = saved is not None
        self.saved: dict[str, dict[str, Any]] = dict(saved or {})

    async def load(self) -> dict[str, dict[str, Any]]:
        if not self.preloaded:
            async with self.db.session() as session:
                found = (await session.exec(select(JobStep).where(col(JobStep.job_id) == self.job.id))).all()
            self.saved = {row.step: row.data for row in found}
        if self.saved:
            activity.logger.info("job %s: resuming with %s steps of an earlier attempt", self.job.id, len(self.saved))
        return self.saved

    def has(self, step: str) -> bool:
        return step in self.saved

    def count(self, steps: Sequence[str]) -> int:
        return sum(step in self.saved for step in steps)

    def result(self, step: str, schema: type[M]) -> M | None:
        """The saved result of `step`, or None when there is none (or it no longer fits the schema)."""
        saved = self.saved.get(step)
        if saved is None:
            return None
        try:
            value = schema.model_validate(saved["result"])
        except (KeyError, TypeError, ValidationError):
            activity.logger.warning(
                "job %s: saved step %s no longer fits %s; paying for it again",
                self.job.id,
                step,
                schema.__name__,
            )
            return None
        return value

    async def once(self, step: str, schema: type[M], call: Callable[[], Awaitable[M]]) -> M:
        """The saved result of `step`, or the call's, saved at once (the first attempt to save a step wins)."""
        saved = self.result(step, schema)
        if saved is not None:
            return saved
        with track_usage() as usage:
            value = await call()
        data = {
            "result": value.model_dump(mode="json"),
            "providers": usage.providers,
            "usage": [record.model_dump(mode="json") for record in usage.records],
            "attempt": activity.info().attempt if activity.in_activity() else 0,
        }
        # Shielded: a cancellation that arrives while a paid result is being written must not lose it.
        stored = await asyncio.shield(self.save(step, data))
        self.saved[step] = stored
        return value if stored is data else schema.model_validate(stored["result"])

    async def save(self, step: str, data: dict[str, Any]) -> dict[str, Any]:
        """Writes one step, idempotently; returns the step as stored (another attempt's, if it saved it first).

        Nothing is written once the job has ended: the FOR KEY SHARE lock waits for the transaction that
        completes the job (which locks the row, see `clear`) and then sees the ended status.
        """
        job = self.job
        data_type = JobStep.__table__.c.data.type  # type: ignore[attr-defined]
        live = (
            sa.select(
                col(AIJob.tenant_id),
                col(AIJob.id),
                sa.literal(step),
                sa.literal(data, data_type),
                sa.func.now(),
            )
            .where(col(AIJob.id) == job.id, still_open())
            .with_for_update(read=True, key_share=True)
        )
        statement = (
            pg_insert(JobStep)
            .from_select(["tenant_id", "job_id", "step", "data", "created_at"], live)
            .on_conflict_do_nothing(index_elements=["job_id", "step"])
            .returning(col(JobStep.data))
        )
        async with self.db.session() as session:
            inserted = (await session.exec(statement)).first()  # type: ignore[call-overload]
            existing = None if inserted is not None else await session.get(JobStep, (job.id, step))
            await session.commit()
        return existing.data if existing is not None else data

    @property
    def providers(self) -> set[str]:
        """Every provider that served a saved step (sample content must say so even when resumed)."""
        return {str(p) for data in self.saved.values() for p in data.get("providers") or []}

    async def clear(self, session: AsyncSession) -> list[dict[str, Any]]:
        """Deletes the job's steps in the caller's transaction, the one that stores its artifact and completes it;
        answers the usage of the steps that other attempts paid for (each record with its attempt), so that an
        attempt killed with its worker, which never recorded its usage, is still counted (once).

        The job row is locked first, so that a step written late by an overlapping attempt waits for this
        transaction and then writes nothing (see `save`), instead of outliving the job.
        """
        lock = sa.select(col(AIJob.id)).where(col(AIJob.id) == self.job.id).with_for_update()
        await session.exec(lock)  # type: ignore[call-overload]
        deleted = await session.exec(  # type: ignore[call-overload]
            sa.delete(JobStep).where(col(JobStep.job_id) == self.job.id).returning(col(JobStep.data))
        )
        current = activity.info().attempt if activity.in_activity() else 0
        return [
            {**record, "attempt": data.get("attempt")}
            for (data,) in deleted.all()
            if data.get("attempt") != current
            for record in data.get("usage") or []
        ]


_NOT_STARTED: Any = object()


async def gather_draining(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Runs the calls, at most `limit` at a time, for paid work that keeps what it finished.

    After the first failure no further call starts; the ones running are allowed to finish (they are mostly
    paid for and save their steps), then the first error is raised as it is, so that execute_stage still turns
    an AIProviderError into a retry or a FAILED job. A cancellation of the caller (the user cancels, the worker
    shuts down, the attempt runs out of time) cancels every call at once.
    """
    semaphore = asyncio.Semaphore(limit)
    errors: list[Exception] = []

    async def guarded(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            if errors:
                return cast(T, _NOT_STARTED)
            try:
                return await call()
            except Exception as error:
                errors.append(error)
                raise

    # gather cancels every task when the caller is cancelled, and waits for them; return_exceptions keeps
    # a failure from ending the wait for the calls still running.
    outcomes = await asyncio.gather(*(guarded(call) for call in calls), return_exceptions=True)
    if errors:
        raise errors[0]
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[T], outcomes)
