"""Speed benchmark (issue 12): every figure against an anchor measured in the same run, printed with their ratio.

    .venv/bin/python bench/bench_speed.py                      # all sections (about 20-40 min on 2 cores)
    .venv/bin/python bench/bench_speed.py --quick              # smoke-size run (a few minutes)
    .venv/bin/python bench/bench_speed.py --only reads,stage   # some sections
    .venv/bin/python bench/bench_speed.py --only parked --parked 2000

Sections (figure | anchor | target):

- reads:    GET a parked pipeline, open loop at 50 and 200 req/s | GET /healthz at the same rate | p99 <= 10x, < 50 ms
- starts:   POST scrape-dna, open loop at 25, 50, 100 req/s | bare ``client.start_workflow`` at each rate | at 100 req/s
            p99 < 50 ms, <= 2x; when the bare start cannot hold 100 req/s here, <= 2x at the highest rate it holds
- stage:    one DNA job, POST to row COMPLETED (latency 0) | ``execute_workflow`` with one no-op activity | <= 1.3x
- critical: one ULTIMATE pipeline at 500 ms a provider call | its critical path from the rows it wrote | <= 1.5x
- parked:   worker, Temporal and PostgreSQL memory with 1,000 / 5,000 / 10,000 pipelines at the personas gate
            | the idle worker's RSS | worker <= 400 MB at the top
- dna:      bench_dna_jobs.py's figures (throughput, accept and end-to-end p50/p95) | the provider time | info only

The system runs as an operator starts it: cli/stack.py's DevStack (embedded PostgreSQL unless DATABASE_URL is set,
the Temporal dev server, migrations, worker.py, the API) on free ports and a temporary data directory, removed at
the end. Worker settings that differ between sections (offline latency) restart only the worker. Latencies of the
open-loop sections are measured from each request's scheduled time, so a slow answer cannot hide the requests
queued behind it (no coordinated omission). Talks only to 127.0.0.1; figures go to stdout and bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from temporalio.client import Client
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.worker import Worker

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from bench_dna_jobs import percentile  # noqa: E402
from load_client import LoadClient  # noqa: E402
from speed_anchor import ONE_ACTIVITY_WORKFLOW, TRIVIAL_WORKFLOW, OneActivityWorkflow, TrivialWorkflow, noop  # noqa: E402

from cli.receiver import DemoReceiver, free_port, receiving  # noqa: E402
from cli.stack import WORKER_READY_LINE, DevStack  # noqa: E402
from models.contracts import TIER_PRIORITY  # noqa: E402
from models.enums import JobType, Tier  # noqa: E402
from models.names import COMPANY_ID, JOB_TYPE, TENANT_ID  # noqa: E402
from models.pipeline import month_after, month_bounds  # noqa: E402
from models.settings import Settings  # noqa: E402

SECTIONS = ("reads", "starts", "stage", "critical", "parked", "dna")
# Start requests per tenant and minute during the bench, for every tier: far above what any section sends, so
# that the figures measure starting work, not the limiter refusing it. Printed with the results.
BENCH_RATE_LIMIT = 1_000_000
REQUEST_TIMEOUT = 10.0
# The rate of issue 12's start target (p99 < 50 ms and <= 2x a bare start); other rates are shown for information.
START_TARGET_RATE = 100
TERMINAL_PIPELINE = ("COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED")
# The pipeline options of bench/bench_pipeline.py: every gate approved by the pipeline itself.
CRITICAL_OPTIONS: dict[str, Any] = {
    "topicsPerPersona": 2,
    "autoApprovePersonas": True,
    "autoApproveTopics": True,
    "autoApproveBlogposts": True,
    "compressScheduleSeconds": 5,
}
PLATFORMS = ["linkedin", "x", "instagram"]
PARKED_FILTER = "status = 'AWAITING_APPROVAL' AND pending_gate->>'gate' = 'personas'"

# Wide and soft-wrapped: the lines are meant to be read whole in a log or a CI output, not on an 80-column tty.
console = Console(highlight=False, width=200, soft_wrap=True)
say = console.print


@dataclass
class Sizes:
    """How much each section does; --quick shrinks all of it to a smoke run."""

    read_rates: tuple[int, ...] = (50, 200)
    read_seconds: float = 15.0
    start_rates: tuple[int, ...] = (25, 50, 100)
    start_seconds: float = 10.0
    start_tenants: int = 20
    stage_jobs: int = 30
    topics_per_persona: int = 2
    parked_marks: tuple[int, ...] = (1000, 5000, 10000)
    dna_jobs: int = 40
    dna_latency_ms: int = 200

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            read_seconds=3.0,
            start_seconds=3.0,
            start_tenants=5,
            stage_jobs=8,
            topics_per_persona=1,
            parked_marks=(100, 300),
            dna_jobs=10,
        )


@dataclass
class Result:
    """One line of the final table."""

    section: str
    figure: str
    figure_value: float
    anchor: str
    anchor_value: float
    unit: str
    target: str
    ok: bool | None  # None: no target (information only)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.figure_value / self.anchor_value if self.anchor_value else math.inf

    @property
    def verdict(self) -> str:
        return "info" if self.ok is None else ("OK" if self.ok else "MISS")


# --- measuring -------------------------------------------------------------------------------------------


@dataclass
class Load:
    """What an open-loop run saw: latency from each request's scheduled time, in ms (timeouts count as 10 s)."""

    name: str
    rate: float
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    late_ms: float = 0.0  # how far behind schedule the generator itself fell at worst

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q) if self.latencies_ms else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "requests": len(self.latencies_ms),
            "p50_ms": round(self.p(50), 2),
            "p99_ms": round(self.p(99), 2),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 2),
            "timeouts": self.timeouts,
            "outcomes": dict(self.outcomes),
            "generator_late_ms": round(self.late_ms, 2),
        }


