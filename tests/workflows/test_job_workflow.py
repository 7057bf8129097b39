"""GenerationJobWorkflow with the real DNA activity and a real database, on the time-skipping server:
the seed's retry rules (Retry-After, 60 s x 2^retry, 30 s for timeouts, at most 3 retries), permanent
failures, and cancellation of a running job."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.deps import StageDeps
from activities.jobs import retry_delay
from models.contracts import JobRequest
from models.db import Database
from models.enums import JobStatus, JobType, Tier
from models.generation import ResearchResult
from models.settings import Settings
from models.tables import AIJob, Company, CompanyDNA
from providers.base import AIAuthError, AIRateLimitError, AITimeoutError, WorkKind
from providers.offline import OfflineProvider
from providers.router import ProviderRouter
from tests.support.stack import Tenant
from worker import build_workers
from workflows.job import GenerationJobWorkflow


class FlakyResearch(OfflineProvider):
    """The offline provider, but its first research calls fail with the given errors."""

    def __init__(self, failures: list[Exception], *, hang: bool = False) -> None:
        super().__init__()
        self.failures = list(failures)
        self.research_calls = 0
        self.hang = hang
        self.scheduled: list[datetime] = []

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        self.research_calls += 1
        # Server time, which the time-skipping server advances: shows the waits between attempts.
        self.scheduled.append(activity.info().started_time)
        if self.hang:
            await asyncio.sleep(3600)
        if self.failures:
            raise self.failures.pop(0)
        return await super().research(query, sample_context=sample_context, **options)


def router_of(provider: OfflineProvider) -> ProviderRouter:
    return ProviderRouter(chains={kind: [provider] for kind in WorkKind})


async def new_job(db: Database, tenant: Tenant) -> AIJob:
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name=f"Retry Co {uuid.uuid4().hex[:6]}", website="https://retry.example")
        session.add(company)
        await session.flush()
        job = AIJob(tenant_id=tenant.id, company_id=company.id, job_type=JobType.GENERATE_DNA)
        job.workflow_id = f"job-{job.id}"
        session.add(job)
        await session.commit()
        return job


async def job_row(db: Database, job_id: uuid.UUID) -> AIJob:
    async with db.session() as session:
        row = await session.get(AIJob, job_id)
        assert row is not None
        return row


async def dna_rows(db: Database, job_id: uuid.UUID) -> list[CompanyDNA]:
    async with db.session() as session:
        return list((await session.exec(select(CompanyDNA).where(CompanyDNA.job_id == job_id))).all())


@pytest.fixture
async def run_job(skipping_temporal: WorkflowEnvironment, db: Database) -> AsyncIterator[Any]:
    """Runs one job workflow on fresh task queues with the given provider; returns the workflow handle."""
    workers: list[Worker] = []
    tasks: list[asyncio.Task[None]] = []

    async def run(job: AIJob, provider: OfflineProvider, *, client: Client | None = None) -> Any:
        client = client or skipping_temporal.client
        suffix = f"-{uuid.uuid4().hex[:8]}"
        settings = Settings(task_queue_suffix=suffix, _env_file=None)  # type: ignore[call-arg]
        started = build_workers(client, StageDeps(db=db, router=router_of(provider), settings=settings), settings)
        workers.extend(started)
        tasks.extend(asyncio.create_task(worker.run()) for worker in started)
        return await client.start_workflow(
            GenerationJobWorkflow.run,
            JobRequest(
                job_id=job.id,
                job_type=JobType.GENERATE_DNA,
                tenant_id=job.tenant_id,
                company_id=job.company_id,
                tier=Tier.PRO,
            ),
            id=job.workflow_id or f"job-{job.id}",
            task_queue="pipeline" + suffix,
        )

    yield run
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)


def test_retry_delays_follow_the_seed() -> None:
    limited = AIRateLimitError("slow down", provider="gemini", model="m")
    assert retry_delay(limited, 1) == timedelta(seconds=60)
    assert retry_delay(limited, 2) == timedelta(seconds=120)
    assert retry_delay(limited, 3) == timedelta(seconds=240)
    told = AIRateLimitError("slow down", provider="gemini", model="m", retry_after=7)
    assert retry_delay(told, 3) == timedelta(seconds=7)
    assert retry_delay(AITimeoutError("late", provider="gemini", model="m"), 2) == timedelta(seconds=30)


async def test_rate_limits_and_timeouts_retry_then_complete(run_job: Any, db: Database, tenant: Tenant) -> None:
    job = await new_job(db, tenant)
    provider = FlakyResearch(
        [
            AIRateLimitError("quota", provider="offline", model="m", retry_after=7),
            AITimeoutError("slow", provider="offline", model="m"),
            AIRateLimitError("quota", provider="offline", model="m"),
        ]
    )
    handle = await run_job(job, provider)
    outcome = await handle.result()
    assert outcome.status == JobStatus.COMPLETED
    assert provider.research_calls == 4
    row = await job_row(db, job.id)
    assert row.status == JobStatus.COMPLETED and row.progress == 100
    assert len(await dna_rows(db, job.id)) == 1
    # The waits the seed asks for: 7 s (the provider's Retry-After), 30 s (timeout), 240 s (60 x 2^2).
    waits = [round((b - a).total_seconds()) for a, b in zip(provider.scheduled, provider.scheduled[1:], strict=False)]
    assert waits == [7, 30, 240]


async def test_retries_stop_after_four_attempts_and_fail_the_job(run_job: Any, db: Database, tenant: Tenant) -> None:
    job = await new_job(db, tenant)
    provider = FlakyResearch([AIRateLimitError("quota exceeded", provider="offline", model="m") for _ in range(10)])
    handle = await run_job(job, provider)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert provider.research_calls == 4
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED
    assert "quota exceeded" in row.error_message and "4 attempts" in row.error_message
    assert await dna_rows(db, job.id) == []


async def test_a_permanent_failure_is_not_retried(run_job: Any, db: Database, tenant: Tenant) -> None:
    job = await new_job(db, tenant)
    provider = FlakyResearch([AIAuthError("the API key was refused", provider="offline", model="m")])
    handle = await run_job(job, provider)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert provider.research_calls == 1
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED and "refused" in row.error_message
    assert row.completed_at is not None


async def test_cancelling_a_running_job_marks_it_cancelled_and_stores_nothing(
    dev_temporal: WorkflowEnvironment, run_job: Any, db: Database, tenant: Tenant
) -> None:
    job = await new_job(db, tenant)
    provider = FlakyResearch([], hang=True)
    handle = await run_job(job, provider, client=dev_temporal.client)
    for _ in range(100):
        if provider.research_calls:
            break
        await asyncio.sleep(0.05)
    assert (await job_row(db, job.id)).status == JobStatus.PROCESSING
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await job_row(db, job.id)
    assert row.status == JobStatus.CANCELLED
    assert await dna_rows(db, job.id) == []


class LimitedExtraction(OfflineProvider):
    """Research is served; every extraction is rate limited."""

    async def _before_call(self, kind: WorkKind) -> bool:
        await super()._before_call(kind)
        if kind is WorkKind.JSON:
            raise AIRateLimitError("injected rate limit", provider=self.name, model=self.model, retry_after=1.0)
        return False


async def test_failed_attempts_keep_their_usage(run_job: Any, db: Database, tenant: Tenant) -> None:
    # Research succeeds once and is kept (a job step); the extraction fails on each of 4 attempts.
    job = await new_job(db, tenant)
    handle = await run_job(job, LimitedExtraction())
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED
    attempts = [r["attempt"] for r in row.usage_records]
    assert attempts == [1, 1, 2, 3, 4]
    assert [r["error"] for r in row.usage_records] == [None] + ["AIRateLimitError"] * 4
    assert row.input_tokens == sum(r["input_tokens"] for r in row.usage_records) > 0
    assert row.provider == "offline"


class BrokenResearch(FlakyResearch):
    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        self.research_calls += 1
        raise RuntimeError("SELECT secret FROM internals")


async def test_an_unexpected_error_fails_the_job_at_once_without_internals(
    run_job: Any, db: Database, tenant: Tenant
) -> None:
    job = await new_job(db, tenant)
    provider = BrokenResearch([])
    handle = await run_job(job, provider)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert provider.research_calls == 1, "the seed: anything else is not retried"
    row = await job_row(db, job.id)
    assert row.status == JobStatus.FAILED
    assert "internal error in the generate_dna stage (RuntimeError)" in row.error_message
    assert "secret" not in row.error_message
