"""A retried stage resumes at its first unfinished paid call: the blog stage keeps its research, outline, sections
and expansions (and the DNA stage its research) in job_step rows, retries and crashes pay only for the rest, every
call's usage is counted once, and the steps are deleted in the transaction that stores the artifact."""

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.blog import BlogStage
from activities.dna import DnaStage
from activities.steps import JobSteps, gather_draining
from models.contracts import AI_MAX_ATTEMPTS, StageInput, StageResult
from models.db import Database
from models.enums import JobStatus, JobType
from models.generation import ResearchResult
from models.tables import AIJob, BlogPost, CompanyDNA, JobEvent, JobStep
from providers.base import AITimeoutError, Metered, WorkKind
from providers.usage import Usage
from tests.support.stack import Tenant
from tests.support.stage_rows import (
    RecordingProvider,
    add_dna,
    add_persona,
    add_topic,
    job_row,
    new_company,
    new_job,
    rows,
    stage_deps,
)

SECTION = "writing one section of a blog post"
OUTLINE = "Plan a blog post"
# The offline outline has one section per ~450 words: 3600 words are 8 sections, more than run at once (6).
EIGHT_SECTIONS = {"target_words": 3600}

Stage = Callable[[StageInput], Awaitable[StageResult]]


class Metering(RecordingProvider):
    """The recording offline provider, also keeping the usage of every call it made (for checking the job's)
    and the prompts it answered (a prompt is sent again after a failure, never after a success)."""

    def __init__(self) -> None:
        super().__init__()
        self.metered: list[Usage] = []
        self.answered: list[str] = []

    def _record(self, kind: WorkKind, model: str, started: float, meter: Metered, error: Any = None) -> Usage:
        usage = super()._record(kind, model, started, meter, error)
        self.metered.append(usage)
        return usage

    async def _complete(self, prompt: str, *, repair: bool = False, **kwargs: Any) -> str:
        text = await super()._complete(prompt, repair=repair, **kwargs)
        self.answered.append(prompt)
        return text


class EveryThirdCallTimesOut(Metering):
    """A provider whose every third call times out, after a few milliseconds so that sections overlap.

    Not OfflineProvider(fault="timeout", fault_every=3): that one tests the count of calls when a call ends,
    which calls running at the same time have all raised, so overlapping calls slip past it.
    """

    def __init__(self, every: int = 3) -> None:
        super().__init__()
        self.every = every

    async def _before_call(self, kind: WorkKind) -> bool:
        self.calls += 1
        number = self.calls
        await asyncio.sleep(0.005)
        if number % self.every == 0:
            raise AITimeoutError(f"injected timeout of call {number}", provider=self.name, model=self.model)
        return False


class HangsAfterSections(Metering):
    """Writes `sections` of the post's `total` sections, then holds every further section call until the attempt
    is cancelled; `all_hanging` is set once all the others are held."""

    def __init__(self, sections: int, total: int) -> None:
        super().__init__()
        self.allowed = sections
        self.hanging = 0
        self.expected = total - sections
        self.all_hanging = asyncio.Event()

    async def _complete(self, prompt: str, *, repair: bool = False, **kwargs: Any) -> str:
        if SECTION in prompt:
            if self.allowed <= 0:
                self.hanging += 1
                if self.hanging == self.expected:
                    self.all_hanging.set()
                await asyncio.Event().wait()
            self.allowed -= 1
        return await super()._complete(prompt, repair=repair, **kwargs)


def environment(attempt: int, reported: list[str] | None = None) -> ActivityEnvironment:
    """An attempt's activity context; every progress message the stage reports is added to `reported`. (The job's
    row shows the newest report at most every PROGRESS_FLUSH_MS, so a passing one may never reach it.)"""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, start_to_close_timeout=timedelta(seconds=300))
    if reported is not None:
        env.on_heartbeat = lambda *details: reported.extend(
            str(detail["message"]) for detail in details if isinstance(detail, dict) and "message" in detail
        )
    return env