async def open_loop(name: str, send: Callable[[int], Awaitable[str]], rate: float, seconds: float) -> Load:
    """Sends ``rate * seconds`` requests at fixed times, each in a task of its own, whatever the answers do.

    ``send(i)`` returns an outcome label (an HTTP status, "ok"); the latency counts from the scheduled time."""
    loop = asyncio.get_running_loop()
    load = Load(name=name, rate=rate)
    total = max(1, int(rate * seconds))
    begin = loop.time() + 0.05

    async def one(i: int, scheduled: float) -> None:
        try:
            outcome = await asyncio.wait_for(send(i), REQUEST_TIMEOUT)
        except TimeoutError:
            load.timeouts += 1
            load.outcomes["timeout"] += 1
            load.latencies_ms.append(REQUEST_TIMEOUT * 1000)
            return
        except Exception as exc:
            outcome = type(exc).__name__
        load.outcomes[outcome] += 1
        load.latencies_ms.append((loop.time() - scheduled) * 1000)

    tasks = []
    for i in range(total):
        scheduled = begin + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            load.late_ms = max(load.late_ms, -delay * 1000)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return load


def http_client(base_url: str) -> httpx.AsyncClient:
    """Several connections kept alive, as a busy client or a proxy in front of the API would hold."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT, limits=limits)


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


def _proc_field(pid: int, file: str, key: str) -> int:
    """A ``kB`` figure from /proc/<pid>/status or smaps_rollup; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def _all_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def group_cpu_seconds(pgid: int | None) -> float:
    """User and system CPU seconds used so far by every live process of a process group (a DevStack child)."""
    if pgid is None:
        return 0.0
    ticks = 0
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields[2:3] == [str(pgid)]:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def group_rss_kib(pgid: int | None) -> int:
    """RSS of every process in a process group (a DevStack child leads its own group): the worker, Temporal."""
    if pgid is None:
        return 0
    return sum(_proc_field(pid, "status", "VmRSS") for pid in _all_pids() if _stat_fields(pid)[2:3] == [str(pgid)])


