"""PostgreSQL going away under load, as in a restart: the API answers 503 problem+json with Retry-After (never
500), logs one warning line per refusal and no traceback, keeps its job streams open, and serves again as soon as
the database is back, without a restart.

The API reaches PostgreSQL through a TCP proxy that the test cuts (every open connection reset, new ones refused)
and restores. A table lock held on a direct connection keeps requests waiting mid-query when the cut comes."""

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from temporalio.testing import WorkflowEnvironment

from api.deps import SessionDep
from api.errors import database_unreachable
from api.main import create_app
from models.db import Database
from models.enums import Role
from models.settings import Settings
from tests.support.seed import SeededTenant, seed_tenant
from tests.support.stack import free_port, make_tenant, serving
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
BURST = 60
API = "/api/v1"


@dataclass(frozen=True)
class Call:
    """One kind of request and what it answers while the database is up."""

    name: str
    method: str
    path: str
    expected: int
    role: Role = Role.MARKETER
    body: Any = None
    fresh_idempotency_key: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def calls_for(seeded: SeededTenant) -> list[Call]:
    company, job, pipeline = seeded.company_id, seeded.job_id, seeded.pipeline_id
    return [
        Call("companies list", "GET", f"{API}/companies", 200),
        Call("company create", "POST", f"{API}/companies", 201, body={"name": "Outage Co"}),
        # A bad body: the 422 handler looks up the key and the company first (refusal_before_body).
        Call("company create, bad body", "POST", f"{API}/companies", 422, body={"website": 5}),
        Call("company read", "GET", f"{API}/companies/{company}", 200),
        Call("job start", "POST", f"{API}/ai/companies/{company}/scrape-dna/", 202, fresh_idempotency_key=True),
        Call(
            "job start, replayed key",
            "POST",
            f"{API}/ai/companies/{company}/scrape-dna/",
            202,
            headers={"Idempotency-Key": f"outage-{uuid.uuid4()}"},
        ),
        Call("job read", "GET", f"{API}/ai/jobs/{job}/", 200),
        Call("company jobs", "GET", f"{API}/ai/companies/{company}/jobs/", 200),
        Call("stream token", "GET", f"{API}/ai/jobs/{job}/stream-token/", 200),
        Call("stream of an ended job", "GET", f"{API}/ai/jobs/{job}/stream/", 200),
        Call("pipeline read", "GET", f"{API}/ai/pipelines/{pipeline}/", 200),
        Call("approvals inbox", "GET", f"{API}/approvals/", 200, role=Role.SUPERVISOR),
        Call("tenant", "GET", f"{API}/tenant", 200),
        Call("api keys", "GET", f"{API}/apikeys", 200, role=Role.ADMIN),
        Call("personas", "GET", f"{API}/companies/{company}/personas", 200),
        Call("blog posts", "GET", f"{API}/companies/{company}/blogposts", 200),
        Call("media", "GET", f"{API}/companies/{company}/media", 200),
    ]


@dataclass
class Answer:
    call: Call
    status: int
    content_type: str
    retry_after: str | None
    body: str

    def is_outage_refusal(self) -> bool:
        """A 503 as the contract says: problem+json with Retry-After."""
        if self.status != 503 or self.content_type != PROBLEM or not self.retry_after:
            return False
        problem = json.loads(self.body)
        return bool(problem["status"] == 503 and problem["type"] and problem["title"] and problem["detail"])


async def send(http: httpx.AsyncClient, seeded: SeededTenant, call: Call) -> Answer:
    headers = {**seeded.tenant.headers(call.role), **call.headers}
    if call.fresh_idempotency_key:
        headers["Idempotency-Key"] = f"outage-{uuid.uuid4()}"
    response = await http.request(call.method, call.path, json=call.body, headers=headers)
    return Answer(
        call,
        response.status_code,
        response.headers.get("content-type", ""),
        response.headers.get("retry-after"),
        response.text,
    )


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{netloc}127.0.0.1:{proxy.port}", parts.path, parts.query, parts.fragment))


class Records(logging.Handler):
    """Every log record of the app, SQLAlchemy, asyncio and uvicorn (whose loggers do not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def recorded_logs() -> Iterator[Records]:
    records = Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(records)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(records)


@contextlib.asynccontextmanager
async def company_table_locked(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """Holds the company and rate_bucket tables on a direct connection: requests that touch them wait mid-query."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("LOCK TABLE company, rate_bucket IN ACCESS EXCLUSIVE MODE")
        try:
            yield conn
        finally:
            await conn.rollback()


LOCK_WAITERS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"


async def wait_for_lock_waiters(database_url: str, at_least: int) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for _ in range(200):
            row = await (await conn.execute(LOCK_WAITERS)).fetchone()
            assert row is not None
            if row[0] >= at_least:
                return int(row[0])
            await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} requests ever waited on the lock")