async def retried(
    stage: Stage, job_id: uuid.UUID, first: int = 1, reported: list[str] | None = None
) -> tuple[StageResult, int]:
    """Attempts as Temporal runs them after retryable errors, within the seed's budget: the result and the
    number of the attempt that completed (a permanent failure or a spent budget fails the test)."""
    for attempt in range(first, AI_MAX_ATTEMPTS + 1):
        try:
            return await environment(attempt, reported).run(stage, StageInput(job_id=job_id)), attempt
        except ApplicationError as error:
            assert not error.non_retryable, f"attempt {attempt} failed for good: {error}"
    raise AssertionError(f"not done after {AI_MAX_ATTEMPTS} attempts")


async def steps_of(db: Database, job_id: uuid.UUID) -> list[str]:
    return sorted(step.step for step in await rows(db, JobStep, JobStep.job_id == job_id))


async def check_usage(db: Database, job_id: uuid.UUID, *providers: Metering) -> AIJob:
    """The job's usage is the calls the providers made, each once: none lost, none counted twice."""
    job = await job_row(db, job_id)
    made = [usage for provider in providers for usage in provider.metered]
    records = job.usage_records or []
    assert len(records) == len(made) == sum(provider.calls for provider in providers)
    assert sum(1 for r in records if r["error"]) == sum(1 for u in made if u.error)
    assert job.input_tokens == sum(u.input_tokens for u in made) > 0
    assert job.output_tokens == sum(u.output_tokens for u in made) > 0
    assert Decimal(job.cost_usd or 0) == sum((u.cost_usd for u in made), Decimal(0))
    return job


async def blog_job(db: Database, tenant: Tenant, **fields: Any) -> AIJob:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    topic = await add_topic(db, await add_persona(db, company))
    return await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, **fields)


async def test_a_provider_failing_every_third_call_finishes_the_post_and_pays_for_each_section_once(
    db: Database, tenant: Tenant
) -> None:
    job = await blog_job(db, tenant, params=EIGHT_SECTIONS)
    provider = EveryThirdCallTimesOut()
    stage = BlogStage(stage_deps(db, provider)).generate_blogpost

    # The first attempt: research and outline, then six sections at once, two of which time out; the four others
    # were in flight, so they finish and are kept, and the two sections waiting for a slot never start.
    with pytest.raises(ApplicationError) as first:
        await environment(1).run(stage, StageInput(job_id=job.id))
    assert first.value.type == "AITimeoutError" and not first.value.non_retryable
    assert provider.calls == 8
    assert await steps_of(db, job.id) == [
        "outline",
        "research",
        "section:1",
        "section:2",
        "section:4",
        "section:5",
    ]

    reported: list[str] = []
    result, attempts = await retried(stage, job.id, first=2, reported=reported)

    assert attempts == 3 and provider.calls == 14
    done = await job_row(db, job.id)
    assert done.status == JobStatus.COMPLETED and result.summary["sample"] is True
    (post,) = await rows(db, BlogPost, BlogPost.id == result.artifact_ids[0])
    assert post.is_sample
    # Each section was answered once; a section prompt went out again only after that call had failed.
    answered = Counter(prompt for prompt in provider.answered if SECTION in prompt)
    assert len(answered) == 8 and set(answered.values()) == {1}
    sent = provider.sent(SECTION)
    assert len(sent) == 8 + sum(1 for u in provider.metered if u.error)
    assert len(provider.sent(OUTLINE)) == 1
    assert "resuming: 4 of 8 sections were written by an earlier attempt" in reported
    assert "resuming: 6 of 8 sections were written by an earlier attempt" in reported
    events = [event.message for event in await rows(db, JobEvent, JobEvent.job_id == job.id)]
    assert {"attempt 2 of 4", "attempt 3 of 4"} <= set(events), "each attempt's start reaches the job's row"
    # The post is stored and the steps are gone, in the same transaction.
    assert await steps_of(db, job.id) == []
    await check_usage(db, job.id, provider)