def postgres_pss_kib(pg_dir: Path | None) -> int:
    """PSS summed over the postmaster and its children: shared buffers counted once, not once per backend."""
    if pg_dir is None:
        return 0
    try:
        postmaster = int((pg_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    pids = [postmaster] + [pid for pid in _all_pids() if _stat_fields(pid)[1:2] == [str(postmaster)]]
    return sum(_proc_field(pid, "smaps_rollup", "Pss") for pid in pids)


# --- the stack -------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    id: uuid.UUID
    key: str  # an admin key: may do a marketer's and a supervisor's work too

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Bench:
    """The stack under test and what the sections share: HTTP clients, a Temporal client, a database connection."""

    def __init__(self, stack: DevStack, http: httpx.AsyncClient, client: Client, db: psycopg.AsyncConnection) -> None:
        self.stack = stack
        self.http = http
        # The open-loop sections' client: httpx's pool costs the generator CPU per waiting request (load_client.py).
        self.load = LoadClient(stack.api_url)
        self.client = client
        self.db = db
        self.anchor_queue = f"bench-anchor-{uuid.uuid4().hex[:8]}"

    @property
    def pg_dir(self) -> Path | None:
        return None if self.stack.settings.database_url else self.stack.data_dir / "pg"

    def restart_worker(self, **overrides: Any) -> None:
        """Only the worker, with other settings (the API and the engine keep running, with their state)."""
        changed = {k: v for k, v in overrides.items() if getattr(self.stack.settings, k) != v}
        if not changed:
            return
        say(f"[dim]restarting the worker with {changed}[/]")
        self.stack.worker.stop()
        self.stack.settings = self.stack.settings.model_copy(update=changed)
        self.start_worker()

    def start_worker(self) -> None:
        """The stack's worker again, once it says it is ready."""
        self.stack.worker.start(self.stack.child_env())
        deadline = time.monotonic() + 90
        while WORKER_READY_LINE not in self.stack.worker.new_log_text():
            if self.stack.worker.exit_code() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not come back:\n{self.stack.worker.log_tail()}")
            time.sleep(0.1)

    async def scalar(self, sql: str, *params: Any) -> Any:
        row = await (await self.db.execute(sql, params)).fetchone()
        return None if row is None else row[0]

    async def tenants(self, count: int, tier: Tier = Tier.ULTIMATE) -> list[Tenant]:
        """Tenants with an admin key each, made as `content-pipeline tenant create` makes them."""
        from api.keys import create_tenant
        from models.db import Database

        db = Database.from_url(self.stack.database_url, pool_size=1)
        made = []
        try:
            for _ in range(count):
                async with db.session() as session:
                    tenant, key = await create_tenant(session, f"Bench {uuid.uuid4().hex[:6]}", tier)
                made.append(Tenant(tenant.id, key))
        finally:
            await db.close()
        return made

    async def companies(self, tenant: Tenant, count: int) -> list[uuid.UUID]:
        """Companies written straight to the database: setup, not a figure; thousands through the API take long."""
        from models.db import Database
        from models.tables import Company

        db = Database.from_url(self.stack.database_url, pool_size=1)
        try:
            rows = [Company(tenant_id=tenant.id, name=f"Bench company {n}") for n in range(count)]
            async with db.session() as session:
                session.add_all(rows)
                await session.commit()
            return [row.id for row in rows]
        finally:
            await db.close()

    async def start_pipeline(self, tenant: Tenant, company: uuid.UUID, options: dict[str, Any]) -> httpx.Response:
        body = {"month": month_after(datetime.now(UTC)), "platforms": PLATFORMS, "options": options}
        return await self.http.post(f"/api/v1/ai/companies/{company}/pipelines/", json=body, headers=tenant.headers)

    async def wait_jobs_done(self, within: float) -> int:
        """Waits until no job is PENDING or PROCESSING (the load of one section must not leak into the next)."""
        deadline = time.monotonic() + within
        while True:
            left = int(await self.scalar("SELECT count(*) FROM ai_job WHERE status IN ('PENDING', 'PROCESSING')"))
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)

    @contextlib.asynccontextmanager
    async def anchor_worker(self) -> AsyncIterator[None]:
        """A worker of our own in this process for the anchor workflows, on a task queue of our own."""
        worker = Worker(
            self.client,
            task_queue=self.anchor_queue,
            workflows=[TrivialWorkflow, OneActivityWorkflow],
            activities=[noop],
        )
        async with worker:
            yield


def bench_settings(overrides: dict[str, Any]) -> Settings:
    """What every child of the stack gets (DevStack passes explicitly set settings on as environment)."""
    values: dict[str, Any] = {
        "ai_provider": "offline",
        "offline_latency_ms": 0,
        "webhook_allow_private_networks": True,  # the critical section's receiver listens on 127.0.0.1
        "rate_limit_free_per_minute": BENCH_RATE_LIMIT,
        "rate_limit_pro_per_minute": BENCH_RATE_LIMIT,
        "rate_limit_ultimate_per_minute": BENCH_RATE_LIMIT,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(overrides: dict[str, Any]) -> AsyncIterator[Bench]:
    data_dir = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    stack = DevStack(
        bench_settings(overrides),
        data_dir=data_dir,
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        console=Console(stderr=True),
    )
    begun = time.monotonic()
    try:
        await asyncio.to_thread(stack.start)
        say(
            f"[dim]stack up in {time.monotonic() - begun:.1f} s: API {stack.api_url}, "
            f"Temporal {stack.temporal_address}[/]"
        )
        client = await Client.connect(stack.temporal_address, namespace=stack.namespace)
        async with (
            http_client(stack.api_url) as http,
            await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as db,
        ):
            bench = Bench(stack, http, client, db)
            try:
                yield bench
            finally:
                await bench.load.aclose()
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- sections --------------------------------------------------------------------------------------------


def line(name: str, text: str, result: Result) -> None:
    colour = {"OK": "green", "MISS": "red", "info": "cyan"}[result.verdict]
    say(f"[bold]{name:<8}[/] {text} | ratio {result.ratio:.2f}x ({result.target})  [{colour}]{result.verdict}[/]")


async def park_one(bench: Bench, tenant: Tenant, company: uuid.UUID) -> str:
    response = await bench.start_pipeline(tenant, company, {"autoApprovePersonas": False})
    response.raise_for_status()
    pipeline_id = str(response.json()["pipelineId"])
    deadline = time.monotonic() + 120
    while not await bench.scalar(f"SELECT count(*) FROM pipeline WHERE id = %s AND {PARKED_FILTER}", pipeline_id):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline {pipeline_id} did not reach the personas gate in 120 s")
        await asyncio.sleep(0.1)
    return pipeline_id


async def section_reads(bench: Bench, sizes: Sizes) -> list[Result]:
    [tenant] = await bench.tenants(1)
    [company] = await bench.companies(tenant, 1)
    pipeline_id = await park_one(bench, tenant, company)
    await bench.wait_jobs_done(60)
    path = f"/api/v1/ai/pipelines/{pipeline_id}/"

    async def get_pipeline(_: int) -> str:
        return str(await bench.load.request("GET", path, tenant.headers))

    async def healthz(_: int) -> str:
        return str(await bench.load.request("GET", "/healthz"))

    results = []
    for rate in sizes.read_rates:
        await open_loop("warm-up", get_pipeline, 20, 1)
        anchor = await open_loop("healthz", healthz, rate, sizes.read_seconds)
        figure = await open_loop("pipeline", get_pipeline, rate, sizes.read_seconds)
        ok = figure.p(99) <= 10 * anchor.p(99) and figure.p(99) < 50 and figure.timeouts == 0
        result = Result(
            "reads",
            f"GET pipeline p99 @{rate}/s",
            figure.p(99),
            "GET /healthz p99",
            anchor.p(99),
            "ms",
            "target <= 10x and < 50 ms",
            ok,
            {"figure": figure.summary(), "anchor": anchor.summary()},
        )
        line(
            "reads",
            f"GET pipeline @{rate}/s p50 {figure.p(50):.1f} p99 {figure.p(99):.1f} ms, {figure.timeouts} timeouts "
            f"{dict(figure.outcomes)} | /healthz p99 {anchor.p(99):.1f} ms",
            result,
        )
        results.append(result)
    return results


async def section_starts(bench: Bench, sizes: Sizes) -> list[Result]:
    tenants = await bench.tenants(sizes.start_tenants)
    total = int(max(sizes.start_rates) * sizes.start_seconds)
    per_tenant = math.ceil(total / len(tenants))
    # One company per start: no company runs two researches at once, and no tenant's bucket is the bottleneck.
    targets = [(t, c) for t in tenants for c in await bench.companies(t, per_tenant + 1)]

    async def bare_start(i: int) -> str:
        # The start the API makes (api/services/temporal.py), sent straight to the engine: the same id policy,
        # search attributes and priority, so the ratio is what the API adds to it.
        tenant, company = targets[i % len(targets)]
        await bench.client.start_workflow(
            TRIVIAL_WORKFLOW,
            id=f"bench-start-{uuid.uuid4()}",
            task_queue=bench.anchor_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID, str(tenant.id)),
                    SearchAttributePair(COMPANY_ID, str(company)),
                    SearchAttributePair(JOB_TYPE, JobType.GENERATE_DNA.value),
                ]
            ),
            priority=Priority(priority_key=TIER_PRIORITY[Tier.ULTIMATE]),
        )
        return "ok"

    async def scrape_dna(i: int) -> str:
        tenant, company = targets[i % len(targets)]
        return str(await bench.load.request("POST", f"/api/v1/ai/companies/{company}/scrape-dna/", tenant.headers))

    # The start path alone, as the anchor is: the anchor's workflows have no worker while it is measured, and
    # the stack's worker is stopped while the figure is (on this 2-core machine the 100 DNA jobs a second it
    # would run take the cores from the API; in production workers run elsewhere). Both backlogs run after.
    # Warm both paths first (the API processes' first requests open their pools), on companies of their own.
    await open_loop("warm-up", lambda i: scrape_dna(total + i), 20, 1)
    await open_loop("warm-up", bare_start, 20, 1)
    await bench.wait_jobs_done(60)
    measured: list[tuple[int, Load, Load, str, dict[str, Any]]] = []
    for rate in sizes.start_rates:
        # Where the CPU goes per start: the API's processes and the engine's, over each measurement.
        api_cpu, engine_cpu = group_cpu_seconds(bench.stack.api.pid), group_cpu_seconds(bench.stack.temporal.pid)
        anchor = await open_loop("start_workflow", bare_start, rate, sizes.start_seconds)
        engine_anchor = group_cpu_seconds(bench.stack.temporal.pid) - engine_cpu
        bench.stack.worker.stop()
        api_cpu, engine_cpu = group_cpu_seconds(bench.stack.api.pid), group_cpu_seconds(bench.stack.temporal.pid)
        try:
            figure = await open_loop("scrape-dna", scrape_dna, rate, sizes.start_seconds)
        finally:
            api_used = group_cpu_seconds(bench.stack.api.pid) - api_cpu
            engine_used = group_cpu_seconds(bench.stack.temporal.pid) - engine_cpu
            bench.start_worker()
        async with bench.anchor_worker():
            left = await bench.wait_jobs_done(600)
        starts = max(1, len(figure.latencies_ms))
        cpu = (
            f"CPU a start: API {api_used / starts * 1000:.1f} ms, engine {engine_used / starts * 1000:.1f} ms "
            f"(bare: engine {engine_anchor / max(1, len(anchor.latencies_ms)) * 1000:.1f} ms)"
        )
        details = {
            "figure": figure.summary(),
            "anchor": anchor.summary(),
            "tenants": len(tenants),
            "rate_limit_per_minute": BENCH_RATE_LIMIT,
            "jobs_left_running": left,
            "api_cpu_ms_per_start": round(api_used / starts * 1000, 2),
            "engine_cpu_ms_per_start": round(engine_used / starts * 1000, 2),
        }
        measured.append((rate, figure, anchor, cpu, details))
    return [
        start_result(rate, figure, anchor, cpu, details, measured, len(tenants))
        for rate, figure, anchor, cpu, details in measured
    ]


