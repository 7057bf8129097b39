"""Job streams: the trigger that records and announces every change, and the SSE endpoint over HTTP (order,
resumption, the end, keep-alives, stream tokens, auth, a lost listener connection)."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from api.events import APPLICATION_NAME
from api.keys import principal_for_key
from api.services.stream_tokens import sign_stream_token
from models.db import Database
from models.enums import JobType, Role
from models.tables import AIJob, Company
from tests.activities.test_dna_job import new_company
from tests.support.stack import RunningStack, Tenant, make_tenant, running_stack

PROBLEM = "application/problem+json"


@dataclass
class Frame:
    event: str  # "progress", "end", or "comment" for a `: ...` line
    id: int | None
    data: Any


async def sse_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield Frame("comment", None, line[1:].strip())
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            yield Frame(fields["event"], int(fields["id"]) if "id" in fields else None, json.loads(fields["data"]))
            fields = {}


@dataclass
class Streamed:
    response: httpx.Response
    frames: list[Frame]

    @property
    def progress(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.event == "progress"]


def stream_path(job_id: object) -> str:
    return f"/api/v1/ai/jobs/{job_id}/stream/"


async def read_stream(http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> Streamed:
    """The whole stream, which must end by itself; an error answer's body stays readable."""
    async with asyncio.timeout(30), http.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return Streamed(response, [])
        return Streamed(response, [frame async for frame in sse_frames(response)])


async def start_dna_job(stack: RunningStack, tenant: Tenant, company: str) -> str:
    company_id = await new_company(stack, tenant, company)
    started = await stack.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers())
    assert started.status_code == 202, started.text
    return str(started.json()["jobId"])


async def test_the_trigger_records_each_change_in_order_and_notifies(
    db: Database, database_url: str, tenant: Tenant
) -> None:
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as writer,
    ):
        await listener.execute("LISTEN ai_job_events")
        async with db.session() as session:
            company = Company(tenant_id=tenant.id, name="Trigger Co")
            session.add(company)
            await session.flush()
            job = AIJob(
                tenant_id=tenant.id, company_id=company.id, job_type=JobType.GENERATE_DNA, progress_message="queued"
            )
            session.add(job)
            await session.commit()
        for change in (
            "status = 'PROCESSING', progress_message = 'working'",
            "progress = 50",
            "progress = 50, progress_message = 'working'",  # the same values: no event
            "cost_usd = 1",  # not a column the stream shows: no event
            "status = 'COMPLETED', progress = 100",
        ):
            await writer.execute(f"UPDATE ai_job SET {change} WHERE id = %s", (job.id,))

        rows = await (
            await writer.execute(
                "SELECT id, status, progress, message FROM job_event WHERE job_id = %s ORDER BY id", (job.id,)
            )
        ).fetchall()
        assert [row[1:] for row in rows] == [
            ("PENDING", 0, "queued"),
            ("PROCESSING", 0, "working"),
            ("PROCESSING", 50, "working"),
            ("COMPLETED", 100, "working"),
        ]
        heard = [json.loads(n.payload) for n in [n async for n in listener.notifies(timeout=5, stop_after=len(rows))]]
        assert heard == [{"job": str(job.id), "event": row[0]} for row in rows]


@dataclass
class StreamedJob:
    tenant: Tenant
    job_id: str
    live: Streamed


@pytest.fixture(scope="module")
async def streamed(stack: RunningStack, db: Database) -> StreamedJob:
    """A DNA job streamed from the moment it was accepted to its end."""
    tenant = await make_tenant(db, name="Stream tenant")
    job_id = await start_dna_job(stack, tenant, "Stream Co")
    return StreamedJob(tenant, job_id, await read_stream(stack.http, stream_path(job_id), tenant.headers()))


@pytest.mark.e2e
async def test_a_jobs_events_arrive_in_order_and_the_stream_ends_with_one_end(streamed: StreamedJob) -> None:
    response, events = streamed.live.response, streamed.live.progress
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"

    ids = [event.id or 0 for event in events]
    assert ids == sorted(set(ids)) and ids[0] > 0, "event ids increase"
    progress = [event.data["progress"] for event in events]
    assert progress == sorted(progress), "progress never goes back"
    assert events[0].data["status"] == "PENDING" and events[0].data["message"] == "queued"
    assert "PROCESSING" in {event.data["status"] for event in events}
    assert events[-1].data["status"] == "COMPLETED" and events[-1].data["progress"] == 100
    assert len(events) >= 5, "each progress step is an event"
    for event in events:
        assert event.data["jobId"] == streamed.job_id
        assert datetime.fromisoformat(event.data["at"]).tzinfo is not None

    assert [frame.event for frame in streamed.live.frames].count("end") == 1
    end = streamed.live.frames[-1]
    assert end.event == "end" and end.id is None
    assert end.data["status"] == "COMPLETED" and end.data["progress"] == 100 and end.data["errorMessage"] == ""
    assert end.data["resultData"]["summary"]["dataPoints"] >= 30 and end.data["completedAt"]


