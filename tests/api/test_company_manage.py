"""Managing companies over HTTP: PATCH (checked as on create; bad input changes nothing), DELETE with everything
the company produced (admin only; refused while its work runs), a company's pipelines, and CORS."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, col
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from api.services.companies import CompanyUpdate
from models.api import CompanyCreate
from models.db import Database
from models.enums import Gate, JobStatus, JobType, MediaKind, PipelineStage, PipelineStatus, Role, Tier
from models.media_store import media_path
from models.names import COMPANY_ID
from models.pipeline import GateItem, GateView
from models.settings import Settings
from models.tables import (
    AIJob,
    Company,
    CompanyDNA,
    IdempotencyKey,
    JobStep,
    MediaAsset,
    Pipeline,
)
from tests.support.seed import SeededTenant, seed_tenant
from tests.support.stack import RunningStack, Tenant, free_port, make_tenant, serving
from tests.support.stage_rows import add_dna

PROBLEM = "application/problem+json"
ORIGIN = "https://app.example"
VISIBILITY_WAIT_TRIES = 100


async def new_company(http: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Manage Co {uuid.uuid4().hex[:6]}", "website": "https://manage.example", **fields}
    response = await http.post("/api/v1/companies", json=body, headers=tenant.headers())
    assert response.status_code == 201, response.text
    company: dict[str, Any] = response.json()
    return company


# ---- PATCH -----------------------------------------------------------------------------------------------------


def test_the_update_takes_every_field_of_create() -> None:
    assert set(CompanyUpdate.model_fields) == set(CompanyCreate.model_fields)


async def test_patch_changes_only_the_fields_sent(stack: RunningStack, tenant: Tenant) -> None:
    company = await new_company(stack.http, tenant, country="CZ", industry="Robots", timezone="Europe/Prague")
    url = f"/api/v1/companies/{company['id']}"
    changed = await stack.http.patch(url, json={"name": "  Renamed Co  ", "language": "de"}, headers=tenant.headers())
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**company, "name": "Renamed Co", "language": "de"}
    # null clears a field that may be empty; the trailing slash works too; an empty body changes nothing.
    cleared = await stack.http.patch(url + "/", json={"website": None, "industry": None}, headers=tenant.headers())
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["website"] is None and cleared.json()["industry"] is None
    assert cleared.json()["country"] == "CZ" and cleared.json()["timezone"] == "Europe/Prague"
    same = await stack.http.patch(url, json={}, headers=tenant.headers())
    assert same.status_code == 200 and same.json() == cleared.json()
    # Read your writes, for every role from marketer up.
    for role in (Role.MARKETER, Role.SUPERVISOR, Role.ADMIN):
        zone = {Role.MARKETER: "UTC", Role.SUPERVISOR: "America/New_York", Role.ADMIN: "Asia/Tokyo"}[role]
        patched = await stack.http.patch(url, json={"timezone": zone}, headers=tenant.headers(role))
        assert patched.status_code == 200, (role, patched.text)
        assert (await stack.http.get(url, headers=tenant.headers())).json()["timezone"] == zone


async def test_patch_refuses_bad_input_and_changes_nothing(stack: RunningStack, tenant: Tenant) -> None:
    company = await new_company(stack.http, tenant)
    url = f"/api/v1/companies/{company['id']}"
    bad_bodies = [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"language": "e"}, "language"),
        ({"language": None}, "language"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"website": "ftp://nope"}, "website"),
        ({"website": "https://ok.example", "surprise": 1}, "surprise"),
        ({"industry": "a\u0000b"}, ""),
        ({"name": 5}, "name"),
    ]
    for body, field in bad_bodies:
        response = await stack.http.patch(url, json=body, headers=tenant.headers())
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert any(field in error["field"] for error in response.json()["errors"]), (body, response.json())
    for raw in (b'{"name": "Acme",', b"[]", b"null"):
        malformed = await stack.http.patch(
            url, content=raw, headers={**tenant.headers(), "Content-Type": "application/json"}
        )
        assert malformed.status_code == 422, (raw, malformed.text)
    assert (await stack.http.get(url, headers=tenant.headers())).json() == company


async def test_another_tenants_company_is_404_whatever_the_role(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant
) -> None:
    company = await new_company(stack.http, tenant)
    url = f"/api/v1/companies/{company['id']}"
    for role in (Role.MARKETER, Role.SUPERVISOR, Role.ADMIN):
        headers = other_tenant.headers(role)
        patched = await stack.http.patch(url, json={"name": "Stolen"}, headers=headers)
        # A body that is not valid gets the 404 too: a stranger learns nothing about the route's input.
        bad = await stack.http.patch(url, json={"name": ""}, headers=headers)
        deleted = await stack.http.delete(url, headers=headers)
        listed = await stack.http.get(f"{url}/pipelines", headers=headers)
        for answer in (patched, bad, deleted, listed):
            assert answer.status_code == 404, (role, answer.request.method, answer.text)
            assert answer.headers["content-type"].startswith(PROBLEM)
            assert company["name"] not in answer.text
    missing = f"/api/v1/companies/{uuid.uuid4()}"
    assert (await stack.http.patch(missing, json={}, headers=tenant.headers())).status_code == 404
    assert (await stack.http.delete(missing, headers=tenant.headers(Role.ADMIN))).status_code == 404
    assert (await stack.http.get(url, headers=tenant.headers())).json() == company


# ---- a company's pipelines --------------------------------------------------------------------------------------


async def test_a_companys_pipelines_newest_first(
    stack: RunningStack, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    company = await new_company(stack.http, tenant)
    other = await new_company(stack.http, tenant)
    now = datetime.now(UTC)
    gate = GateView(
        gate=Gate.PERSONAS,
        items=[GateItem(id=uuid.uuid4(), title="Persona")],
        deadline=now + timedelta(days=7),
        opened_at=now,
    )
    async with db.session() as session:
        rows = [
            Pipeline(
                tenant_id=tenant.id,
                company_id=uuid.UUID(company["id"]),
                month=f"2027-0{i + 1}",
                platforms=["linkedin", "x"],
                tier=Tier.PRO,
                status=PipelineStatus.COMPLETED if i == 0 else PipelineStatus.AWAITING_APPROVAL,
                stage=PipelineStage.DONE if i == 0 else PipelineStage.AWAITING_PERSONA_SELECTION,
                pending_gate=None if i == 0 else gate.model_dump(mode="json"),
                workflow_id=f"pipeline-manage-{uuid.uuid4()}",
                created_at=now - timedelta(days=10 - i),
                completed_at=now - timedelta(days=9) if i == 0 else None,
            )
            for i in range(3)
        ]
        rows.append(
            Pipeline(
                tenant_id=tenant.id,
                company_id=uuid.UUID(other["id"]),
                month="2027-09",
                workflow_id=f"pipeline-manage-{uuid.uuid4()}",
            )
        )
        session.add_all(rows)
        await session.commit()
        ids = [str(row.id) for row in rows]
    url = f"/api/v1/companies/{company['id']}/pipelines"
    listed = await stack.http.get(url, headers=tenant.headers())
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["count"] == 3 and page["limit"] == 50 and page["offset"] == 0
    assert [p["id"] for p in page["data"]] == [ids[2], ids[1], ids[0]]
    newest, oldest = page["data"][0], page["data"][2]
    assert newest == {
        "id": ids[2],
        "month": "2027-03",
        "status": "AWAITING_APPROVAL",
        "stage": "awaiting_persona_selection",
        "platforms": ["linkedin", "x"],
        "tier": "pro",
        "createdAt": newest["createdAt"],
        "completedAt": None,
        "pendingGates": 1,
    }
    assert oldest["status"] == "COMPLETED" and oldest["pendingGates"] == 0 and oldest["completedAt"]
    second = (await stack.http.get(f"{url}/?limit=1&offset=1", headers=tenant.headers())).json()
    assert second["count"] == 3 and [p["id"] for p in second["data"]] == [ids[1]]
    for query in ("limit=0", "limit=201", "offset=-1"):
        assert (await stack.http.get(f"{url}?{query}", headers=tenant.headers())).status_code == 422, query
    assert (await stack.http.get(url)).status_code == 401
    assert (await stack.http.get(url, headers=other_tenant.headers(Role.ADMIN))).status_code == 404


# ---- DELETE ----------------------------------------------------------------------------------------------------


@dataclass
class MediaApi:
    """The API alone (no worker: nothing is started here) with its media store in a folder of the test's own and
    CORS for ORIGIN."""

    http: httpx.AsyncClient
    media_dir: Path
    db: Database
    temporal: Client


@pytest.fixture(scope="module")
async def media_api(
    db: Database, database_url: str, dev_temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MediaApi]:
    media_dir = tmp_path_factory.mktemp("company-media")
    port = free_port()
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_temporal.client.service_client.config.target_host,
        task_queue_suffix=f"-manage-{uuid.uuid4().hex[:8]}",
        media_dir=media_dir,
        public_base_url=f"http://127.0.0.1:{port}",
        cors_allow_origins=[ORIGIN],
        _env_file=None,  # type: ignore[call-arg]
    )
    async with (
        serving(create_app(settings), port) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        yield MediaApi(http, media_dir, db, dev_temporal.client)


@dataclass
class Produced:
    """A seeded company and what it produced beyond seed_tenant's one of everything."""

    seeded: SeededTenant
    files: list[Path]