def engine_holds(anchor: Load) -> bool:
    """Whether the bare start kept up with its rate: every start answered and no queue that grows (a backlog that
    grows for the whole run reaches seconds; 250 ms is several times an unloaded start)."""
    return anchor.timeouts == 0 and anchor.p(99) < 250


def start_result(
    rate: int,
    figure: Load,
    anchor: Load,
    cpu: str,
    details: dict[str, Any],
    measured: list[tuple[int, Load, Load, str, dict[str, Any]]],
    tenants: int,
) -> Result:
    """A starts line. The target (p99 < 50 ms and <= 2x the bare start) is judged at 100 req/s; when the engine's
    bare start cannot hold 100 req/s on this machine, the issue says the ratio is what counts, and it is judged at
    the highest measured rate the bare start held (at a rate it cannot hold, both queue without bound and their
    ratio says nothing)."""
    held = [r for r, _, a, _, _ in measured if engine_holds(a)]
    target_held = START_TARGET_RATE in held
    judged = START_TARGET_RATE if target_held or not held else max(held)
    all_202 = set(figure.outcomes) == {"202"}
    target = "info"
    ok: bool | None = None
    if rate == judged and rate == START_TARGET_RATE and target_held:
        target = "target < 50 ms and <= 2x"
        ok = figure.p(99) < 50 and figure.p(99) <= 2 * anchor.p(99) and all_202
    elif rate == judged and rate != START_TARGET_RATE:
        target = f"<= 2x (bare start cannot hold {START_TARGET_RATE}/s here; judged at {rate}/s)"
        ok = figure.p(99) <= 2 * anchor.p(99) and all_202
    elif rate == START_TARGET_RATE and not held:
        target = "none judged: the bare start held no measured rate"
    result = Result(
        "starts",
        f"POST scrape-dna p99 @{rate}/s",
        figure.p(99),
        "client.start_workflow p99",
        anchor.p(99),
        "ms",
        target,
        ok,
        {**details, "bare_start_held": engine_holds(anchor)},
    )
    held_note = "" if engine_holds(anchor) else ", bare start did NOT hold this rate"
    line(
        "starts",
        f"POST scrape-dna @{rate}/s p50 {figure.p(50):.1f} p99 {figure.p(99):.1f} ms "
        f"{dict(figure.outcomes)} ({tenants} tenants, rate limits raised to {BENCH_RATE_LIMIT}/min, "
        f"{figure.outcomes.get('429', 0)} refused, workers paused for both; {cpu}) | start_workflow p99 "
        f"{anchor.p(99):.1f} ms{held_note}",
        result,
    )
    return result


