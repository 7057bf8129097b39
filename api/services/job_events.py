"""A job's progress as Server-Sent Events, pushed by the database's notifications, until the job ends."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.sse import format_sse_event
from sqlmodel import col, select
from temporalio.client import Client

from api.errors import database_unreachable, outage_summary
from api.events import JobEventHub
from api.services.temporal import live_state, reconcile_ended
from models.api import CamelModel
from models.db import Database
from models.enums import JobStatus
from models.stores.jobs import JobStore
from models.tables import AIJob, JobEvent

logger = logging.getLogger(__name__)

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEP_ALIVE = format_sse_event(comment="keep-alive")


class JobProgress(CamelModel):
    """The data of a `progress` event: one change of the job, in the order it happened."""

    job_id: uuid.UUID
    status: JobStatus
    progress: int
    message: str
    at: datetime


class JobEnd(CamelModel):
    """The data of the `end` event: the job's final state."""

    job_id: uuid.UUID
    status: JobStatus
    progress: int
    message: str
    error_message: str
    result_data: dict[str, Any] | None
    completed_at: datetime | None


async def job_events(app: FastAPI, job_id: uuid.UUID, after: int) -> AsyncIterator[bytes]:
    """The job's events after `after`, then each new one as the database announces it, until the job ends.
    While the database is away the stream stays open on keep-alives and reads again once it is back (the
    listener wakes every stream when it reconnects), so a client sees a pause, not a broken stream."""
    hub: JobEventHub = app.state.events
    # Subscribed before the first read: a change committed in between wakes this stream instead of being lost.
    with hub.subscribe(job_id) as wake:
        while True:
            wake.clear()
            try:
                job, events = await read_since(app.state.db, job_id, after)
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
                logger.warning("job stream %s waits for the database (%s)", job_id, outage_summary(exc))
                async for frame in keep_alive_until(app, wake):
                    yield frame
                continue
            for event in events:
                assert event.id is not None
                yield progress_frame(event)
                after = event.id
            if job is None:  # deleted with its events while the stream was open
                return
            if JobStatus(job.status).is_terminal:
                yield format_sse_event(event="end", data_str=end_data(job).model_dump_json(by_alias=True))
                return
            async for frame in keep_alive_until(app, wake, job):
                yield frame


async def keep_alive_until(app: FastAPI, wake: asyncio.Event, job: AIJob | None = None) -> AsyncIterator[bytes]:
    """Keep-alive comments until `wake` is set; at each, with `job`, Temporal is asked whether its workflow ended.
    Without `job` (the database is away), the first keep-alive ends the wait, so the stream reads again."""
    while True:
        try:
            async with asyncio.timeout(app.state.settings.sse_keepalive_seconds):
                await wake.wait()
            return
        except TimeoutError:
            yield KEEP_ALIVE
        if job is None:
            return
        try:
            await end_if_workflow_ended(app, job)
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            logger.warning("job stream %s could not record its workflow's end (%s)", job.id, outage_summary(exc))


async def read_since(db: Database, job_id: uuid.UUID, after: int) -> tuple[AIJob | None, Sequence[JobEvent]]:
    async with db.session() as session:
        # The job first: the trigger writes its event in the same transaction, so a terminal job's last
        # events are among the rows read next.
        job = await session.get(AIJob, job_id)
        events = (
            await session.exec(
                select(JobEvent)
                .where(col(JobEvent.job_id) == job_id, col(JobEvent.id) > after)
                .order_by(col(JobEvent.id))
            )
        ).all()
    return job, events


def progress_frame(event: JobEvent) -> bytes:
    data = JobProgress(
        job_id=event.job_id, status=event.status, progress=event.progress, message=event.message, at=event.created_at
    )
    return format_sse_event(event="progress", id=str(event.id), data_str=data.model_dump_json(by_alias=True))


def end_data(job: AIJob) -> JobEnd:
    return JobEnd(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        message=job.progress_message,
        error_message=job.error_message,
        result_data=job.result_data,
        completed_at=job.completed_at,
    )


async def end_if_workflow_ended(app: FastAPI, job: AIJob) -> None:
    """A workflow an operator terminated never records its end in the row: Temporal's word brings the row in
    line, and the trigger's notification then ends the stream."""
    temporal: Client | None = app.state.temporal
    if temporal is None or not job.workflow_id:
        return
    live = await live_state(temporal, job.workflow_id)
    if live is None or live.workflow_status == "RUNNING":
        return
    db: Database = app.state.db
    async with db.session() as session:
        row = await session.get(AIJob, job.id)
        if row is not None:
            await reconcile_ended(JobStore(db), session, row, live)