async def produce(api: MediaApi, tenant: Tenant) -> Produced:
    """A company with one of everything (tests/support/seed.py), its pipeline ended, plus a second DNA version,
    a job of the pipeline naming a persona, topic, blog post and social post, a job step, Idempotency-Keys for the
    job and the pipeline, a video (file on disk) and an image whose file is already gone."""
    seeded = await seed_tenant(api.db, tenant, api.media_dir)
    c, t = seeded.company_id, tenant.id
    files = []
    async with api.db.session() as session:
        company = await session.get(Company, c)
        assert company is not None
    await add_dna(api.db, company, version=2)
    async with api.db.session() as session:
        pipeline = await session.get(Pipeline, seeded.pipeline_id)
        assert pipeline is not None
        pipeline.status, pipeline.pending_gate = PipelineStatus.CANCELLED, None
        session.add(pipeline)
        job = AIJob(
            tenant_id=t,
            company_id=c,
            job_type=JobType.GENERATE_IMAGE,
            status=JobStatus.COMPLETED,
            pipeline_id=seeded.pipeline_id,
            persona_id=seeded.persona_id,
            topic_id=seeded.topic_id,
            blog_post_id=seeded.blog_post_id,
            social_post_id=seeded.social_post_id,
        )
        session.add(job)
        await session.flush()
        session.add(JobStep(tenant_id=t, job_id=job.id, step="outline", data={"done": True}))
        session.add(IdempotencyKey(tenant_id=t, key=f"job-{job.id}", request_hash="0" * 64, resource_id=job.id))
        session.add(
            IdempotencyKey(tenant_id=t, key=f"pipeline-{job.id}", request_hash="0" * 64, resource_id=seeded.pipeline_id)
        )
        for kind, mime, on_disk in ((MediaKind.VIDEO, "video/mp4", True), (MediaKind.IMAGE, "image/png", False)):
            asset = MediaAsset(
                tenant_id=t,
                company_id=c,
                job_id=job.id,
                blog_post_id=seeded.blog_post_id,
                kind=kind,
                mime_type=mime,
                path="",
            )
            asset.path = media_path(t, asset.id, mime)
            if on_disk:
                (api.media_dir / asset.path).write_bytes(b"video of " + seeded.marker.encode())
                files.append(api.media_dir / asset.path)
            session.add(asset)
        await session.commit()
    async with api.db.session() as session:
        image = await session.get(MediaAsset, seeded.media_id)
        assert image is not None
        files.append(api.media_dir / image.path)
    assert all(path.is_file() for path in files)
    return Produced(seeded, files)