async def section_stage(bench: Bench, sizes: Sizes) -> list[Result]:
    """Sequential one-stage jobs, POST to the row's COMPLETED, polled every 2 ms on one connection."""
    [tenant] = await bench.tenants(1)
    companies = await bench.companies(tenant, sizes.stage_jobs)
    figure_ms: list[float] = []
    calls: list[int] = []
    for company in companies:
        begin = time.perf_counter()
        response = await bench.http.post(f"/api/v1/ai/companies/{company}/scrape-dna/", headers=tenant.headers)
        response.raise_for_status()
        job_id = response.json()["jobId"]
        while True:
            status = await bench.scalar("SELECT status FROM ai_job WHERE id = %s", job_id)
            if status in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            if time.perf_counter() - begin > 60:
                raise RuntimeError(f"job {job_id} did not finish in 60 s")
            await asyncio.sleep(0.002)
        if status != "COMPLETED":
            raise RuntimeError(f"job {job_id} ended {status}")
        figure_ms.append((time.perf_counter() - begin) * 1000)
        calls.append(
            int(await bench.scalar("SELECT jsonb_array_length(usage_records) FROM ai_job WHERE id = %s", job_id))
        )
    latency = bench.stack.settings.offline_latency_ms
    provider_ms = statistics.median(calls) * latency
    anchor_ms: list[float] = []
    async with bench.anchor_worker():
        for _ in range(sizes.stage_jobs):
            begin = time.perf_counter()
            await bench.client.execute_workflow(
                ONE_ACTIVITY_WORKFLOW, id=f"bench-stage-{uuid.uuid4()}", task_queue=bench.anchor_queue
            )
            anchor_ms.append((time.perf_counter() - begin) * 1000)
    figure = statistics.median(figure_ms) - provider_ms
    anchor = statistics.median(anchor_ms)
    result = Result(
        "stage",
        f"DNA job overhead median ({sizes.stage_jobs} sequential)",
        figure,
        "execute_workflow + 1 no-op activity median",
        anchor,
        "ms",
        "target <= 1.3x",
        figure <= 1.3 * anchor,
        {
            "figure_ms": [round(v, 1) for v in figure_ms],
            "anchor_ms": [round(v, 1) for v in anchor_ms],
            "provider_calls": calls,
            "offline_latency_ms": latency,
        },
    )
    line(
        "stage",
        f"DNA job POST->COMPLETED median {statistics.median(figure_ms):.1f} ms - provider {provider_ms:.0f} ms "
        f"= {figure:.1f} ms (p90 {percentile(figure_ms, 90):.1f}) | 1-activity workflow median {anchor:.1f} ms "
        f"(p90 {percentile(anchor_ms, 90):.1f})",
        result,
    )
    return [result]


def provider_seconds(records: list[dict[str, Any]] | None, latency_ms: int) -> float:
    """A job's provider time on its own critical path: the union of its calls' [start, start + latency] intervals
    (calls made in parallel, such as a blog post's sections, count once); `calls x latency` for records without a
    start time."""
    spans = []
    for record in records or []:
        began = record.get("started_at")
        if not began:
            return len(records or []) * latency_ms / 1000
        start = datetime.fromisoformat(began).timestamp()
        spans.append((start, start + int(record.get("latency_ms") or 0) / 1000))
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


