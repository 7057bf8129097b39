"""The reconciler: a row whose workflow ended without recording it (an operator terminated it in the Web UI, it
timed out) is ended the way Temporal ended it, from the worker process, so that no read has to ask Temporal.

Every few seconds one worker process of the deployment (a PostgreSQL advisory lock per sweep decides which) asks
Temporal's visibility store for this deployment's workflows that closed as Terminated, TimedOut, Failed or Canceled
since the last sweep, and ends the matching rows through their stores: a Pipeline by its workflow id, a job started
alone (not a pipeline's stage) by its own. A row that already ended is left alone by the stores, so sweeping the
same window twice changes nothing: each sweep looks back a little further than the last one reached, because a
closed workflow can appear in visibility a moment after it closed.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from temporalio.client import Client

from models.db import Database
from models.enums import JobStatus, PipelineStatus
from models.stores.jobs import JobStore, still_open
from models.stores.pipelines import PipelineStore, still_running
from models.tables import AIJob, Pipeline
from models.workflow_ends import VISIBILITY_STATUSES, ended_without_record

logger = logging.getLogger(__name__)

# The first sweep of a process looks back this far: workflows terminated while no worker was running.
FIRST_LOOK_BACK = timedelta(days=1)
# Each later sweep starts this long before the previous one did: visibility records a closed workflow a moment
# after it closes, and the worker's clock and the server's may differ a little.
OVERLAP = timedelta(minutes=1)
# A sweep that takes longer than this (an engine or a database that stopped answering) is given up; the next
# round tries again from the same point.
SWEEP_TIMEOUT_SECONDS = 60.0
# Workflow ids looked up in the database per statement.
BATCH = 500
# The advisory lock's first key (ours, among whatever else takes advisory locks in the database); the second is
# the task queue's hash, so deployments sharing a database sweep their own queues independently.
LOCK_CLASS = 0x7EC0


def visibility_query(task_queue: str, since: datetime) -> str:
    """The workflows of `task_queue` that closed after `since` without recording how (Temporal's list filter)."""
    statuses = ", ".join(f"'{name}'" for name in VISIBILITY_STATUSES.values())
    closed_after = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"ExecutionStatus IN ({statuses}) AND CloseTime > '{closed_after}' AND TaskQueue = '{task_queue}'"


class Reconciler:
    """Sweeps one deployment's task queue (the pipeline queue with its suffix: every workflow we start runs there)."""

    def __init__(self, client: Client, db: Database, task_queue: str) -> None:
        self.client = client
        self.db = db
        self.task_queue = task_queue
        self.pipelines = PipelineStore(db)
        self.jobs = JobStore(db)
        self.since = datetime.now(UTC) - FIRST_LOOK_BACK

    async def sweep(self) -> int | None:
        """One sweep: answers how many rows it ended, or None when another process is sweeping right now."""
        started = datetime.now(UTC)
        async with self.db.session() as lock:
            # A transaction-scoped lock: it ends with this session's transaction, however the sweep ends
            # (a lost connection included), so no process can keep it by accident.
            taken = await lock.exec(  # type: ignore[call-overload]
                sa.select(sa.func.pg_try_advisory_xact_lock(LOCK_CLASS, sa.func.hashtext(self.task_queue)))
            )
            if not taken.scalar_one():
                return None
            ended = 0
            batch: dict[str, str] = {}
            query = visibility_query(self.task_queue, self.since - OVERLAP)
            async for execution in self.client.list_workflows(query, rpc_timeout=timedelta(seconds=10)):
                if execution.status is not None and execution.task_queue == self.task_queue:
                    batch[execution.id] = execution.status.name
                if len(batch) >= BATCH:
                    ended += await self._end_rows(batch)
                    batch = {}
            ended += await self._end_rows(batch)
        self.since = started
        return ended

    async def _end_rows(self, closed: dict[str, str]) -> int:
        """Ends the running rows of these closed workflows (workflow id -> how it ended), as their stores do."""
        if not closed:
            return 0
        ended = 0
        async with self.db.session() as session:
            pipelines = await session.exec(
                select(Pipeline.id, Pipeline.workflow_id).where(
                    col(Pipeline.workflow_id).in_(list(closed)), still_running()
                )
            )
            for pipeline_id, workflow_id in pipelines.all():
                how = ended_without_record(closed[workflow_id], "pipeline")
                if how is None:
                    continue
                cancelled, reason = how
                pipeline_status = PipelineStatus.CANCELLED if cancelled else PipelineStatus.FAILED
                ended += await self.pipelines.end(session, pipeline_id, pipeline_status, reason)
                logger.info("pipeline %s: its workflow %s ended outside our code: %s", pipeline_id, workflow_id, reason)
            await session.commit()
            jobs = await session.exec(
                select(AIJob.id, AIJob.workflow_id).where(
                    col(AIJob.workflow_id).in_(list(closed)), col(AIJob.pipeline_id).is_(None), still_open()
                )
            )
            standalone: list[Any] = list(jobs.all())
        for job_id, workflow_id in standalone:
            how = ended_without_record(closed[workflow_id], "job")
            if how is None:
                continue
            cancelled, message = how
            job_status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
            ended += await self.jobs.finish(job_id, job_status, message, progress_message=message)
            logger.info("job %s: its workflow %s ended outside our code: %s", job_id, workflow_id, message)
        return ended

    async def run(self, every_seconds: float) -> None:
        """Sweeps every `every_seconds` until cancelled; an engine or a database that is away is logged and tried
        again next round."""
        while True:
            try:
                await asyncio.wait_for(self.sweep(), timeout=SWEEP_TIMEOUT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("reconciler: the sweep of %s failed (%r); trying again next round", self.task_queue, exc)
            await asyncio.sleep(every_seconds)


def start_reconciler(client: Client, db: Database, task_queue: str, every_seconds: float) -> "asyncio.Task[None]":
    """A reconciler sweeping `task_queue` in the background until `stop_reconciler`."""
    reconciler = Reconciler(client, db, task_queue)
    return asyncio.create_task(reconciler.run(every_seconds), name=f"reconciler of {task_queue}")


async def stop_reconciler(task: "asyncio.Task[None]") -> None:
    """Stops the sweeps (one under way is abandoned: its transaction rolls back, and the next process's sweep
    covers its window again)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def reconciling(client: Client, db: Database, task_queue: str, every_seconds: float) -> AsyncIterator[None]:
    """A reconciler sweeping in the background for as long as the block runs, stopped cleanly when it ends."""
    task = start_reconciler(client, db, task_queue, every_seconds)
    try:
        yield
    finally:
        await stop_reconciler(task)