async def follow_stream(
    http: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    frames: list[dict[str, Any]],
    waiting: asyncio.Event,
) -> None:
    """Reads SSE frames into `frames` until the stream closes; sets `waiting` at the first keep-alive."""
    fields: dict[str, str] = {}
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith(":"):
                frames.append({"event": "comment"})
                waiting.set()
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif fields:
                frames.append({"event": fields.get("event"), "data": json.loads(fields["data"])})
                fields = {}


def settings_for(database_url: str, temporal: WorkflowEnvironment, media_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        task_queue_suffix=f"-{uuid.uuid4().hex[:8]}",  # no worker polls it: started jobs stay PENDING
        ai_provider="offline",
        media_dir=media_dir,
        sse_keepalive_seconds=0.2,
        rate_limit_ultimate_per_minute=100_000,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def seeded(db: Database, tmp_path: Path) -> SeededTenant:
    return await seed_tenant(db, await make_tenant(db, name="Outage tenant"), tmp_path)


async def test_a_database_outage_answers_503_and_the_api_recovers_without_a_restart(
    database_url: str, dev_temporal: WorkflowEnvironment, seeded: SeededTenant, tmp_path: Path
) -> None:
    upstream = urlsplit(database_url)
    if not upstream.hostname or upstream.hostname.startswith("/"):
        pytest.skip("the test PostgreSQL is not reachable over TCP")
    calls = calls_for(seeded)
    async with tcp_proxy(upstream.hostname, upstream.port or 5432) as proxy:
        settings = settings_for(through(proxy, database_url), dev_temporal, tmp_path)
        with recorded_logs() as logs:
            async with (
                serving(create_app(settings)) as base_url,
                httpx.AsyncClient(base_url=base_url, timeout=60) as http,
            ):
                # Up: every kind of request answers as usual, through the proxy.
                for call in calls:
                    answer = await send(http, seeded, call)
                    assert answer.status == call.expected, (call.name, answer.status, answer.body)
                assert proxy.accepted > 0

                # A job whose stream stays open through the outage; its workflow is terminated while the
                # database is away, so the stream's keep-alive check has to write the end once it is back.
                started = await send(http, seeded, next(c for c in calls if c.name == "job start"))
                live_job = json.loads(started.body)["jobId"]
                frames: list[dict[str, Any]] = []
                waiting_for_news = asyncio.Event()
                stream = asyncio.create_task(
                    follow_stream(
                        http,
                        f"{API}/ai/jobs/{live_job}/stream/",
                        seeded.tenant.headers(),
                        frames,
                        waiting_for_news,
                    )
                )
                await asyncio.wait_for(waiting_for_news.wait(), timeout=10)

                # In flight: requests wait on a lock mid-query (or for a pooled connection) when the proxy is cut.
                # Not a stream: one that has answered 200 when the cut comes stays open until the database is back
                # (as the live stream above shows), so the burst could not end before the restore.
                answered_at_once = [call for call in calls if not call.path.endswith("/stream/")]
                async with company_table_locked(database_url):
                    burst = [
                        asyncio.create_task(send(http, seeded, call))
                        for call in itertools.islice(itertools.cycle(answered_at_once), BURST)
                    ]
                    waiting = await wait_for_lock_waiters(database_url, at_least=10)
                    await proxy.cut()
                    in_flight = await asyncio.gather(*burst)
                await dev_temporal.client.get_workflow_handle(f"job-{live_job}").terminate("stopped during the outage")

                # Down: each kind of request, now refused at connect.
                down = [await send(http, seeded, call) for call in calls]
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"].startswith("unreachable"), ready.json()
                assert ready.json()["checks"]["temporal"] == "ok"
                assert (await http.get("/healthz")).status_code == 200
                await asyncio.sleep(1)  # a few of the stream's keep-alive checks run into the outage

                # Back: the same app serves again.
                await proxy.restore()
                back = [await send(http, seeded, call) for call in calls]
                assert (await http.get("/readyz")).status_code == 200
                (stream_outcome,) = await asyncio.wait_for(asyncio.gather(stream, return_exceptions=True), timeout=30)

    answers = in_flight + down
    other_5xx = [(a.call.name, a.status) for a in [*answers, *back] if a.status >= 500 and a.status != 503]
    assert not other_5xx, f"5xx other than 503: {other_5xx}"
    wrong = [
        (a.call.name, a.status, a.body) for a in answers if a.status != a.call.expected and not a.is_outage_refusal()
    ]
    assert not wrong, wrong
    assert all(a.is_outage_refusal() for a in down), [(a.call.name, a.status) for a in down]
    refused_in_flight = sum(a.is_outage_refusal() for a in in_flight)
    assert refused_in_flight >= waiting, f"only {refused_in_flight} of {BURST} requests in flight met the outage"
    back_wrong = [(a.call.name, a.status, a.body) for a in back if a.status != a.call.expected]
    assert not back_wrong, back_wrong

    assert stream_outcome is None, f"the stream broke off: {stream_outcome!r}"
    events = [frame for frame in frames if frame["event"] != "comment"]
    assert events and events[-1]["event"] == "end", events
    assert events[-1]["data"]["status"] == "FAILED" and "terminated" in events[-1]["data"]["errorMessage"]

    tracebacks = [
        f"{r.name}: {r.getMessage()}\n{logging.Formatter().formatException(r.exc_info) if r.exc_info else ''}"
        for r in logs.records
        if r.exc_info or r.levelno >= logging.ERROR
    ]
    assert not tracebacks, "\n".join(tracebacks)
    refusals = [r for r in logs.records if r.name == "api.errors" and r.levelno == logging.WARNING]
    assert len(refusals) == sum(a.status == 503 for a in answers)
    assert all("\n" not in r.getMessage() for r in refusals)


def raised_in(module: str, exc: BaseException) -> BaseException:
    """`exc` with a traceback through a function of `module`: as if that module had raised it."""
    namespace: dict[str, Any] = {"__name__": module}
    exec("def fail(exc):\n    raise exc\n", namespace)
    try:
        namespace["fail"](exc)
    except BaseException as raised:
        return raised
    raise AssertionError("fail() returned")


def wrapped(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


async def test_what_counts_as_the_database_being_away(db: Database) -> None:
    refusing = Database.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", pool_size=1)
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
            async with refusing.session() as session:
                await session.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
    finally:
        await refusing.close()
    with pytest.raises(sqlalchemy.exc.ProgrammingError) as bad_query:
        async with db.session() as session:
            await session.exec(sa.text("SELECT * FROM no_such_table"))  # type: ignore[call-overload]

    away: list[BaseException] = [
        refused.value,
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
        sqlalchemy.exc.InterfaceError(
            "SELECT 1", {}, psycopg.InterfaceError("the cursor is closed"), connection_invalidated=True
        ),
        raised_in("psycopg.connection_async", ConnectionRefusedError(111, "Connection refused")),
        raised_in("sqlalchemy.pool.base", OSError(113, "No route to host")),
        wrapped(RuntimeError("could not load"), psycopg.OperationalError("the connection is closed")),
    ]
    not_away: list[BaseException] = [
        bad_query.value,
        psycopg.errors.UndefinedTable("relation does not exist"),
        # The server is up and answered: a problem of the query or the data, not of reaching the server.
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the cursor is closed")),
        raised_in("api.routes.media", FileNotFoundError(2, "No such file or directory")),
        raised_in("httpx._transports.default", ConnectionRefusedError(111, "Connection refused")),
        ValueError("a bug"),
    ]
    assert [exc for exc in away if not database_unreachable(exc)] == []
    assert [exc for exc in not_away if database_unreachable(exc)] == []


async def test_a_bug_stays_a_500_while_the_database_is_up(
    database_url: str, dev_temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    app = create_app(settings_for(database_url, dev_temporal, tmp_path))

    async def bad_query(session: SessionDep) -> None:
        await session.exec(sa.text("SELECT * FROM no_such_table"))  # type: ignore[call-overload]

    def missing_file() -> None:
        (tmp_path / "missing").read_bytes()

    app.add_api_route("/bug/query", bad_query)
    app.add_api_route("/bug/file", missing_file)
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        for path in ("/bug/query", "/bug/file"):
            response = await http.get(path)
            assert response.status_code == 500, (path, response.text)
            assert response.headers["content-type"] == PROBLEM and "retry-after" not in response.headers


async def test_a_connection_lost_after_the_answer_is_no_error(
    database_url: str, dev_temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The session closes after the answer is sent: when the database went away in between, its ROLLBACK fails,
    and that is one warning line, not a traceback."""
    upstream = urlsplit(database_url)
    if not upstream.hostname or upstream.hostname.startswith("/"):
        pytest.skip("the test PostgreSQL is not reachable over TCP")
    queried, cut = asyncio.Event(), asyncio.Event()
    async with tcp_proxy(upstream.hostname, upstream.port or 5432) as proxy:
        app = create_app(settings_for(through(proxy, database_url), dev_temporal, tmp_path))

        async def read_then_answer(session: SessionDep) -> dict[str, int]:
            value = (await session.exec(sa.text("SELECT 1"))).scalar_one()  # type: ignore[call-overload]
            queried.set()
            await cut.wait()
            return {"value": value}

        app.add_api_route("/held", read_then_answer)
        with recorded_logs() as logs:
            async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
                answer = asyncio.create_task(http.get("/held"))
                await asyncio.wait_for(queried.wait(), timeout=10)
                await proxy.cut()
                cut.set()
                response = await answer
                await asyncio.sleep(0.2)  # the session closes after the answer
    assert response.status_code == 200 and response.json() == {"value": 1}
    assert [r.getMessage() for r in logs.records if r.exc_info or r.levelno >= logging.ERROR] == []
    lost = [r for r in logs.records if r.name == "api.deps" and r.levelno == logging.WARNING]
    assert len(lost) == 1 and "\n" not in lost[0].getMessage(), [r.getMessage() for r in logs.records]