async def ids_of(db: Database, company_id: uuid.UUID) -> dict[str, set[Any]]:
    """The primary keys of every row that is the company's: the company, the rows of every table with a
    company_id column, and the rows that point at those by a foreign key (revisions, job events, job steps...),
    found from the tables' metadata, so that a table added later is covered without touching this test."""
    tables = SQLModel.metadata.tables
    owned: dict[str, set[Any]] = {}
    async with db.session() as session:
        company = await session.exec(sa.select(col(Company.id)).where(col(Company.id) == company_id))  # type: ignore[call-overload]
        owned["company"] = set(company.scalars().all())
        for name, table in tables.items():
            if "company_id" in table.c:
                key = next(iter(table.primary_key.columns))
                rows = await session.exec(sa.select(key).where(table.c.company_id == company_id))  # type: ignore[call-overload]
                owned[name] = set(rows.scalars().all())
        grew = True
        while grew:
            grew = False
            for name, table in tables.items():
                for fk in table.foreign_keys:
                    target = fk.column.table.name
                    if target == "tenant" or not owned.get(target):
                        continue
                    primary = list(table.primary_key.columns)
                    statement = sa.select(*primary).where(fk.parent.in_(owned[target]))
                    rows = (await session.exec(statement)).all()  # type: ignore[call-overload]
                    found = {tuple(row) if len(primary) > 1 else row[0] for row in rows}
                    if not found <= owned.setdefault(name, set()):
                        owned[name] |= found
                        grew = True
        jobs_and_pipelines = owned.get("ai_job", set()) | owned.get("pipeline", set())
        keys = await session.exec(  # type: ignore[call-overload]
            sa.select(col(IdempotencyKey.id)).where(col(IdempotencyKey.resource_id).in_(jobs_and_pipelines))
        )
        owned["idempotency_key"] = set(keys.scalars().all())
    return {name: ids for name, ids in owned.items() if ids}


