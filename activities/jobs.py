"""A stage's run of its AIJob: PROCESSING with progress, then COMPLETED, FAILED or CANCELLED, exactly once (the row's
status moves through models.stores.jobs.JobStore); retries, heartbeats and what the provider calls cost."""

import asyncio
import contextlib
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import psycopg
import sqlalchemy as sa
import sqlalchemy.exc
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import StageDeps
from models.contracts import (
    AI_MAX_ATTEMPTS,
    RATE_LIMIT_BASE_DELAY_SECONDS,
    TIMEOUT_RETRY_DELAY_SECONDS,
    JobFinish,
    StageInput,
    StageResult,
)
from models.db import Database
from models.enums import JobStatus, JobType
from models.job_params import AnyJobParams, params_of
from models.names import ErrorType
from models.stores.jobs import JobStore
from models.tables import AIJob, Company
from providers.base import AIProviderError, AIRateLimitError, AITimeoutError
from providers.usage import UsageLog, current_usage_log, track_usage

HEARTBEAT_EVERY_SECONDS = 1.0
OFFLINE_PROVIDER = "offline"

P = TypeVar("P", bound=AnyJobParams)


def charge(usage: UsageLog, attempt: int, recovered: Sequence[dict[str, Any]] = ()) -> Callable[[AIJob], None]:
    """What completing a job adds to its row: this attempt's provider calls, and those of attempts that died
    before recording theirs."""

    def add(row: AIJob) -> None:
        add_usage(row, usage, attempt)
        add_recovered_usage(row, recovered)

    return add


async def record_usage(store: JobStore, job_id: uuid.UUID, usage: UsageLog, attempt: int) -> None:
    """The calls of an attempt that did not complete: failed and retried attempts cost money too."""
    if usage.records:
        await store.amend(job_id, lambda row: add_usage(row, usage, attempt))


def add_usage(row: AIJob, usage: UsageLog, attempt: int) -> None:
    """Adds an attempt's provider calls to the job's usage, once per attempt (a retried write adds nothing)."""
    records = list(row.usage_records or [])
    if any(record.get("attempt") == attempt for record in records):
        return
    row.usage_records = [*records, *({**r.model_dump(mode="json"), "attempt": attempt} for r in usage.records)]
    row.input_tokens = (row.input_tokens or 0) + usage.input_tokens
    row.output_tokens = (row.output_tokens or 0) + usage.output_tokens
    row.cost_usd = Decimal(row.cost_usd or 0) + Decimal(str(usage.cost_usd))
    served = [r for r in row.usage_records if not r.get("error")]
    if served:
        row.provider = ",".join(sorted({str(r["provider"]) for r in served}))
        row.model = ",".join(sorted({str(r["model"]) for r in served}))


def add_recovered_usage(row: AIJob, records: Sequence[dict[str, Any]]) -> None:
    """Calls of attempts that never recorded their usage (killed with their worker), known from the steps they
    saved: added once, and only for an attempt the job has no usage of."""
    seen = {record.get("attempt") for record in row.usage_records or []}
    fresh = [dict(record) for record in records if record.get("attempt") not in seen]
    if not fresh:
        return
    row.usage_records = [*(row.usage_records or []), *fresh]
    row.input_tokens = (row.input_tokens or 0) + sum(int(r.get("input_tokens") or 0) for r in fresh)
    row.output_tokens = (row.output_tokens or 0) + sum(int(r.get("output_tokens") or 0) for r in fresh)
    row.cost_usd = Decimal(row.cost_usd or 0) + sum((Decimal(str(r.get("cost_usd") or 0)) for r in fresh), Decimal(0))


