"""JobStore.claim, the one statement that starts an attempt (the job PROCESSING with its start message, its company
and its saved steps), and what it leaves alone; and the completing transaction that folds in the last progress."""

import uuid

import pytest
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from models.contracts import StageResult
from models.db import Database
from models.enums import JobStatus, JobType
from models.stores.jobs import JobStore
from models.tables import AIJob, Company, JobEvent, JobStep
from tests.support.stack import Tenant, make_tenant
from tests.support.stage_rows import job_row, new_company, new_job, rows


def worded(failures: int) -> str:
    return f"started after {failures} provider failures"


async def events_of(db: Database, job_id: uuid.UUID) -> list[tuple[str, int, str]]:
    found = await rows(db, JobEvent, JobEvent.job_id == job_id, order=col(JobEvent.id))
    return [(JobStatus(event.status).value, event.progress, event.message) for event in found]


async def test_a_fresh_job_starts_and_comes_back_with_its_company_and_saved_steps(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_DNA, progress_message="queued")
    async with db.session() as session:
        session.add(JobStep(tenant_id=tenant.id, job_id=job.id, step="research", data={"result": {"text": "x"}}))
        await session.commit()

    claim = await JobStore(db).claim(job.id, JobType.GENERATE_DNA, worded)

    assert claim.started and claim.company is not None and claim.company.id == company.id
    assert claim.job.status == JobStatus.PROCESSING and claim.job.progress_message == worded(0)
    assert claim.saved_steps == {"research": {"result": {"text": "x"}}}
    row = await job_row(db, job.id)
    assert row.status == JobStatus.PROCESSING and row.started_at is not None
    assert await events_of(db, job.id) == [("PENDING", 0, "queued"), ("PROCESSING", 0, worded(0))]


async def test_a_job_with_provider_failures_starts_with_their_count_in_its_message(
    db: Database, tenant: Tenant
) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_DNA, provider_failures=2, status=JobStatus.PROCESSING)

    claim = await JobStore(db).claim(job.id, JobType.GENERATE_DNA, worded)

    assert claim.started and claim.saved_steps == {}
    assert (await job_row(db, job.id)).progress_message == worded(2)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
async def test_an_ended_job_is_answered_as_it_is_and_never_changes(
    db: Database, tenant: Tenant, status: JobStatus
) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_DNA, status=status, progress_message="the end")

    claim = await JobStore(db).claim(job.id, JobType.GENERATE_DNA, worded)

    assert not claim.started and claim.job.status == status
    row = await job_row(db, job.id)
    assert row.status == status and row.progress_message == "the end" and row.started_at is None


async def test_a_job_of_another_type_is_left_as_it_is(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_PERSONAS, progress_message="queued")

    claim = await JobStore(db).claim(job.id, JobType.GENERATE_DNA, worded)

    assert not claim.started and claim.job.job_type == JobType.GENERATE_PERSONAS
    row = await job_row(db, job.id)
    assert row.status == JobStatus.PENDING and row.progress_message == "queued"


async def test_a_job_whose_company_is_gone_or_anothers_comes_back_without_one(db: Database, tenant: Tenant) -> None:
    other = await make_tenant(db, name="Claim other tenant")
    foreign = await new_company(db, other)
    # A row whose company belongs to another tenant (only a broken write could make one): never its company.
    job = await new_job(db, foreign, JobType.GENERATE_DNA, progress_message="queued")
    async with db.session() as session:
        row = await session.get(AIJob, job.id)
        assert row is not None
        row.tenant_id = tenant.id
        session.add(row)
        await session.commit()

    claim = await JobStore(db).claim(job.id, JobType.GENERATE_DNA, worded)

    assert not claim.started and claim.company is None
    assert (await job_row(db, job.id)).status == JobStatus.PENDING


async def test_a_job_that_does_not_exist_is_refused_for_good(db: Database) -> None:
    with pytest.raises(ApplicationError) as refused:
        await JobStore(db).claim(uuid.uuid4(), JobType.GENERATE_DNA, worded)
    assert refused.value.type == "JobNotFound" and refused.value.non_retryable


async def test_completing_folds_the_last_progress_in_just_before_the_end(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_DNA, progress_message="queued")
    store = JobStore(db)
    await store.claim(job.id, JobType.GENERATE_DNA, worded)
    result = StageResult(job_id=job.id, artifact_ids=[], summary={"ok": True})

    async with db.session() as session:
        await store.complete(session, job.id, result, lambda row: None, last_report=(95, "saving"))
        await session.commit()

    assert (await events_of(db, job.id))[-2:] == [("PROCESSING", 95, "saving"), ("COMPLETED", 100, "completed")]
    # A completed job takes no more progress, and no second end.
    await store.progress(job.id, 50, "late")
    async with db.session() as session:
        with pytest.raises(ApplicationError) as again:
            await store.complete(session, job.id, result, lambda row: None, last_report=(96, "late"))
    assert again.value.type == "JobAlreadyEnded"
    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED and row.progress == 100 and row.progress_message == "completed"


async def test_the_company_is_the_rows_own(db: Database, tenant: Tenant) -> None:
    """The claim's join returns the company as stored, not a stale or partial copy."""
    company = await new_company(db, tenant, name="Joined Co", language="de")
    job = await new_job(db, company, JobType.GENERATE_DNA)
    claim = await JobStore(db).claim(job.id, JobType.GENERATE_DNA, worded)
    assert isinstance(claim.company, Company)
    assert (claim.company.name, claim.company.language, claim.company.tenant_id) == ("Joined Co", "de", tenant.id)