async def test_delete_removes_everything_the_company_produced_and_nothing_else(
    media_api: MediaApi, db: Database
) -> None:
    tenant = await make_tenant(db, name="Deleting tenant")
    doomed = await produce(media_api, tenant)
    kept = await produce(media_api, tenant)
    company_id, kept_id = doomed.seeded.company_id, kept.seeded.company_id
    before = await ids_of(db, company_id)
    kept_before = await ids_of(db, kept_id)
    expected = {"company", "company_dna", "persona", "topic", "blog_post", "blog_post_revision", "social_post"}
    expected |= {"media_asset", "ai_job", "job_event", "job_step", "pipeline", "idempotency_key"}
    assert expected <= before.keys(), before.keys()
    assert len(before["company_dna"]) == 2 and len(before["media_asset"]) == 3 and len(before["ai_job"]) == 2

    deleted = await media_api.http.delete(f"/api/v1/companies/{company_id}", headers=tenant.headers(Role.ADMIN))
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    assert await ids_of(db, company_id) == {}, "rows of the deleted company are left"
    async with db.session() as session:
        for name, ids in before.items():
            table = SQLModel.metadata.tables[name]
            key = next(iter(table.primary_key.columns))
            if len(table.primary_key.columns) == 1:
                left = (await session.exec(sa.select(sa.func.count()).where(key.in_(ids)))).one()[0]  # type: ignore[call-overload]
                assert left == 0, f"{name}: {left} rows of the deleted company are left"
    assert not [path for path in doomed.files if path.exists()], "media files of the deleted company are left"

    # The other company of the tenant: every row and file is still there, and the API serves it.
    assert await ids_of(db, kept_id) == kept_before
    assert all(path.is_file() for path in kept.files)
    headers = tenant.headers()
    assert (await media_api.http.get(f"/api/v1/companies/{kept_id}", headers=headers)).status_code == 200
    media = await media_api.http.get(f"/api/v1/media/{kept.seeded.media_id}/file", headers=headers)
    assert media.status_code == 200 and media.content == kept.seeded.media_bytes
    for path in ("", "/dna", "/pipelines"):
        gone = await media_api.http.get(f"/api/v1/companies/{company_id}{path}", headers=headers)
        assert gone.status_code == 404, (path, gone.text)
    again = await media_api.http.delete(f"/api/v1/companies/{company_id}", headers=tenant.headers(Role.ADMIN))
    assert again.status_code == 404


async def test_delete_is_an_admins_and_refused_while_work_runs(media_api: MediaApi, db: Database) -> None:
    tenant = await make_tenant(db, name="Careful tenant")
    seeded = await seed_tenant(db, tenant, media_api.media_dir)
    url = f"/api/v1/companies/{seeded.company_id}"
    for role in (Role.MARKETER, Role.SUPERVISOR):
        refused = await media_api.http.delete(url, headers=tenant.headers(role))
        assert refused.status_code == 403, (role, refused.text)
        assert "admin" in refused.json()["detail"]

    # The seeded pipeline waits at a gate: its workflow would break, so the deletion is refused and names it.
    admin = tenant.headers(Role.ADMIN)
    waiting = await media_api.http.delete(url, headers=admin)
    assert waiting.status_code == 409, waiting.text
    assert waiting.headers["content-type"].startswith(PROBLEM)
    problem = waiting.json()
    assert str(seeded.pipeline_id) in problem["detail"] and "cancel" in problem["detail"].lower()
    assert problem["pipelineIds"] == [str(seeded.pipeline_id)] and problem["jobIds"] == []

    # Once the pipeline has ended, a job of the company's own that is still open is refused the same way.
    async with db.session() as session:
        pipeline = await session.get(Pipeline, seeded.pipeline_id)
        assert pipeline is not None
        pipeline.status = PipelineStatus.CANCELLED
        session.add(pipeline)
        job = AIJob(
            tenant_id=tenant.id, company_id=seeded.company_id, job_type=JobType.GENERATE_DNA, status=JobStatus.PENDING
        )
        session.add(job)
        await session.commit()
    for status in (JobStatus.PENDING, JobStatus.PROCESSING):
        async with db.session() as session:
            await session.exec(  # type: ignore[call-overload]
                sa.update(AIJob).where(col(AIJob.id) == job.id).values(status=status.value)
            )
            await session.commit()
        running = await media_api.http.delete(url, headers=admin)
        assert running.status_code == 409, running.text
        assert str(job.id) in running.json()["detail"] and running.json()["jobIds"] == [str(job.id)]
        assert running.json()["pipelineIds"] == []

    # Nothing was deleted by the refusals.
    async with db.session() as session:
        assert await session.get(Company, seeded.company_id) is not None
        dna = await session.exec(  # type: ignore[call-overload]
            sa.select(sa.func.count()).where(col(CompanyDNA.company_id) == seeded.company_id)
        )
        assert dna.one()[0] == 1
    assert (media_api.media_dir / media_path(tenant.id, seeded.media_id, "image/png")).is_file()

    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(AIJob).where(col(AIJob.id) == job.id).values(status=JobStatus.CANCELLED.value)
        )
        await session.commit()
    # A workflow of the company that no row stands for (a post published again) is found in Temporal: refused too.
    handle = await media_api.temporal.start_workflow(
        "NoWorkerRunsThis",
        id=f"company-work-{uuid.uuid4()}",
        task_queue=f"tq-{uuid.uuid4()}",
        search_attributes=TypedSearchAttributes([SearchAttributePair(COMPANY_ID, str(seeded.company_id))]),
    )
    refused = await delete_until(media_api, url, admin, lambda answer: answer.status_code != 204)
    assert refused.status_code == 409, refused.text
    assert handle.id in refused.json()["detail"] and refused.json()["workflowIds"] == [handle.id]
    await handle.terminate("the test is done with it")
    deleted = await delete_until(media_api, url, admin, lambda answer: answer.status_code != 409)
    assert deleted.status_code == 204, deleted.text
    assert not (media_api.media_dir / media_path(tenant.id, seeded.media_id, "image/png")).exists()