async def critical_path(bench: Bench, pipeline_id: str, latency_ms: int, compress: float) -> tuple[float, list[str]]:
    """The least the pipeline could have taken: its longest chain of dependent stages, each counted as its provider
    time alone (provider_seconds: parallel calls once), and every post published no earlier than its place in the
    compressed month.

    dna -> personas -> topics (of the branch's persona) -> per topic: blog -> [social (per platform, in parallel)
    -> images (in parallel)] beside [the video] -> each post at epoch + its fraction of the compressed month, the
    epoch being when the topics were approved (workflows/children.py)."""
    jobs = await (
        await bench.db.execute(
            "SELECT job_type, persona_id, topic_id, blog_post_id, usage_records FROM ai_job WHERE pipeline_id = %s",
            (pipeline_id,),
        )
    ).fetchall()
    month = str(await bench.scalar("SELECT month FROM pipeline WHERE id = %s", pipeline_id))
    # Each blog post with its topic's persona, and the publish times of its social posts.
    blogs = await (
        await bench.db.execute(
            "SELECT b.id, b.topic_id, t.persona_id, array_agg(s.publish_at) FROM blog_post b "
            "JOIN topic t ON t.id = b.topic_id JOIN social_post s ON s.blog_post_id = b.id "
            "WHERE b.id IN (SELECT blog_post_id FROM ai_job WHERE pipeline_id = %s) GROUP BY b.id, t.persona_id",
            (pipeline_id,),
        )
    ).fetchall()

    def seconds(job_type: str, **match: Any) -> list[float]:
        keys = {"persona_id": 1, "topic_id": 2, "blog_post_id": 3}
        return [
            provider_seconds(row[4], latency_ms)
            for row in jobs
            if row[0] == job_type and all(row[keys[k]] == v for k, v in match.items())
        ] or [0.0]

    dna, personas = max(seconds("generate_dna")), max(seconds("generate_personas"))
    start, end = month_bounds(month)
    span = (end - start).total_seconds()
    best: tuple[float, list[str]] = (0.0, [])
    for blog_post_id, topic_id, persona_id, publish_times in blogs:
        topics = max(seconds("generate_topics", persona_id=persona_id))
        blog = sum(seconds("generate_blogpost", topic_id=topic_id))  # revisions, if any, one after another
        social = max(seconds("generate_social", blog_post_id=blog_post_id))
        image = max(seconds("generate_image", blog_post_id=blog_post_id))
        video = max(seconds("generate_video", blog_post_id=blog_post_id))
        before_s = dna + personas + topics
        made_s = before_s + blog + max(social + image, video)
        last = max((min(1.0, max(0.0, (at - start).total_seconds() / span)) for at in publish_times if at), default=0)
        published_s = before_s + compress * last
        total = max(made_s, published_s)
        if total > best[0]:
            chain = [
                f"dna {dna:.1f} s",
                f"personas {personas:.1f}",
                f"topics {topics:.1f}",
                f"blog {blog:.1f}",
                f"(social {social:.1f} (max of {len(PLATFORMS)}) -> image {image:.1f} (max)) beside video {video:.1f}",
                f"= {made_s:.1f} s of provider time at {latency_ms} ms a call; its last post due {published_s:.1f} s "
                f"({before_s:.1f} s + {last:.2f} of the {compress:.0f} s month)",
            ]
            best = (total, chain)
    return best


async def section_critical(bench: Bench, sizes: Sizes) -> list[Result]:
    latency = 500
    bench.restart_worker(offline_latency_ms=latency)
    [tenant] = await bench.tenants(1)
    [company] = await bench.companies(tenant, 1)
    receiver = DemoReceiver()
    options = {**CRITICAL_OPTIONS, "topicsPerPersona": sizes.topics_per_persona}
    async with receiving(receiver) as hook_url:
        hook = await bench.http.put("/api/v1/tenant/webhook", json={"url": hook_url}, headers=tenant.headers)
        hook.raise_for_status()
        receiver.secret = hook.json()["secret"]
        begin = time.perf_counter()
        response = await bench.start_pipeline(tenant, company, options)
        response.raise_for_status()
        pipeline_id = str(response.json()["pipelineId"])
        while True:
            status = await bench.scalar("SELECT status FROM pipeline WHERE id = %s", pipeline_id)
            if status in TERMINAL_PIPELINE:
                break
            if time.perf_counter() - begin > 900:
                raise RuntimeError(f"pipeline {pipeline_id} did not end in 15 min")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - begin
    anchor, chain = await critical_path(bench, pipeline_id, latency, float(options["compressScheduleSeconds"]))
    jobs = int(await bench.scalar("SELECT count(*) FROM ai_job WHERE pipeline_id = %s", pipeline_id))
    result = Result(
        "critical",
        "ULTIMATE pipeline to COMPLETED",
        elapsed,
        "critical path",
        anchor,
        "s",
        "target <= 1.5x",
        status == "COMPLETED" and elapsed <= 1.5 * anchor,
        {"status": status, "jobs": jobs, "posts_delivered": len(receiver.posts), "chain": chain, "options": options},
    )
    say(f"[dim]critical chain: {' -> '.join(chain)}[/]")
    line(
        "critical",
        f"ULTIMATE pipeline {status} in {elapsed:.1f} s ({jobs} jobs, {len(receiver.posts)} posts delivered, "
        f"{latency} ms a call) | critical path {anchor:.1f} s",
        result,
    )
    return [result]


