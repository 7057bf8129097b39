"""The seed's budget of 4 attempts counts provider errors only: attempts lost with a worker (a crash, a deploy,
a heartbeat timeout) leave it whole, and the fourth provider error fails the job for good."""

import dataclasses
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.personas import PersonaStage
from models.contracts import StageInput
from models.db import Database
from models.enums import JobStatus, JobType
from providers.offline import OfflineProvider
from tests.support.stack import Tenant
from tests.support.stage_rows import add_dna, job_row, new_company, new_job, stage_deps


async def attempt(stage: PersonaStage, job_id: object, number: int) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=number, start_to_close_timeout=timedelta(seconds=300))
    await env.run(stage.generate_personas, StageInput(job_id=job_id))  # type: ignore[arg-type]


async def test_lost_attempts_leave_the_provider_budget_whole(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    job = await new_job(db, company, JobType.GENERATE_PERSONAS)
    stage = PersonaStage(stage_deps(db, OfflineProvider(fault="rate_limit", fault_every=1)))

    # Temporal's 7th attempt, after six lost with their workers: the first provider error of the job.
    with pytest.raises(ApplicationError) as raised:
        await attempt(stage, job.id, 7)
    assert not raised.value.non_retryable and raised.value.next_retry_delay is not None
    row = await job_row(db, job.id)
    assert row.status == JobStatus.PROCESSING and row.provider_failures == 1
    assert "attempt 2 of 4" in row.progress_message
    started = [e for e in await messages(db, job.id) if e.startswith("resumed after an interruption")]
    assert started and "try 7; provider attempt 1 of 4" in started[0]

    for number, failures in ((9, 2), (12, 3)):
        with pytest.raises(ApplicationError) as raised:
            await attempt(stage, job.id, number)
        assert not raised.value.non_retryable
        assert (await job_row(db, job.id)).provider_failures == failures

    with pytest.raises(ApplicationError) as raised:
        await attempt(stage, job.id, 13)
    assert raised.value.non_retryable
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED and "gave up after 4 attempts" in row.error_message


async def test_a_job_without_provider_errors_completes_on_any_attempt(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    job = await new_job(db, company, JobType.GENERATE_PERSONAS)
    await attempt(PersonaStage(stage_deps(db)), job.id, 15)
    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED and row.provider_failures == 0


async def messages(db: Database, job_id: object) -> list[str]:
    from sqlmodel import col, select

    from models.tables import JobEvent

    async with db.session() as session:
        found = await session.exec(
            select(JobEvent.message).where(col(JobEvent.job_id) == job_id).order_by(col(JobEvent.id))
        )
        return list(found.all())