async def delete_until(
    api: MediaApi, url: str, headers: dict[str, str], done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """DELETE until `done` holds for the answer: Temporal's visibility store sees a workflow start or end a moment
    after it happens."""
    for _ in range(VISIBILITY_WAIT_TRIES):
        answer = await api.http.delete(url, headers=headers)
        if done(answer):
            return answer
        await asyncio.sleep(0.2)
    return answer


# ---- CORS ------------------------------------------------------------------------------------------------------


def preflight(origin: str, method: str = "PATCH") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def in_process(settings: Settings) -> httpx.AsyncClient:
    # Preflights are answered by the middleware and /healthz reads nothing: no lifespan, no database needed.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://testserver")


async def test_cors_allows_the_configured_origins_only(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        data_dir=tmp_path,
        cors_allow_origins=[ORIGIN, "https://other-app.example"],
        _env_file=None,  # type: ignore[call-arg]
    )
    async with await in_process(settings) as http:
        allowed = await http.options("/api/v1/companies/x", headers=preflight(ORIGIN))
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        methods = {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
        headers = allowed.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "idempotency-key", "last-event-id"):
            assert header in headers, headers
        assert "access-control-allow-credentials" not in allowed.headers

        stranger = await http.options("/api/v1/companies/x", headers=preflight("https://evil.example"))
        assert stranger.status_code >= 400
        assert "access-control-allow-origin" not in stranger.headers

        simple = await http.get("/healthz", headers={"Origin": ORIGIN})
        assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == ORIGIN
        exposed = {h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")}
        assert {"retry-after", "location"} <= exposed
        other = await http.get("/healthz", headers={"Origin": "https://evil.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_without_configured_origins(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        data_dir=tmp_path,
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.cors_allow_origins == []
    async with await in_process(settings) as http:
        for answer in (
            await http.options("/api/v1/companies/x", headers=preflight(ORIGIN)),
            await http.get("/healthz", headers={"Origin": ORIGIN}),
        ):
            assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", " https://a.example, https://b.example/ ")
    assert Settings(_env_file=None).cors_allow_origins == ["https://a.example", "https://b.example"]  # type: ignore[call-arg]
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", '["https://a.example"]')
    assert Settings(_env_file=None).cors_allow_origins == ["https://a.example"]  # type: ignore[call-arg]
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "")
    assert Settings(_env_file=None).cors_allow_origins == []  # type: ignore[call-arg]


async def test_an_api_answer_to_a_configured_origin_carries_cors(media_api: MediaApi, tenant: Tenant) -> None:
    answer = await media_api.http.get("/api/v1/companies", headers={**tenant.headers(), "Origin": ORIGIN})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ORIGIN
    refused = await media_api.http.get("/api/v1/companies", headers={"Origin": ORIGIN})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN
