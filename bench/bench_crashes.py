"""Benchmark: worker crashes. SIGKILLs the worker process at random moments while ULTIMATE pipelines run, restarts
it, and checks that nothing is lost or done twice: every pipeline COMPLETED, every post PUBLISHED and delivered
once, no FAILED job. Reports, per kill, how long after the restart the interrupted work was running again and how
many lost attempts the restarted worker failed at once.

    .venv/bin/python bench/bench_crashes.py                      # 20 kills during 5 pipelines, then 4 kills
                                                                 # during one video stage
    .venv/bin/python bench/bench_crashes.py --pipelines 2 --kills 3 --video-kills 2   # a quick look

Phase A starts --pipelines ULTIMATE pipelines (3 personas x --topics-per-persona topics, three platforms, every
gate auto-approved, the month compressed into a few seconds) and SIGKILLs the worker --kills times, each at a
random moment 1-8 s (--kill-gap) after the restarted worker is ready, restarting it 0.5-3 s later (seeded:
--seed). Phase B starts one more pipeline, waits until a generate_video job is PROCESSING, and SIGKILLs the
worker --video-kills times in a row during that one job, each time after the restarted worker has resumed it (a
video job is a submit_video activity, then poll_video activities between durable timers: a kill lands on either,
or on a timer that the dev server keeps while no worker runs).

Resume seconds, per kill: from the restart until every job that was PROCESSING at the kill has a new job_event
(a new attempt writes one at once); first_progress_s: until anything moved (any job event, any publish). A job
still waiting for its retry counts as PROCESSING, so later kills can interrupt the same work again
(later_kills_before_resumed). lost_attempts_failed: the attempts of the killed worker that the restarted one
found in its ledger (DATA_DIR/worker-attempts, see activities/ledger.py) and failed as it started, so that they
run again at once instead of after their heartbeat timeout (the lines it logged for them, counted in its log).

The Temporal dev server, a scratch database on the local PostgreSQL and the API run in this process; the
worker is `worker.py` run by tests/support/worker_process.py, a child process of its own (session and process group)
with its environment built from the same Settings, its log in bench/results/crashes-<time>/worker-NN.log (one
per start). Each run has a DATA_DIR of its own (a temporary directory), so that the ledgers of different runs
never mix. A local webhook receiver (cli/receiver.py's DemoReceiver, counting) takes the posts. Talks only to
127.0.0.1 and stops every child on exit, Ctrl-C and SIGTERM included. Figures go to stdout and bench/results/
(git-ignored); the exit code is 1 when an expectation fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.main import create_app
from cli.receiver import DemoReceiver, receiving
from models.db import Database
from models.enums import JobStatus, JobType, PublishState, Role, Tier
from models.names import Activity
from models.pipeline import month_after
from models.settings import Settings
from models.tables import AIJob, BlogPost, JobEvent, Pipeline, SocialPost
from tests.support.stack import Tenant, dev_server, free_port, make_tenant, migrated_database_with_tenant, serving
from tests.support.worker_process import WorkerProcess, lost_attempts_failed

PLATFORMS = ["linkedin", "x", "instagram"]
PERSONAS_SELECTED = 3  # autoSelectCount: the personas auto-approval selects
# Ended: every status a pipeline does not leave (strings, so that a status added elsewhere still reads).
ENDED = {"COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"}
KILL_PAUSE = (0.5, 3.0)  # seconds between a SIGKILL and the restart
KILL_GAP = (1.0, 8.0)  # seconds from a restarted worker's "ready" to the next kill (phase A; --kill-gap)
VIDEO_KILL_DELAY = (0.2, 1.5)  # seconds from "the video job runs (again)" to the kill (phase B)
POLL = 0.25
WORKER_READY_WITHIN = 90.0


def now() -> float:
    return time.monotonic()


# ---- the webhook receiver ---------------------------------------------------------------------------------


@dataclass
class Take:
    """One request the receiver answered."""

    post_id: str | None
    webhook_id: str
    status: int


@dataclass
class CountingReceiver(DemoReceiver):
    """DemoReceiver that also notes each answer it gives, per social post (`data.socialPostId` of the Standard
    Webhooks body `{type, timestamp, data}`), with the delivery id it came under (`webhook-id`)."""

    takes: list[Take] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.body()  # Starlette keeps it: DemoReceiver reads the same bytes
        response = await super().handle(request)
        try:
            post_id = str(json.loads(body)["data"]["socialPostId"])
        except (ValueError, LookupError, TypeError):  # not JSON, or no post (a tenant notice)
            post_id = None
        self.takes.append(Take(post_id, request.headers.get("webhook-id", ""), response.status_code))
        return response

    def acknowledged(self) -> dict[str, set[str]]:
        """Per post, the delivery ids it was acknowledged (2xx) under."""
        ids: dict[str, set[str]] = {}
        for take in self.takes:
            if take.post_id and 200 <= take.status < 300:
                ids.setdefault(take.post_id, set()).add(take.webhook_id)
        return ids

    def summary(self, post_ids: set[str]) -> dict[str, Any]:
        """Deliveries of the given posts: taken, acknowledged, and duplicates (a post acknowledged under two
        different delivery ids, or kept twice by the receiver)."""
        takes = [t for t in self.takes if t.post_id in post_ids]
        acked = sum(1 for t in takes if 200 <= t.status < 300)
        ids_per_post = {p: ids for p, ids in self.acknowledged().items() if p in post_ids}
        stored = Counter(p for p in (str(d.data.get("socialPostId")) for d in self.posts) if p in post_ids)
        twice_acked = sorted(p for p, ids in ids_per_post.items() if len(ids) > 1)
        twice_stored = sorted(p for p, n in stored.items() if n > 1)
        return {
            "requests": len(takes),
            "acknowledged": acked,
            "refused_or_failed": len(takes) - acked,
            "posts_acknowledged": len(ids_per_post),
            "resends_same_delivery_id": acked - sum(len(ids) for ids in ids_per_post.values()),
            "posts_stored": len(stored),
            "duplicates": len(set(twice_acked) | set(twice_stored)),
            "duplicate_posts_acknowledged_under_two_ids": twice_acked,
            "duplicate_posts_stored_twice": twice_stored,
            # The receiver's own counters, over the whole run (not per phase):
            "bad_signatures": self.refused,
            "receiver_counted_repeats": self.duplicates,  # the same webhook-id again
        }


# ---- the database, read directly ---------------------------------------------------------------------------


class Observer:
    """Reads the rows of the run's companies straight from PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.companies: list[uuid.UUID] = []

    async def event_marks(self) -> dict[uuid.UUID, int]:
        """The newest job_event id per job: a job that moves (a new attempt, progress) gets a higher one."""
        statement = (
            select(JobEvent.job_id, sa.func.max(JobEvent.id))
            .join(AIJob, col(AIJob.id) == col(JobEvent.job_id))
            .where(col(AIJob.company_id).in_(self.companies))
            .group_by(col(JobEvent.job_id))
        )
        async with self.db.session() as session:
            rows = (await session.exec(statement)).all()
        return {job_id: int(mark or 0) for job_id, mark in rows}

    async def processing(self) -> dict[uuid.UUID, str]:
        statement = select(AIJob.id, AIJob.job_type).where(
            col(AIJob.company_id).in_(self.companies), col(AIJob.status) == JobStatus.PROCESSING
        )
        async with self.db.session() as session:
            rows = (await session.exec(statement)).all()
        return {job_id: JobType(job_type).value for job_id, job_type in rows}

    async def published(self) -> int:
        statement = (
            select(sa.func.count())
            .select_from(SocialPost)
            .where(
                col(SocialPost.company_id).in_(self.companies), col(SocialPost.publish_state) == PublishState.PUBLISHED
            )
        )
        async with self.db.session() as session:
            return int((await session.exec(statement)).one())

    async def events_after(self, job_id: uuid.UUID, mark: int) -> list[str]:
        statement = (
            select(JobEvent.message)
            .where(col(JobEvent.job_id) == job_id, col(JobEvent.id) > mark)
            .order_by(col(JobEvent.id))
        )
        async with self.db.session() as session:
            return [str(m) for m in (await session.exec(statement)).all()]

    async def counts(self, companies: list[uuid.UUID]) -> dict[str, Any]:
        async with self.db.session() as session:
            pipelines = (await session.exec(select(Pipeline).where(col(Pipeline.company_id).in_(companies)))).all()
            jobs = (await session.exec(select(AIJob).where(col(AIJob.company_id).in_(companies)))).all()
            posts = (await session.exec(select(SocialPost).where(col(SocialPost.company_id).in_(companies)))).all()
            blog_posts = (
                await session.exec(
                    select(sa.func.count()).select_from(BlogPost).where(col(BlogPost.company_id).in_(companies))
                )
            ).one()
        return {
            "pipelines": dict(Counter(str(p.status) for p in pipelines)),
            "jobs": dict(Counter(str(j.status) for j in jobs)),
            "jobs_total": len(jobs),
            "jobs_failed": [
                {"id": str(j.id), "type": str(j.job_type), "error": j.error_message[:300]}
                for j in jobs
                if j.status == JobStatus.FAILED
            ],
            "provider_failures": sum(j.provider_failures for j in jobs),
            "posts": dict(Counter(str(p.publish_state) for p in posts)),
            "post_ids": sorted(str(p.id) for p in posts),
            "published_ids": sorted(str(p.id) for p in posts if p.publish_state == PublishState.PUBLISHED),
            "posts_delivery_attempts_over_1": sum(1 for p in posts if p.delivery_attempts > 1),
            "blog_posts": int(blog_posts),
        }


# ---- kills and resumes -------------------------------------------------------------------------------------


@dataclass
class Kill:
    number: int
    phase: str
    at_seconds: float  # since the phase began
    pause_seconds: float
    in_flight: dict[uuid.UUID, str]  # job id -> job type, PROCESSING when the worker died
    marks: dict[uuid.UUID, int]  # job id -> its newest job_event id at the kill
    top_mark: int
    published: int
    restarted: float = 0.0
    log: Path | None = None  # the restarted worker's
    ready_seconds: float | None = None
    any_progress_seconds: float | None = None
    resumed: dict[uuid.UUID, float] = field(default_factory=dict)  # job id -> seconds from the restart
    kills_before_resumed: int = 0

    @property
    def open(self) -> bool:
        return self.any_progress_seconds is None or len(self.resumed) < len(self.in_flight)

    @property
    def resume_seconds(self) -> float | None:
        """From the restart until every interrupted job moved again (or, with none, until anything moved)."""
        if not self.in_flight:
            return self.any_progress_seconds
        if len(self.resumed) < len(self.in_flight):
            return None
        return max(self.resumed.values())

    @property
    def lost_attempts_failed(self) -> int:
        """The killed worker's attempts that the restarted one failed as it started."""
        return lost_attempts_failed(self.log) if self.log else 0

    def report(self) -> dict[str, Any]:
        return {
            "kill": self.number,
            "at_s": round(self.at_seconds, 1),
            "pause_s": round(self.pause_seconds, 2),
            "in_flight": dict(Counter(self.in_flight.values())),
            "worker_ready_s": _round(self.ready_seconds),
            "first_progress_s": _round(self.any_progress_seconds),
            "resume_s": _round(self.resume_seconds),
            "lost_attempts_failed": self.lost_attempts_failed,
            "interrupted_jobs_resumed": f"{len(self.resumed)}/{len(self.in_flight)}",
            "later_kills_before_resumed": self.kills_before_resumed,
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class Tracker:
    """Watches, after each restart, until the interrupted work runs again: a new job_event for every job that
    was PROCESSING at the kill (a new attempt writes one at once), and any new event or publish at all."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.kills: list[Kill] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tracker:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            pending = [k for k in self.kills if k.restarted and k.open]
            if pending:
                try:
                    marks = await self.observer.event_marks()
                    published = await self.observer.published()
                except Exception as error:  # a blip must not end the watch: the next look catches up
                    print(f"! tracker: {error!r}", file=sys.stderr)
                else:
                    self.resolve(pending, marks, published)
            await asyncio.sleep(POLL)

    @staticmethod
    def resolve(pending: list[Kill], marks: dict[uuid.UUID, int], published: int) -> None:
        moment = now()
        top = max(marks.values(), default=0)
        for kill in pending:
            seconds = moment - kill.restarted
            if kill.any_progress_seconds is None and (top > kill.top_mark or published > kill.published):
                kill.any_progress_seconds = seconds
            for job_id, mark in kill.marks.items():
                if job_id not in kill.resumed and marks.get(job_id, 0) > mark:
                    kill.resumed[job_id] = seconds

    async def kill_and_restart(self, worker: WorkerProcess, phase: str, began: float, rng: random.Random) -> Kill:
        worker.kill()
        at = now() - began
        # Read after the kill: nothing of the dead worker can change these rows any more.
        in_flight = await self.observer.processing()
        marks = await self.observer.event_marks()
        kill = Kill(
            number=len(self.kills) + 1,
            phase=phase,
            at_seconds=at,
            pause_seconds=rng.uniform(*KILL_PAUSE),
            in_flight=in_flight,
            marks={k: marks.get(k, 0) for k in in_flight},
            top_mark=max(marks.values(), default=0),
            published=await self.observer.published(),
        )
        for earlier in self.kills:
            if earlier.open:
                earlier.kills_before_resumed += 1
        self.kills.append(kill)
        print(
            f"  kill {kill.number} ({phase}) at {at:.1f} s: {len(in_flight)} job(s) in flight "
            f"{dict(Counter(in_flight.values()))}; restart in {kill.pause_seconds:.1f} s",
            file=sys.stderr,
        )
        await asyncio.sleep(kill.pause_seconds)
        worker.spawn()
        kill.restarted = now()
        kill.log = worker.log_path
        await asyncio.to_thread(worker.wait_ready, WORKER_READY_WITHIN)
        kill.ready_seconds = now() - kill.restarted
        print(
            f"    worker ready in {kill.ready_seconds:.1f} s; it failed {kill.lost_attempts_failed} lost attempt(s)",
            file=sys.stderr,
        )
        return kill


# ---- the run ------------------------------------------------------------------------------------------------


async def wait_until(condition: Callable[[], Awaitable[bool]], deadline: float, every: float = 0.1) -> bool:
    """True once `condition` holds, False when `deadline` passed first."""
    while not await condition():
        if now() > deadline:
            return False
        await asyncio.sleep(max(0.0, min(every, deadline - now())))
    return True


@dataclass
class Run:
    http: httpx.AsyncClient
    tenant: Tenant
    client: Client
    settings: Settings
    observer: Observer
    worker: WorkerProcess
    tracker: Tracker
    receiver: CountingReceiver
    args: argparse.Namespace
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)

    async def restart_worker(self, latency_ms: int) -> None:
        """A new worker (after the current one drained and stopped) whose offline provider takes `latency_ms`."""
        await asyncio.to_thread(self.worker.stop)
        self.worker.settings = self.settings.model_copy(update={"offline_latency_ms": latency_ms})
        await asyncio.to_thread(self.worker.start, WORKER_READY_WITHIN)

    def check_worker(self) -> None:
        """A worker that exited on its own (not killed by the bench) is noted and started again."""
        code = self.worker.died()
        if code is None:
            return
        log = self.worker.log_path
        self.unexpected_exits.append({"worker": self.worker.starts, "returncode": code, "log": str(log)})
        print(f"! worker #{self.worker.starts} exited on its own ({code}); restarting. {log}", file=sys.stderr)
        self.worker.spawn()

    async def start_pipeline(self, name: str) -> dict[str, str]:
        company = await self.http.post("/api/v1/companies", json={"name": name}, headers=self.tenant.headers())
        company.raise_for_status()
        company_id = company.json()["id"]
        self.observer.companies.append(uuid.UUID(company_id))
        options = {
            "topicsPerPersona": self.args.topics_per_persona,
            "autoApprovePersonas": True,
            "autoSelectCount": PERSONAS_SELECTED,
            "autoApproveTopics": True,
            "autoApproveBlogposts": True,
            "compressScheduleSeconds": self.args.compress_seconds,
        }
        body = {"month": month_after(datetime.now(UTC)), "platforms": PLATFORMS, "options": options}
        response = await self.http.post(
            f"/api/v1/ai/companies/{company_id}/pipelines/", json=body, headers=self.tenant.headers()
        )
        if response.status_code != 202:
            raise RuntimeError(f"starting a pipeline: {response.status_code} {response.text}")
        started = response.json()
        return {"company": company_id, "pipeline": started["pipelineId"], "workflow": started["workflowId"]}

    async def state(self, pipeline_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/ai/pipelines/{pipeline_id}/", headers=self.tenant.headers())
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    async def job(self, pipeline_id: str, job_id: uuid.UUID) -> dict[str, Any]:
        """One of the pipeline's jobs, read through the API."""
        for job in (await self.state(pipeline_id))["jobs"]:
            if job["id"] == str(job_id):
                return dict(job)
        raise RuntimeError(f"job {job_id} is not among pipeline {pipeline_id}'s jobs")

    @staticmethod
    def ended(state: dict[str, Any]) -> bool:
        """Ended, or waiting for a decision no one will make (autoApprove covers the three gates only)."""
        if state["status"] in ENDED:
            return True
        gates = [g.get("gate") for g in state.get("pendingApprovals") or [] if isinstance(g, dict)]
        unattended = any(g not in ("personas", "topics", "blogpost") for g in gates)
        return state["status"] == "AWAITING_APPROVAL" and unattended

    async def all_ended(self, pipelines: list[dict[str, str]]) -> bool:
        self.check_worker()
        for p in pipelines:
            if not self.ended(await self.state(p["pipeline"])):
                return False
        return True

    async def sleep_while_running(self, seconds: float, pipelines: list[dict[str, str]]) -> bool:
        """Sleeps; False as soon as every pipeline has ended."""
        return not await wait_until(lambda: self.all_ended(pipelines), now() + seconds, every=0.5)

    async def attempts(self, workflow_ids: list[str]) -> tuple[list[tuple[str, str, int]], int]:
        """(activity type, its input, the attempt that ran to the end) for every activity of these workflows
        and their children, read from the Temporal histories; and the largest history."""
        found: list[tuple[str, str, int]] = []
        queue, seen, largest = list(workflow_ids), set(), 0
        while queue:
            workflow_id = queue.pop()
            if workflow_id in seen:
                continue
            seen.add(workflow_id)
            history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            largest = max(largest, len(history.events))
            scheduled: dict[int, tuple[str, str]] = {}
            for event in history.events:
                if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                    queue.append(event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
                elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    a = event.activity_task_scheduled_event_attributes
                    data = b"".join(p.data for p in a.input.payloads).decode(errors="replace")
                    scheduled[event.event_id] = (a.activity_type.name, data)
                elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    s = event.activity_task_started_event_attributes
                    name, data = scheduled.get(s.scheduled_event_id, ("?", ""))
                    found.append((name, data, s.attempt))
        return found, largest

    async def end_phase(
        self, pipelines: list[dict[str, str]], began: float, deadline: float, failures: list[str], phase: str
    ) -> tuple[dict[str, Any], list[tuple[str, str, int]]]:
        """Waits until every pipeline has ended (or the deadline), then the phase's figures, checked; and the
        attempts of its activities (see attempts())."""
        in_time = await wait_until(lambda: self.all_ended(pipelines), deadline, every=1.0)
        finals = {p["pipeline"]: await self.state(p["pipeline"]) for p in pipelines}  # as they stand if late
        wall = now() - began
        await asyncio.sleep(2 * POLL)  # the tracker's last look
        counts = await self.observer.counts([uuid.UUID(p["company"]) for p in pipelines])
        expected = len(pipelines) * PERSONAS_SELECTED * self.args.topics_per_persona * len(PLATFORMS)
        deliveries = self.receiver.summary(set(counts["post_ids"]))
        acknowledged = set(self.receiver.acknowledged())
        attempts, largest = await self.attempts([p["workflow"] for p in pipelines])
        retried: Counter[str] = Counter()
        worst: dict[str, int] = {}
        for name, _, attempt in attempts:
            retried[name] += attempt - 1
            worst[name] = max(worst.get(name, 1), attempt)
        figures = {
            "pipelines": len(pipelines),
            "pipelines_by_status_api": dict(Counter(str(f["status"]) for f in finals.values())),
            "pipelines_by_status_db": counts["pipelines"],
            "ended_in_time": in_time,
            "not_completed": [
                {"pipeline": pid, "status": f["status"], "stage": f.get("stage"), "reason": f.get("reason")}
                for pid, f in finals.items()
                if f["status"] != "COMPLETED"
            ],
            "posts_expected": expected,
            "posts_rows": len(counts["post_ids"]),
            "posts_published": len(counts["published_ids"]),
            "posts_by_state": counts["posts"],
            "published_not_acknowledged_by_receiver": len(set(counts["published_ids"]) - acknowledged),
            "posts_delivery_attempts_over_1": counts["posts_delivery_attempts_over_1"],
            "blog_posts": counts["blog_posts"],
            "deliveries": deliveries,
            "duplicates": deliveries["duplicates"],
            "jobs_total": counts["jobs_total"],
            "jobs_by_status": counts["jobs"],
            "jobs_failed": counts["jobs_failed"],
            "provider_failures": counts["provider_failures"],
            "activity_retries": {name: n for name, n in retried.items() if n},
            "activity_attempts_max": {name: n for name, n in worst.items() if n > 1},
            "history_events_max": largest,
            "unexpected_worker_exits": list(self.unexpected_exits),
            "wall_seconds": round(wall, 1),
        }
        check(figures, failures, phase)
        self.unexpected_exits.clear()
        return figures, attempts


def check(figures: dict[str, Any], failures: list[str], phase: str) -> None:
    statuses = figures["pipelines_by_status_db"]
    if not figures["ended_in_time"]:
        failures.append(f"{phase}: not every pipeline ended before the timeout: {figures['pipelines_by_status_api']}")
    if statuses.get("COMPLETED", 0) != figures["pipelines"]:
        failures.append(
            f"{phase}: {statuses.get('COMPLETED', 0)}/{figures['pipelines']} pipelines COMPLETED "
            f"({statuses}; {figures['not_completed']})"
        )
    if figures["posts_published"] != figures["posts_expected"] or figures["posts_rows"] != figures["posts_expected"]:
        failures.append(
            f"{phase}: {figures['posts_published']} posts PUBLISHED of {figures['posts_expected']} "
            f"expected ({figures['posts_rows']} rows: {figures['posts_by_state']})"
        )
    if figures["duplicates"]:
        failures.append(f"{phase}: {figures['duplicates']} posts delivered twice: {figures['deliveries']}")
    if figures["published_not_acknowledged_by_receiver"]:
        failures.append(
            f"{phase}: {figures['published_not_acknowledged_by_receiver']} PUBLISHED posts the receiver "
            "never acknowledged"
        )
    jobs = figures["jobs_by_status"]
    if jobs.get("FAILED", 0):
        failures.append(f"{phase}: {jobs['FAILED']} jobs FAILED: {figures['jobs_failed'][:5]}")
    unfinished = jobs.get("PENDING", 0) + jobs.get("PROCESSING", 0)
    if unfinished:
        failures.append(f"{phase}: {unfinished} jobs never finished ({jobs})")
    if figures["unexpected_worker_exits"]:
        failures.append(
            f"{phase}: the worker exited {len(figures['unexpected_worker_exits'])} time(s) without being "
            f"killed: {figures['unexpected_worker_exits']}"
        )


async def phase_a(run: Run, rng: random.Random, failures: list[str]) -> dict[str, Any]:
    args = run.args
    print(f"phase A: {args.pipelines} pipelines, {args.kills} kills", file=sys.stderr)
    await run.restart_worker(args.latency_ms)
    began = now()
    deadline = began + args.timeout
    pipelines = [await run.start_pipeline(f"Crash Co {n}") for n in range(args.pipelines)]
    kills: list[Kill] = []
    for _ in range(args.kills):
        if now() > deadline or not await run.sleep_while_running(rng.uniform(*args.kill_gap), pipelines):
            break
        kills.append(await run.tracker.kill_and_restart(run.worker, "A", began, rng))
    figures, _ = await run.end_phase(pipelines, began, deadline, failures, "phase A")
    if len(kills) < args.kills:
        failures.append(
            f"phase A: only {len(kills)} of {args.kills} kills happened before every pipeline ended "
            "(use more pipelines or topics per persona)"
        )
    resumes = [k.resume_seconds for k in kills if k.resume_seconds is not None]
    return {
        **figures,
        "offline_latency_ms": args.latency_ms,
        "kills_requested": args.kills,
        "kills_done": len(kills),
        "kills_with_work_in_flight": sum(1 for k in kills if k.in_flight),
        "resume_seconds_p50": _round(statistics.median(resumes)) if resumes else None,
        "resume_seconds_max": _round(max(resumes)) if resumes else None,
        "kills_never_resumed": sum(1 for k in kills if k.resume_seconds is None),
        "lost_attempts_failed": sum(k.lost_attempts_failed for k in kills),
        "kills": [k.report() for k in kills],
    }


async def video_job(run: Run, pipeline_id: str, deadline: float) -> uuid.UUID:
    """The first generate_video job of the pipeline that is PROCESSING, read through the API."""
    while True:
        run.check_worker()
        state = await run.state(pipeline_id)
        for job in state["jobs"]:
            if job["jobType"] == JobType.GENERATE_VIDEO.value and job["status"] == JobStatus.PROCESSING.value:
                return uuid.UUID(job["id"])
        if run.ended(state):
            raise RuntimeError(f"phase B: the pipeline ended ({state['status']}) before a video job ran")
        if now() > deadline:
            raise RuntimeError(f"phase B: no generate_video job was PROCESSING before the timeout ({state['stage']})")
        await asyncio.sleep(0.2)


async def moved_again(run: Run, job_id: uuid.UUID, mark: int, deadline: float) -> list[str]:
    """The job's events after `mark`, once it has any (it moved again); empty when the deadline passed first."""
    while not (messages := await run.observer.events_after(job_id, mark)):
        run.check_worker()
        if now() > deadline:
            break
        await asyncio.sleep(0.1)
    return messages


async def phase_b(run: Run, rng: random.Random, failures: list[str]) -> dict[str, Any]:
    args = run.args
    print(f"phase B: {args.video_kills} kills during one video stage", file=sys.stderr)
    await run.restart_worker(args.video_latency_ms)
    began = now()
    deadline = began + args.timeout
    pipeline = await run.start_pipeline("Crash Co video")
    job_id = await video_job(run, pipeline["pipeline"], deadline)
    print(f"  video job {job_id} is PROCESSING at {now() - began:.1f} s", file=sys.stderr)
    kills: list[Kill] = []
    resumed_with: list[str] = []
    for number in range(1, args.video_kills + 1):
        await asyncio.sleep(rng.uniform(*VIDEO_KILL_DELAY))
        current = await run.job(pipeline["pipeline"], job_id)
        if current["status"] != JobStatus.PROCESSING.value:
            failures.append(
                f"phase B: the video job was {current['status']} before kill {number}; raise --video-latency-ms"
            )
            break
        kill = await run.tracker.kill_and_restart(run.worker, "B", began, rng)
        kills.append(kill)
        if job_id not in kill.in_flight:
            failures.append(f"phase B: the video job was not PROCESSING at kill {number}")
            break
        messages = await moved_again(run, job_id, kill.marks[job_id], deadline)
        if not messages:
            failures.append(f"phase B: the video job did not run again after kill {number} before the timeout")
            break
        again = await run.job(pipeline["pipeline"], job_id)
        resumed_with.append(messages[0])
        print(
            f"  video job moved again {now() - kill.restarted:.1f} s after restart {number}: "
            f"{again['status']} {again['progress']}% {messages[0]!r}",
            file=sys.stderr,
        )
        if again["status"] != JobStatus.PROCESSING.value and number < args.video_kills:
            failures.append(f"phase B: after kill {number} the video job was {again['status']}, not PROCESSING")
            break
    figures, attempts = await run.end_phase([pipeline], began, deadline, failures, "phase B")
    video_steps = (Activity.SUBMIT_VIDEO.value, Activity.POLL_VIDEO.value)
    video_attempts = [a for name, data, a in attempts if name in video_steps and str(job_id) in data]
    final_job = await run.job(pipeline["pipeline"], job_id)
    if len(kills) < args.video_kills:
        failures.append(f"phase B: {len(kills)} of {args.video_kills} kills during the video stage")
    if final_job["status"] != JobStatus.COMPLETED.value:
        failures.append(f"phase B: the video job ended {final_job['status']}: {final_job['errorMessage']}")
    return {
        **figures,
        "offline_latency_ms": args.video_latency_ms,
        "video_job": str(job_id),
        "video_job_status": final_job["status"],
        "video_kills_requested": args.video_kills,
        "video_kills_done": len(kills),
        "video_job_attempts": max(video_attempts) if video_attempts else None,
        "video_job_resumed_with": resumed_with,
        "resume_seconds": [_round(k.resumed.get(job_id)) for k in kills],
        "lost_attempts_failed": [k.lost_attempts_failed for k in kills],
        "kills": [k.report() for k in kills],
    }


async def bench(args: argparse.Namespace, log_dir: Path, failures: list[str]) -> dict[str, Any]:
    rng = random.Random(args.seed)
    began = now()
    result: dict[str, Any] = {"seed": args.seed, "logs": str(log_dir)}
    # DATA_DIR of this run only: the worker ledgers under it (worker-attempts) never mix with another run's.
    with tempfile.TemporaryDirectory(prefix="bench-crashes-") as scratch:
        async with dev_server() as env, migrated_database_with_tenant(args.database) as (url, _):
            port = free_port()
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=url,
                temporal_address=env.client.service_client.config.target_host,
                task_queue_suffix=f"-crash-{uuid.uuid4().hex[:8]}",
                ai_provider="offline",
                public_base_url=f"http://127.0.0.1:{port}",
                webhook_allow_private_networks=True,
                data_dir=Path(scratch) / "data",
                media_dir=Path(scratch) / "media",
                worker_graceful_shutdown_seconds=5.0,
            )
            worker = WorkerProcess(settings, log_dir)
            receiver = CountingReceiver()
            db = Database.from_url(url, pool_size=4)
            observer = Observer(db)
            try:
                tenant = await make_tenant(db, Tier.ULTIMATE, name="Crash bench")
                async with (
                    serving(create_app(settings), port) as api_url,
                    receiving(receiver) as hook_url,
                    httpx.AsyncClient(base_url=api_url, timeout=30) as http,
                    Tracker(observer) as tracker,
                ):
                    try:
                        hook = await http.put(
                            "/api/v1/tenant/webhook", json={"url": hook_url}, headers=tenant.headers(Role.ADMIN)
                        )
                        hook.raise_for_status()
                        receiver.secret = hook.json()["secret"]
                        run = Run(http, tenant, env.client, settings, observer, worker, tracker, receiver, args)
                        if args.phase in ("a", "both"):
                            result["phase_a"] = await phase_a(run, rng, failures)
                        if args.phase in ("b", "both"):
                            result["phase_b"] = await phase_b(run, rng, failures)
                    finally:
                        await asyncio.to_thread(worker.stop)  # while the API and the receiver still answer
            finally:
                await db.close()
    result["kills_total"] = len(tracker.kills)
    result["workers_started"] = worker.starts
    result["wall_seconds"] = round(now() - began, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pipelines", type=int, default=5, help="phase A: pipelines at once")
    parser.add_argument("--kills", type=int, default=20, help="phase A: worker SIGKILLs at random moments")
    parser.add_argument("--video-kills", type=int, default=4, help="phase B: SIGKILLs in a row during one video job")
    parser.add_argument(
        "--kill-gap",
        type=float,
        nargs=2,
        default=KILL_GAP,
        metavar=("MIN", "MAX"),
        help="phase A: seconds from a restarted worker's readiness to the next kill",
    )
    parser.add_argument("--phase", choices=["a", "b", "both"], default="both")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=5000,
        help="phase A: offline provider latency per call (long enough that the pipelines outlast 20 kills)",
    )
    parser.add_argument(
        "--video-latency-ms",
        type=int,
        default=2000,
        help="phase B: offline latency per call (a video makes 3 calls, polled between durable timers)",
    )
    parser.add_argument("--topics-per-persona", type=int, default=1, help="3 personas are selected")
    parser.add_argument("--compress-seconds", type=int, default=5, help="the month's posts go out within this")
    parser.add_argument("--timeout", type=float, default=1800, help="per phase: give up (and fail) after this")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(__file__).parent / "results"
    log_dir = out / f"crashes-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # unwinds like Ctrl-C
        return await bench(args, log_dir, failures)

    try:
        result = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every child was stopped", file=sys.stderr)
        sys.exit(130)
    result["expectations_failed"] = failures
    result["ok"] = not failures
    text = json.dumps(result, indent=2, default=str)
    print(text)
    (out / f"crashes_{stamp}.json").write_text(text)
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        sys.exit(1)
    print("\nOK: every pipeline COMPLETED, every post PUBLISHED once, no job FAILED", file=sys.stderr)


if __name__ == "__main__":
    main()