class ProgressWriter:
    """A stage's progress, written behind the stage: a stage never waits for a commit to say how far it got.

    The newest (percent, message) goes to the job's row from a task of its own, at once when nothing was written
    for `every` seconds, else when they have passed; the reports in between are coalesced into the newest. One task
    writes, one write at a time, so the row never goes back to an older report. `settle` ends the writing before the
    attempt records its end and hands over what is still unwritten: the completing transaction folds it in, a failure
    or a retry writes its own message instead. A row that has ended refuses the write anyway (`JobStore.progress`).
    """

    def __init__(self, store: JobStore, job_id: uuid.UUID, every: timedelta) -> None:
        self.store = store
        self.job_id = job_id
        self.every = every.total_seconds()
        self._unwritten: tuple[int, str] | None = None
        self._written_at = -math.inf
        self._task: asyncio.Task[None] | None = None
        self._writing = False
        self._settled = False

    def report(self, percent: int, message: str) -> None:
        if self._settled:
            return  # the attempt is recording its end: a report now would land after it
        self._unwritten = (percent, message)
        if self._task is None:
            self._task = asyncio.create_task(self._write_behind(), name=f"progress of AIJob {self.job_id}")

    async def _write_behind(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._unwritten is not None and not self._settled:
                wait = self._written_at + self.every - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                percent, message = self._unwritten
                self._unwritten = None
                self._writing = True
                try:
                    await self.store.progress(self.job_id, percent, message)
                except Exception as error:  # progress is for people watching: the next report or the end says more
                    activity.logger.warning("job %s: progress not written: %s", self.job_id, error)
                finally:
                    self._writing = False
                    self._written_at = loop.time()
        finally:
            self._task = None

    async def settle(self) -> tuple[int, str] | None:
        """Stops writing and answers the newest report not yet written. A write under way is waited for, never
        cut off (a cancelled statement could leave its connection unusable), so that it cannot land after the
        attempt's end; a write still waiting for its turn is dropped. Safe to call more than once."""
        self._settled = True
        task = self._task
        if task is not None:
            if not self._writing:
                task.cancel()
            await asyncio.shield(asyncio.wait([task]))
        unwritten, self._unwritten = self._unwritten, None
        return unwritten


@dataclass
class StageRun:
    """Handed to a stage's body: the job, its company, and a way to report progress."""

    job: AIJob
    company: Company
    deps: StageDeps
    store: JobStore
    # What the job was asked to do, as its stage's params model (see `params_as`).
    params: AnyJobParams
    # Where a retried attempt can pick up (e.g. a started video operation). Temporal hands the next attempt
    # only the last heartbeat's details, and an empty heartbeat clears them: so every heartbeat carries it.
    checkpoint: dict[str, Any] | None = None
    # Usage of earlier attempts that died before recording it, recovered from their saved steps.
    recovered_usage: list[dict[str, Any]] = field(default_factory=list)
    # Writes progress behind the stage (execute_stage settles it); without one, each report is written at once.
    progress_writer: ProgressWriter | None = None
    # The steps earlier attempts saved (JobStep.data by step), read with the job; None when not read (see JobSteps).
    saved_steps: dict[str, dict[str, Any]] | None = None

    def params_as(self, model: type[P]) -> P:
        """The job's params as the stage's own model (execute_stage read them for the job's type)."""
        if not isinstance(self.params, model):
            raise ApplicationError(
                f"AIJob {self.job.id} has {type(self.params).__name__}, not {model.__name__}",
                type=ErrorType.WRONG_JOB_TYPE,
                non_retryable=True,
            )
        return self.params

    def heartbeat(self, **details: Any) -> None:
        if self.checkpoint is not None:
            details["checkpoint"] = self.checkpoint
        activity.heartbeat(*([details] if details else []))

    def resumed_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint that the previous attempt's last heartbeat carried; None on a fresh start."""
        details = activity.info().heartbeat_details
        last = details[0] if details else None
        checkpoint = last.get("checkpoint") if isinstance(last, dict) else None
        return checkpoint if isinstance(checkpoint, dict) else None

    async def progress(self, percent: int, message: str) -> None:
        """Reports how far the stage got: in the heartbeat at once, on the job's row soon (see ProgressWriter)."""
        self.heartbeat(progress=percent, message=message)
        if self.progress_writer is not None:
            self.progress_writer.report(percent, message)
        else:
            await self.store.progress(self.job.id, percent, message)

    async def settle_progress(self) -> tuple[int, str] | None:
        """Ends the writing of progress before the attempt records its end; answers the report not yet written."""
        return await self.progress_writer.settle() if self.progress_writer is not None else None

    def used_offline_provider(self) -> bool:
        """Sample content must say so: true when any call of this stage was served offline."""
        log = current_usage_log()
        return log is not None and OFFLINE_PROVIDER in log.providers


# Error types of a job that cannot run with what it was given: permanent, never retried.
MISSING_INPUT = "MissingInput"
INVALID_INPUT = "InvalidInput"

# How a stage words a param of the wrong type, by field: given the value as stored, the job's error message.
ParamProblems = Mapping[str, Callable[[Any], str]]


def invalid_params_message(error: ValidationError, raw: Mapping[str, Any] | None, problems: ParamProblems) -> str:
    """The job's error message for params that do not fit their model: the stage's own wording for the first
    field it has one for, else pydantic's."""
    details = error.errors()
    for detail in details:
        name = str(detail["loc"][0]) if detail["loc"] else ""
        if name in problems:
            return problems[name]((raw or {}).get(name))
    first = details[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"the job's params are invalid: {where}: {first['msg']}"


async def fail_job(run: StageRun, message: str, error_type: str = MISSING_INPUT) -> NoReturn:
    """A permanent problem (an input missing or wrong): the job ends FAILED with the reason, no retry.

    execute_stage re-raises an ApplicationError untouched, so the stage itself records the end of the job.
    """
    await run.settle_progress()  # the failure's message is the last word, not a progress report written after it
    await run.store.finish(run.job.id, JobStatus.FAILED, message)
    raise ApplicationError(message, type=error_type, non_retryable=True)


# A stage body does the provider work and returns a writer that stores the artifacts in the
# given session (the same transaction that completes the job) and returns their ids.
ArtifactWriter = Callable[[AsyncSession], Awaitable[list[uuid.UUID]]]
StageBody = Callable[[StageRun], Awaitable[tuple[ArtifactWriter, dict[str, Any]]]]


@contextlib.asynccontextmanager
async def heartbeating(send: Callable[[], None] = activity.heartbeat) -> AsyncIterator[None]:
    """Heartbeat in the background so that a long provider call still receives cancellation."""

    async def beat() -> None:
        while True:
            send()
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def retry_delay(error: AIProviderError, attempt: int) -> timedelta:
    if isinstance(error, AIRateLimitError):
        if error.retry_after is not None and error.retry_after > 0:
            return timedelta(seconds=error.retry_after)
        return timedelta(seconds=RATE_LIMIT_BASE_DELAY_SECONDS * 2 ** (attempt - 1))
    if isinstance(error, AITimeoutError):
        return timedelta(seconds=TIMEOUT_RETRY_DELAY_SECONDS)
    return timedelta(seconds=RATE_LIMIT_BASE_DELAY_SECONDS * 2 ** (attempt - 1))


def start_message(attempt: int, provider_attempt: int) -> str:
    """What the job says as an attempt starts: a retry after a provider error, or a resumption after the
    previous attempt was lost with its worker (which costs nothing of the budget)."""
    if attempt == 1:
        return "started"
    if attempt > provider_attempt:
        return (
            f"resumed after an interruption (try {attempt}; provider attempt {provider_attempt} of {AI_MAX_ATTEMPTS})"
        )
    return f"attempt {provider_attempt} of {AI_MAX_ATTEMPTS}"


def describe_retry(error: AIProviderError, delay: timedelta, attempt: int) -> str:
    kind = (
        "rate limited"
        if isinstance(error, AIRateLimitError)
        else "timed out"
        if isinstance(error, AITimeoutError)
        else "provider error"
    )
    return f"{kind}, retrying in {int(delay.total_seconds())} s, attempt {attempt + 1} of {AI_MAX_ATTEMPTS}"


async def execute_stage(
    deps: StageDeps, stage: StageInput, job_type: JobType, body: StageBody, problems: ParamProblems | None = None
) -> StageResult:
    """Runs one stage for one AIJob, idempotently: a retry after success returns the stored result. Params of the
    wrong type fail the job at once, worded by `problems` (see `invalid_params_message`)."""
    store = JobStore(deps.db)
    if stage.spec is not None:
        if stage.spec.job_id != stage.job_id or stage.spec.job_type != job_type:
            raise ApplicationError(
                f"the spec of AIJob {stage.spec.job_id} ({stage.spec.job_type}) is not for AIJob {stage.job_id} "
                f"({job_type})",
                type=ErrorType.WRONG_JOB_TYPE,
                non_retryable=True,
            )
        await store.create(stage.spec)  # a pipeline's stage makes its own row; a retry finds it there
    info = activity.info()
    attempt = info.attempt  # Temporal's count: every attempt, including those lost with a worker
    # The seed's count of attempts is the row's: attempts that ended in a provider error, plus this one.
    claim = await store.claim(stage.job_id, job_type, lambda failures: start_message(attempt, failures + 1))
    job = claim.job
    if job.job_type != job_type:
        raise ApplicationError(
            f"AIJob {job.id} is {job.job_type}, not {job_type}", type=ErrorType.WRONG_JOB_TYPE, non_retryable=True
        )
    if job.status == JobStatus.COMPLETED and job.result_data is not None:
        return StageResult.from_result_data(job.id, job.result_data)
    if JobStatus(job.status).is_terminal:
        raise ApplicationError(
            f"AIJob {job.id} already ended {job.status}", type=ErrorType.JOB_ALREADY_ENDED, non_retryable=True
        )
    company = claim.company
    if company is None:
        await store.finish(job.id, JobStatus.FAILED, "the company no longer exists")
        raise ApplicationError(
            f"company {job.company_id} not found", type=ErrorType.COMPANY_NOT_FOUND, non_retryable=True
        )
    try:
        params = params_of(job_type, job.params)
    except ValidationError as error:
        message = invalid_params_message(error, job.params, problems or {})
        await store.finish(job.id, JobStatus.FAILED, message)
        raise ApplicationError(message, type=INVALID_INPUT, non_retryable=True) from None

    provider_attempt = job.provider_failures + 1
    writer = ProgressWriter(store, job.id, timedelta(milliseconds=deps.settings.progress_flush_ms))
    run = StageRun(
        job=job,
        company=company,
        deps=deps,
        store=store,
        params=params,
        progress_writer=writer,
        saved_steps=claim.saved_steps,
    )
    with track_usage() as usage:
        try:
            try:
                async with heartbeating(run.heartbeat), asyncio.timeout(attempt_budget(info.start_to_close_timeout)):
                    artifacts, summary = await body(run)
            except TimeoutError:
                # Ran out of this attempt's time: a timeout as the seed treats it (retry in 30 s), with its
                # usage kept, rather than Temporal's start-to-close timeout that would lose both.
                raise AITimeoutError(
                    f"the stage used up its {info.start_to_close_timeout} attempt",
                    provider="worker",
                    model=job_type.value,
                ) from None
            await run.progress(95, "saving")
            last_report = await writer.settle()
            async with deps.db.session() as session:
                artifact_ids = await artifacts(session)
                result = StageResult(job_id=job.id, artifact_ids=artifact_ids, summary=summary)
                charged = charge(usage, attempt, run.recovered_usage)
                await store.complete(session, job.id, result, charged, last_report=last_report)
                await session.commit()
            activity.logger.info("job %s %s completed: %s", job.id, job_type.value, summary)
            return result
        except asyncio.CancelledError:
            await asyncio.shield(writer.settle())
            await asyncio.shield(record_usage(store, job.id, usage, attempt))
            details = activity.cancellation_details()
            # A worker shutdown or heartbeat timeout is not the user's cancel: the retry picks the job up again.
            if details is not None and details.cancel_requested:
                await asyncio.shield(
                    store.finish(job.id, JobStatus.CANCELLED, "cancelled while running; nothing was stored")
                )
            raise
        except AIProviderError as error:
            await writer.settle()  # what the stage said before the error gives way to the retry's or the failure's
            await record_usage(store, job.id, usage, attempt)
            await fail_for_provider(store, job.id, error, provider_attempt)
        except ApplicationError:
            raise
        except TRANSIENT_ERRORS as error:
            # The database or the network blinked: Temporal retries the attempt (AI_RETRY), the job stays PROCESSING.
            await writer.settle()
            await retry_after_transient(store, job.id, error)
        except Exception as error:
            # The seed: anything else ends the job FAILED. The message names the error, not its internals.
            activity.logger.exception("job %s %s failed unexpectedly", job.id, job_type.value)
            await writer.settle()
            await record_usage(store, job.id, usage, attempt)
            await fail_internally(store, job.id, job_type, error)
        finally:
            # Whatever ended the attempt, no progress task outlives it.
            await asyncio.shield(writer.settle())


async def fail_for_provider(
    store: JobStore, job_id: uuid.UUID, error: AIProviderError, provider_attempt: int
) -> NoReturn:
    """A provider error as the seed treats it: a retryable one is retried after its delay until AI_MAX_ATTEMPTS
    provider failures (the job says so and stays PROCESSING); a permanent one, or the last, ends the job FAILED."""
    failures = await store.count_provider_failure(job_id) if error.retryable else provider_attempt
    if error.retryable and failures < AI_MAX_ATTEMPTS:
        delay = retry_delay(error, failures)
        await store.progress(job_id, 0, describe_retry(error, delay, failures))
        raise ApplicationError(str(error), type=type(error).__name__, next_retry_delay=delay) from error
    message = str(error) if not error.retryable else f"{error} (gave up after {failures} attempts)"
    await store.finish(job_id, JobStatus.FAILED, message)
    raise ApplicationError(message, type=type(error).__name__, non_retryable=True) from error


async def retry_after_transient(store: JobStore, job_id: uuid.UUID, error: BaseException) -> NoReturn:
    """The database or the network blinked: Temporal retries the attempt, the job stays PROCESSING."""
    activity.logger.warning("job %s: transient error, will retry: %s", job_id, type(error).__name__)
    with contextlib.suppress(*TRANSIENT_ERRORS):
        await store.progress(job_id, 0, f"temporary {type(error).__name__}, retrying")
    raise ApplicationError(f"temporary {type(error).__name__}", type=ErrorType.TRANSIENT) from error


async def fail_internally(store: JobStore, job_id: uuid.UUID, job_type: JobType, error: BaseException) -> NoReturn:
    """The seed: anything else ends the job FAILED, its message naming the error, not its internals."""
    message = f"internal error in the {job_type.value} stage ({type(error).__name__}); the worker log has the details"
    await store.finish(job_id, JobStatus.FAILED, message)
    raise ApplicationError(message, type=ErrorType.INTERNAL, non_retryable=True) from error


# Errors worth another attempt that are not the provider's: connections to the database or elsewhere.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    psycopg.OperationalError,
    ConnectionError,
)

# What a stage may use of its attempt's start-to-close timeout; the rest is for saving and reporting.
ATTEMPT_RESERVE_SECONDS = 15.0


def attempt_budget(start_to_close: timedelta | None) -> float | None:
    if start_to_close is None:
        return None
    return max(1.0, start_to_close.total_seconds() - ATTEMPT_RESERVE_SECONDS)


class JobActivities:
    """Quick bookkeeping the workflow runs when a stage could not record its own end (timeouts, crashes)."""

    def __init__(self, db: Database) -> None:
        self.store = JobStore(db)

    @activity.defn(name="finish_job")
    async def finish_job(self, finish: JobFinish) -> bool:
        if finish.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise ApplicationError(
                "finish_job only records FAILED or CANCELLED", type=ErrorType.BAD_FINISH, non_retryable=True
            )
        return await self.store.finish(finish.job_id, finish.status, finish.message)