async def shut_down_after_three_sections(db: Database, tenant: Tenant) -> tuple[AIJob, HangsAfterSections]:
    """A first attempt of an eight-section post stopped by a worker shutdown once three sections were written
    and the five others were waiting on the provider."""
    job = await blog_job(db, tenant, params=EIGHT_SECTIONS)
    hanging = HangsAfterSections(3, total=8)
    env = environment(1)
    running = asyncio.create_task(
        env.run(BlogStage(stage_deps(db, hanging)).generate_blogpost, StageInput(job_id=job.id))
    )
    async with asyncio.timeout(20):
        await hanging.all_hanging.wait()
    env.cancel(ActivityCancellationDetails(worker_shutdown=True))
    with pytest.raises(asyncio.CancelledError):
        await running
    return job, hanging


async def test_a_worker_shutdown_mid_sections_resumes_with_the_saved_sections(db: Database, tenant: Tenant) -> None:
    job, hanging = await shut_down_after_three_sections(db, tenant)
    assert (await job_row(db, job.id)).status == JobStatus.PROCESSING, "a shutdown is not the user's cancel"
    saved = await steps_of(db, job.id)
    assert saved == ["outline", "research", "section:0", "section:1", "section:2"]

    provider = Metering()
    reported: list[str] = []
    stage = BlogStage(stage_deps(db, provider)).generate_blogpost
    result = await environment(2, reported).run(stage, StageInput(job_id=job.id))

    # Only the five sections that were not saved are paid for again.
    assert provider.calls == 5 and provider.sent(OUTLINE) == []
    written = {n for n in range(1, 9) for prompt in provider.sent(SECTION) if f"Write section {n} of 8:" in prompt}
    assert written == {4, 5, 6, 7, 8}
    assert result.summary["sample"] is True and (await job_row(db, job.id)).status == JobStatus.COMPLETED
    assert "resuming: 3 of 8 sections were written by an earlier attempt" in reported
    assert await steps_of(db, job.id) == []
    await check_usage(db, job.id, hanging, provider)


async def test_an_attempt_killed_with_its_worker_is_still_counted_from_its_saved_steps(
    db: Database, tenant: Tenant
) -> None:
    job, hanging = await shut_down_after_three_sections(db, tenant)
    # A SIGKILL leaves no usage behind: only the steps the attempt saved know what it paid for.
    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(AIJob)
            .where(col(AIJob.id) == job.id)
            .values(usage_records=[], input_tokens=0, output_tokens=0, cost_usd=0)
        )
        await session.commit()

    provider = Metering()
    await environment(2).run(BlogStage(stage_deps(db, provider)).generate_blogpost, StageInput(job_id=job.id))

    done = await job_row(db, job.id)
    first = [r for r in done.usage_records if r["attempt"] == 1]
    assert len(first) == 5  # research, outline and the three saved sections; the held calls never finished
    assert len(done.usage_records) == 5 + provider.calls
    paid = [u for u in hanging.metered][:5] + provider.metered
    assert done.input_tokens == sum(u.input_tokens for u in paid)
    assert Decimal(done.cost_usd or 0) == sum((u.cost_usd for u in paid), Decimal(0))


async def test_a_revision_resumes_from_its_own_steps(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    topic = await add_topic(db, await add_persona(db, company))
    first = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id)
    created = await environment(1).run(BlogStage(stage_deps(db)).generate_blogpost, StageInput(job_id=first.id))
    post_id = created.artifact_ids[0]

    def revision(feedback: str) -> Awaitable[AIJob]:
        params = {"feedback": feedback, **EIGHT_SECTIONS}
        return new_job(db, company, JobType.GENERATE_BLOGPOST, blog_post_id=post_id, params=params)

    shorter = await revision("Shorter sentences, please.")
    with pytest.raises(ApplicationError):
        await environment(1).run(
            BlogStage(stage_deps(db, EveryThirdCallTimesOut())).generate_blogpost,
            StageInput(job_id=shorter.id),
        )
    assert len(await steps_of(db, shorter.id)) == 6

    # Another revision of the same post is another job: it pays for its own research, outline and sections.
    warmer = await revision("A warmer tone.")
    other = Metering()
    await environment(1).run(BlogStage(stage_deps(db, other)).generate_blogpost, StageInput(job_id=warmer.id))
    assert len(other.sent(OUTLINE)) == 1 and len(other.sent(SECTION)) == 8
    assert all("A warmer tone." in p and "Shorter sentences" not in p for p in other.sent(SECTION))

    resumed = Metering()
    result = await environment(2).run(
        BlogStage(stage_deps(db, resumed)).generate_blogpost, StageInput(job_id=shorter.id)
    )
    assert resumed.sent(OUTLINE) == [] and len(resumed.sent(SECTION)) == 4
    assert all("Shorter sentences, please." in p for p in resumed.sent(SECTION))
    assert result.summary["revision"] == 3 and await steps_of(db, shorter.id) == []