@pytest.mark.e2e
async def test_resuming_with_last_event_id_skips_what_was_seen(stack: RunningStack, streamed: StreamedJob) -> None:
    events, headers = streamed.live.progress, streamed.tenant.headers()
    seen = events[len(events) // 2].id
    resumed = await read_stream(stack.http, stream_path(streamed.job_id), {**headers, "Last-Event-ID": str(seen)})
    assert [event.id for event in resumed.progress] == [
        event.id for event in events if event.id and seen and event.id > seen
    ]
    assert [frame.event for frame in resumed.frames][-1] == "end"

    after_the_end = await read_stream(
        stack.http, stream_path(streamed.job_id), {**headers, "Last-Event-ID": str(events[-1].id)}
    )
    assert [(frame.event, frame.data) for frame in after_the_end.frames] == [("end", streamed.live.frames[-1].data)]

    for garbled in ("yesterday", "-1", str(2**63)):
        refused = await read_stream(stack.http, stream_path(streamed.job_id), {**headers, "Last-Event-ID": garbled})
        assert refused.response.status_code == 422, garbled


@pytest.mark.e2e
async def test_the_stream_answers_401_and_404_before_any_event(
    stack: RunningStack, streamed: StreamedJob, other_tenant: Tenant
) -> None:
    path, token_path = stream_path(streamed.job_id), f"/api/v1/ai/jobs/{streamed.job_id}/stream-token/"
    for headers in ({}, {"Authorization": "Bearer cpk_00000000_not-a-real-key"}):
        refused = await read_stream(stack.http, path, headers)
        assert refused.response.status_code == 401 and refused.response.headers["www-authenticate"] == "Bearer"
        assert refused.response.headers["content-type"].startswith(PROBLEM)
        assert (await stack.http.get(token_path, headers=headers)).status_code == 401

    # Another tenant's job is not there for this key: no stream, no token, not one event byte.
    foreign = await read_stream(stack.http, path, other_tenant.headers())
    assert foreign.response.status_code == 404 and foreign.response.headers["content-type"].startswith(PROBLEM)
    assert "event:" not in foreign.response.text and "data:" not in foreign.response.text
    assert (await stack.http.get(token_path, headers=other_tenant.headers())).status_code == 404
    missing = await read_stream(stack.http, stream_path(uuid.uuid4()), streamed.tenant.headers())
    assert missing.response.status_code == 404
    # Every role may watch (there is no role below marketer, so no 403 here).
    for role in Role:
        assert (await stack.http.get(token_path, headers=streamed.tenant.headers(role))).status_code == 200


@pytest.mark.e2e
async def test_a_stream_token_opens_that_jobs_stream_only_and_only_for_a_minute(
    stack: RunningStack, streamed: StreamedJob, db: Database
) -> None:
    tenant, job_id = streamed.tenant, streamed.job_id
    minted = await stack.http.get(f"/api/v1/ai/jobs/{job_id}/stream-token/", headers=tenant.headers())
    assert minted.status_code == 200, minted.text
    body = minted.json()
    token = body["token"]
    assert body["streamUrl"] == f"{stack.base_url}{stream_path(job_id)}?token={token}"
    assert abs(datetime.fromisoformat(body["expiresAt"]).timestamp() - time.time() - 60) < 5

    with_token = await read_stream(stack.http, body["streamUrl"])
    assert with_token.response.status_code == 200
    assert [frame.id for frame in with_token.frames] == [frame.id for frame in streamed.live.frames]

    async def refused(url: str, reason: str) -> None:
        answer = await read_stream(stack.http, url)
        assert answer.response.status_code == 401, answer.response.text
        assert reason in answer.response.json()["detail"]

    await refused(f"{stream_path(job_id)}?token={token[:-1]}{'0' if token[-1] != '0' else '1'}", "not valid")
    await refused(f"{stream_path(uuid.uuid4())}?token={token}", "another job")
    await refused(f"{stream_path(job_id)}?token=not-a-token", "not valid")
    async with db.session() as session:
        found = await principal_for_key(session, tenant.keys[Role.MARKETER])
    assert found is not None
    key = found[0]
    await refused(
        f"{stream_path(job_id)}?token={sign_stream_token(key, uuid.UUID(job_id), int(time.time()) - 1)}", "expired"
    )
    await refused(
        f"{stream_path(job_id)}?token={sign_stream_token(key, uuid.UUID(job_id), int(time.time()) + 3600)}", "not valid"
    )

    # Revoking the key voids the tokens it made.
    admin = tenant.headers(Role.ADMIN)
    created = (await stack.http.post("/api/v1/apikeys", json={"role": "marketer"}, headers=admin)).json()
    doomed = await stack.http.get(
        f"/api/v1/ai/jobs/{job_id}/stream-token/", headers={"Authorization": f"Bearer {created['apiKey']}"}
    )
    assert (await stack.http.delete(f"/api/v1/apikeys/{created['id']}", headers=admin)).status_code == 204
    await refused(doomed.json()["streamUrl"], "revoked")


@pytest.fixture(scope="module")
async def slow(database_url: str, dev_temporal: WorkflowEnvironment) -> AsyncIterator[RunningStack]:
    """Jobs that take a few seconds, and a keep-alive every 0.2 s of silence."""
    async with running_stack(
        database_url, dev_temporal.client, sse_keepalive_seconds=0.2, offline_latency_ms=800
    ) as running:
        yield running


@pytest.mark.e2e
async def test_keep_alives_fill_the_silence_and_a_terminated_workflow_still_ends_the_stream(
    slow: RunningStack, tenant: Tenant
) -> None:
    job_id = await start_dna_job(slow, tenant, "Quiet Co")
    frames: list[Frame] = []
    terminated = False
    async with asyncio.timeout(30), slow.http.stream("GET", stream_path(job_id), headers=tenant.headers()) as response:
        async for frame in sse_frames(response):
            frames.append(frame)
            working = any(f.event == "progress" and f.data["status"] == "PROCESSING" for f in frames)
            if frame.event == "comment" and working and not terminated:
                # An operator terminates the workflow: only the stream's check at a keep-alive records the end.
                await slow.client.get_workflow_handle(f"job-{job_id}").terminate("operator stopped it")
                terminated = True
    keep_alives = [frame for frame in frames if frame.event == "comment"]
    assert keep_alives and {frame.data for frame in keep_alives} == {"keep-alive"}
    assert [frame.event for frame in frames if frame.event != "comment"][-1] == "end"
    end = frames[-1]
    assert end.event == "end" and end.data["status"] == "FAILED" and "terminated" in end.data["errorMessage"]


async def listener_pids(database_url: str, *, terminate: bool = False) -> list[int]:
    """The job event listeners' connections; ended first with `terminate`, as a database restart or a network cut
    would."""
    # In the select list, not the WHERE clause: only the rows that pass the filter get terminated.
    query = f"SELECT pid{', pg_terminate_backend(pid)' if terminate else ''} FROM pg_stat_activity"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        where = " WHERE application_name = %s AND datname = current_database()"
        rows = await (await conn.execute(query + where, (APPLICATION_NAME,))).fetchall()
    return [row[0] for row in rows]


@pytest.mark.e2e
async def test_the_stream_outlives_the_loss_of_the_listener_connection(
    slow: RunningStack, tenant: Tenant, database_url: str
) -> None:
    job_id = await start_dna_job(slow, tenant, "Cut Co")
    frames: list[Frame] = []
    killed: list[int] = []
    async with asyncio.timeout(30), slow.http.stream("GET", stream_path(job_id), headers=tenant.headers()) as response:
        async for frame in sse_frames(response):
            frames.append(frame)
            if frame.event == "progress" and frame.data["status"] == "PROCESSING" and not killed:
                killed = await listener_pids(database_url, terminate=True)
                assert killed
                killed_at = len(frames)
    assert [f.data["status"] for f in frames[killed_at:] if f.event == "progress"][-1] == "COMPLETED"
    assert frames[-1].event == "end" and frames[-1].data["status"] == "COMPLETED"
    reconnected = await listener_pids(database_url)
    assert reconnected and not set(reconnected) & set(killed)