def memory(bench: Bench) -> dict[str, float]:
    return {
        "worker_mib": mib(group_rss_kib(bench.stack.worker.pid)),
        "temporal_mib": mib(group_rss_kib(bench.stack.temporal.pid)),
        "postgres_pss_mib": mib(postgres_pss_kib(bench.pg_dir)),
    }


async def section_parked(bench: Bench, sizes: Sizes) -> list[Result]:
    """Pipelines parked at the personas gate, started through the API as fast as it takes them."""
    bench.restart_worker(offline_latency_ms=0)
    await asyncio.sleep(3)  # the worker's start-up allocations settle
    idle = memory(bench)
    cache = bench.stack.settings.worker_max_cached_workflows
    say(f"[dim]idle: {idle}; worker_max_cached_workflows={cache}[/]")
    top = sizes.parked_marks[-1]
    tenants = await bench.tenants(max(4, top // 250))  # many tenants: no one bucket row serialises the starts
    per_tenant = math.ceil(top / len(tenants))
    targets = [(t, c) for t in tenants for c in await bench.companies(t, per_tenant)][:top]
    already = int(await bench.scalar(f"SELECT count(*) FROM pipeline WHERE {PARKED_FILTER}"))
    refused: Counter[str] = Counter()
    results = []
    next_target = 0
    begin = time.perf_counter()

    async def starter(queue: asyncio.Queue[tuple[Tenant, uuid.UUID]]) -> None:
        while not queue.empty():
            tenant, company = queue.get_nowait()
            while True:
                try:
                    response = await bench.start_pipeline(tenant, company, {"autoApprovePersonas": False})
                except httpx.HTTPError as exc:
                    refused[type(exc).__name__] += 1
                    await asyncio.sleep(1)
                    continue
                if response.status_code == 202:
                    break
                refused[str(response.status_code)] += 1
                if response.status_code not in (429, 503):
                    raise RuntimeError(f"start refused: {response.status_code} {response.text}")
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    for mark in sizes.parked_marks:
        queue: asyncio.Queue[tuple[Tenant, uuid.UUID]] = asyncio.Queue()
        for target in targets[next_target:mark]:
            queue.put_nowait(target)
        next_target = mark
        await asyncio.gather(*(starter(queue) for _ in range(16)))
        started_s = time.perf_counter() - begin
        deadline = time.monotonic() + max(600, mark * 0.5)
        while (
            parked := int(await bench.scalar(f"SELECT count(*) FROM pipeline WHERE {PARKED_FILTER}"))
        ) < mark + already:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {parked - already} of {mark} pipelines reached the personas gate")
            await asyncio.sleep(1)
        parked_s = time.perf_counter() - begin
        await asyncio.sleep(3)  # let the last workflow tasks finish before reading memory
        now = memory(bench)
        worker = now["worker_mib"]
        is_top = mark == sizes.parked_marks[-1]
        result = Result(
            "parked",
            f"worker RSS with {mark} parked",
            worker,
            "idle worker RSS",
            idle["worker_mib"],
            "MiB",
            "target worker <= 400 MB at the top" if is_top else "info",
            (worker * 1.048576 <= 400) if is_top else None,
            {
                **now,
                "parked": mark,
                "idle": idle,
                "started_after_s": round(started_s, 1),
                "parked_after_s": round(parked_s, 1),
                "refused": dict(refused),
                "worker_max_cached_workflows": cache,
            },
        )
        line(
            "parked",
            f"{mark} parked after {parked_s:.0f} s ({mark / parked_s:.0f}/s): worker {worker:.0f} MiB, "
            f"Temporal {now['temporal_mib']:.0f} MiB, PostgreSQL {now['postgres_pss_mib']:.0f} MiB (PSS) "
            f"| idle worker {idle['worker_mib']:.0f} MiB (cache {cache} workflows)",
            result,
        )
        results.append(result)
    return results


async def section_dna(bench: Bench, sizes: Sizes) -> list[Result]:
    """bench_dna_jobs.py's figures on this stack: jobs sent one after another, all running at once."""
    latency = sizes.dna_latency_ms
    bench.restart_worker(offline_latency_ms=latency)
    [tenant] = await bench.tenants(1)
    companies = await bench.companies(tenant, sizes.dna_jobs)
    accept_ms: list[float] = []
    sent: dict[str, float] = {}
    begin = time.perf_counter()
    for company in companies:
        t0 = time.perf_counter()
        response = await bench.http.post(f"/api/v1/ai/companies/{company}/scrape-dna/", headers=tenant.headers)
        response.raise_for_status()
        accept_ms.append((time.perf_counter() - t0) * 1000)
        sent[response.json()["jobId"]] = t0
    done: dict[str, float] = {}
    while len(done) < len(sent):
        rows = await (
            await bench.db.execute(
                "SELECT id::text, status FROM ai_job WHERE id = ANY(%s::uuid[]) AND status IN "
                "('COMPLETED', 'FAILED', 'CANCELLED')",
                ([j for j in sent if j not in done],),
            )
        ).fetchall()
        now = time.perf_counter()
        for job_id, status in rows:
            if status != "COMPLETED":
                raise RuntimeError(f"DNA job {job_id} ended {status}")
            done[job_id] = now
        if time.perf_counter() - begin > 600:
            raise RuntimeError("the DNA jobs did not finish in 10 min")
        await asyncio.sleep(0.02)
    wall = time.perf_counter() - begin
    e2e = [(done[j] - sent[j]) * 1000 for j in sent]
    calls = int(
        await bench.scalar(
            "SELECT max(jsonb_array_length(usage_records)) FROM ai_job WHERE id = ANY(%s::uuid[])", list(sent)
        )
    )
    concurrency = bench.stack.settings.worker_ai_concurrency
    ideal = math.ceil(len(sent) / concurrency) * calls * latency / 1000  # the provider's time at the AI slot limit
    figures = {
        "jobs": len(sent),
        "offline_latency_ms": latency,
        "ai_concurrency": concurrency,
        "provider_calls_per_job": calls,
        "wall_seconds": round(wall, 2),
        "jobs_per_second": round(len(sent) / wall, 2),
        "accept_ms_p50": round(statistics.median(accept_ms), 1),
        "accept_ms_p95": round(percentile(accept_ms, 95), 1),
        "end_to_end_ms_p50": round(statistics.median(e2e), 1),
        "end_to_end_ms_p95": round(percentile(e2e, 95), 1),
    }
    result = Result(
        "dna", f"{len(sent)} DNA jobs wall", wall, "provider time at the slot limit", ideal, "s", "info", None, figures
    )
    line(
        "dna",
        f"{len(sent)} jobs @{latency} ms x{calls} call(s), {concurrency} AI slots: {wall:.2f} s "
        f"({figures['jobs_per_second']} jobs/s), accept p50 {figures['accept_ms_p50']} "
        f"p95 {figures['accept_ms_p95']} ms, "
        f"end-to-end p50 {figures['end_to_end_ms_p50']} p95 {figures['end_to_end_ms_p95']} ms | ideal {ideal:.2f} s",
        result,
    )
    return [result]


# Run order: sections that share the worker's settings together, the heaviest (parked) last.
ORDER: list[tuple[str, Callable[[Bench, Sizes], Awaitable[list[Result]]]]] = [
    ("reads", section_reads),
    ("starts", section_starts),
    ("stage", section_stage),
    ("dna", section_dna),
    ("critical", section_critical),
    ("parked", section_parked),
]


async def bench(only: list[str], sizes: Sizes, overrides: dict[str, Any]) -> list[Result]:
    results: list[Result] = []
    async with running(overrides) as stack:
        for name, run in ORDER:
            if name not in only:
                continue
            say(f"[bold]— {name}[/]")
            begun = time.perf_counter()
            try:
                results += await run(stack, sizes)
            except Exception as exc:  # one broken section does not lose the others' figures
                say(f"[red]{name} failed: {type(exc).__name__}: {exc}[/]")
                results.append(Result(name, "failed", math.nan, str(exc)[:200], math.nan, "", "", False))
            say(f"[dim]{name} took {time.perf_counter() - begun:.0f} s[/]")
            await stack.wait_jobs_done(120)
    return results


def show(results: list[Result], seconds: float) -> None:
    """The compact table: one row per figure, plain text so that it survives logs and pipes."""
    rows = [("section", "figure", "value", "anchor", "value", "ratio", "target", "")]
    for r in results:
        rows.append(
            (
                r.section,
                r.figure,
                f"{r.figure_value:.1f} {r.unit}",
                r.anchor,
                f"{r.anchor_value:.1f} {r.unit}",
                f"{r.ratio:.2f}x",
                r.target,
                r.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    say(f"[bold]bench_speed: {len(results)} figures in {seconds:.0f} s[/]")
    for n, row in enumerate(rows):
        text = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        say(text, markup=False, style="bold" if n == 0 else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="smoke-size run: a few seconds per section")
    parser.add_argument("--parked", type=int, help="the top of the parked section (default 10000; --quick 300)")
    parser.add_argument("--max-cached-workflows", type=int, help="WORKER_MAX_CACHED_WORKFLOWS for the worker")
    parser.add_argument(
        "--start-rates",
        help="comma-separated request rates of the starts section (default 25,50,100; 100 is the target)",
    )
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.parked:
        sizes.parked_marks = (*(m for m in sizes.parked_marks if m < args.parked), args.parked)
    overrides: dict[str, Any] = {}
    if args.start_rates:
        sizes.start_rates = tuple(int(r) for r in args.start_rates.split(","))
    if args.max_cached_workflows is not None:
        overrides["worker_max_cached_workflows"] = args.max_cached_workflows
    say(
        f"bench_speed: {', '.join(only)}{' (quick)' if args.quick else ''}; start rate limits raised to "
        f"{BENCH_RATE_LIMIT}/min per tenant for every tier (RATE_LIMIT_*_PER_MINUTE), offline provider"
    )
    begun = time.perf_counter()
    results = asyncio.run(bench(only, sizes, overrides))
    seconds = time.perf_counter() - begun
    show(results, seconds)
    out = BENCH_DIR / "results"
    out.mkdir(exist_ok=True)
    path = out / f"speed_{time.strftime('%Y%m%d_%H%M%S')}.json"
    payload = {
        "when": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "sizes": asdict(sizes),
        "rate_limit_per_minute": BENCH_RATE_LIMIT,
        "results": [{**asdict(r), "ratio": r.ratio, "verdict": r.verdict} for r in results],
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    say(f"[dim]written to {path.relative_to(BENCH_DIR.parent)}[/]")


if __name__ == "__main__":
    main()