async def test_the_dna_stage_keeps_its_research_when_the_extraction_fails(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_DNA)
    provider = EveryThirdCallTimesOut(every=2)  # the extraction of the first attempt times out
    researched: list[str] = []
    research = provider.research

    async def counted_research(query: str, **options: Any) -> Any:
        researched.append(query)
        return await research(query, **options)

    provider.research = counted_research  # type: ignore[method-assign]
    stage = DnaStage(stage_deps(db, provider)).generate_dna

    result, attempts = await retried(stage, job.id)

    assert attempts == 2 and len(researched) == 1 and provider.calls == 3
    (dna,) = await rows(db, CompanyDNA, CompanyDNA.job_id == job.id)
    assert result.artifact_ids == [dna.id] and dna.is_sample and len(dna.data_points) >= 30
    assert await steps_of(db, job.id) == []
    await check_usage(db, job.id, provider)


# ---- the store ----------------------------------------------------------------------------------------------


async def test_a_step_is_saved_once_and_not_after_the_job_ended(db: Database, tenant: Tenant) -> None:
    job = await new_job(db, await new_company(db, tenant), JobType.GENERATE_DNA)

    async def paid(text: str) -> ResearchResult:
        return ResearchResult(text=text)

    steps = JobSteps(db, job)
    assert (await steps.once("research", ResearchResult, lambda: paid("first"))).text == "first"
    # An overlapping attempt that did not see the step pays for it, but goes on with the one saved first.
    late = JobSteps(db, job)
    assert (await late.once("research", ResearchResult, lambda: paid("second"))).text == "first"
    resumed = JobSteps(db, job)
    await resumed.load()
    assert resumed.result("research", ResearchResult) == ResearchResult(text="first")

    async with db.session() as session:
        await steps.clear(session)
        await session.exec(  # type: ignore[call-overload]
            sa.update(AIJob).where(col(AIJob.id) == job.id).values(status=JobStatus.COMPLETED.value)
        )
        await session.commit()
    assert await steps_of(db, job.id) == []
    # A step that finishes after the job ended is not written.
    assert (await steps.once("extraction", ResearchResult, lambda: paid("too late"))).text == "too late"
    assert await steps_of(db, job.id) == []


# ---- gather_draining ----------------------------------------------------------------------------------------


async def test_after_a_failure_no_call_starts_and_the_running_ones_finish() -> None:
    started: list[int] = []
    finished: list[int] = []

    def call(n: int, fails: bool = False) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            started.append(n)
            await asyncio.sleep(0.01 * n)
            if fails:
                raise AITimeoutError(f"call {n} timed out", provider="test")
            finished.append(n)
            return n

        return run

    assert await gather_draining([call(n) for n in range(4)], limit=2) == [0, 1, 2, 3]
    started.clear()
    finished.clear()
    with pytest.raises(AITimeoutError, match="call 1 timed out"):
        await gather_draining([call(1, fails=True), call(3), call(4), call(5)], limit=2)
    # 1 fails while 3 runs: 3 is allowed to finish, 4 and 5 never start.
    assert started == [1, 3] and finished == [3]


async def test_cancelling_the_caller_stops_every_call_at_once() -> None:
    cancelled: list[int] = []

    def call(n: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(n)
                raise

        return run

    async def failing() -> None:
        raise AITimeoutError("fails first", provider="test")

    # Even while the others are draining after a failure, a cancellation does not wait for them.
    task = asyncio.create_task(gather_draining([call(0), call(1), failing, call(3)], limit=3))
    await asyncio.sleep(0.05)
    task.cancel()
    async with asyncio.timeout(1):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(cancelled) == [0, 1]
