"""ProgressWriter: a stage's progress reaches the job's row behind the stage, the newest report at most every
interval, in order, never after the attempt's end, and no task of it outlives the attempt."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlmodel import col

from activities.jobs import ProgressWriter
from models.db import Database
from models.enums import JobStatus, JobType
from models.stores.jobs import JobStore
from models.tables import JobEvent
from tests.support.stack import Tenant
from tests.support.stage_rows import job_row, new_company, new_job, rows

A_MINUTE = timedelta(minutes=1)


async def running_job(db: Database, tenant: Tenant) -> uuid.UUID:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_DNA, status=JobStatus.PROCESSING, progress_message="started")
    return job.id


async def messages(db: Database, job_id: uuid.UUID) -> list[str]:
    return [event.message for event in await rows(db, JobEvent, JobEvent.job_id == job_id, order=col(JobEvent.id))]


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Waits for a condition, with a deadline generous enough for a busy machine (about 30 s)."""
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the row never showed it")


def writer_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("progress of AIJob")]


async def test_the_first_report_is_written_at_once_and_the_rest_coalesce_into_the_newest(
    db: Database, tenant: Tenant
) -> None:
    job_id = await running_job(db, tenant)
    writer = ProgressWriter(JobStore(db), job_id, A_MINUTE)

    writer.report(10, "researching")  # returns at once: the stage does not wait for the commit

    async def shown() -> bool:
        return (await job_row(db, job_id)).progress_message == "researching"

    await eventually(shown)
    writer.report(40, "extracting")
    writer.report(85, "36 data points")

    # Within the interval nothing more is written; what is left is handed over, the newest only.
    assert await writer.settle() == (85, "36 data points")
    assert writer_tasks() == []
    assert await messages(db, job_id) == ["started", "researching"]
    row = await job_row(db, job_id)
    assert (row.progress, row.progress_message) == (10, "researching")


async def test_without_an_interval_every_report_reaches_the_row_in_order(db: Database, tenant: Tenant) -> None:
    job_id = await running_job(db, tenant)
    writer = ProgressWriter(JobStore(db), job_id, timedelta(0))
    for percent in range(10, 60, 10):
        writer.report(percent, f"step {percent}")

        async def shown(percent: int = percent) -> bool:
            return (await job_row(db, job_id)).progress == percent

        await eventually(shown)
    assert await writer.settle() is None
    assert await messages(db, job_id) == ["started", *(f"step {p}" for p in range(10, 60, 10))]


class SlowStore(JobStore):
    """A store whose progress writes wait for a go, to catch a write in flight."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.writing = asyncio.Event()
        self.go = asyncio.Event()

    async def progress(self, job_id: uuid.UUID, percent: int, message: str) -> None:
        self.writing.set()
        await self.go.wait()
        await super().progress(job_id, percent, message)


async def test_settling_waits_for_a_write_in_flight_so_that_none_lands_after_the_end(
    db: Database, tenant: Tenant
) -> None:
    job_id = await running_job(db, tenant)
    store = SlowStore(db)
    writer = ProgressWriter(store, job_id, A_MINUTE)
    writer.report(10, "researching")
    async with asyncio.timeout(30):
        await store.writing.wait()
    writer.report(20, "newer")

    settling = asyncio.create_task(writer.settle())
    await asyncio.sleep(0)
    assert not settling.done(), "the write under way is waited for"
    store.go.set()
    assert await settling == (20, "newer")
    assert writer_tasks() == []
    await store.finish(job_id, JobStatus.FAILED, "the provider refused")

    writer.report(30, "too late")  # after the end: ignored, no task, no write
    assert writer_tasks() == [] and await writer.settle() is None
    row = await job_row(db, job_id)
    assert row.status == JobStatus.FAILED and row.error_message == "the provider refused"
    assert await messages(db, job_id) == ["started", "researching", "failed"]


class CountingStore(JobStore):
    """A store that tells when a progress write has been made."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.written = asyncio.Event()

    async def progress(self, job_id: uuid.UUID, percent: int, message: str) -> None:
        await super().progress(job_id, percent, message)
        self.written.set()


async def test_a_write_behind_never_changes_an_ended_job(db: Database, tenant: Tenant) -> None:
    job_id = await running_job(db, tenant)
    store = CountingStore(db)
    await store.finish(job_id, JobStatus.CANCELLED, "cancelled by the user")
    writer = ProgressWriter(store, job_id, timedelta(0))
    writer.report(50, "still working")
    async with asyncio.timeout(30):
        await store.written.wait()
    await writer.settle()
    row = await job_row(db, job_id)
    assert row.status == JobStatus.CANCELLED and row.progress_message == "cancelled by the user" and row.progress == 0
