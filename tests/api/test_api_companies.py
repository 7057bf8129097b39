"""Companies over HTTP: camelCase in and out, problem+json for bad input, and bad input changes nothing."""

import uuid

import httpx

from api.main import create_app
from models.db import Database
from models.enums import JobStatus, JobType
from models.settings import Settings
from models.tables import AIJob
from tests.support.stack import RunningStack, Tenant, free_port, serving

PROBLEM = "application/problem+json"


async def count_companies(stack: RunningStack, tenant: Tenant) -> int:
    response = await stack.http.get("/api/v1/companies", headers=tenant.headers())
    assert response.status_code == 200
    return int(response.json()["count"])


async def test_create_list_and_get_a_company(stack: RunningStack, tenant: Tenant) -> None:
    body = {
        "name": "Acme Robotics",
        "website": "https://acme.example",
        "country": "CZ",
        "industry": "Robots",
        "timezone": "Europe/Prague",
    }
    created = await stack.http.post("/api/v1/companies/", json=body, headers=tenant.headers())
    assert created.status_code == 201, created.text
    company = created.json()
    assert company["name"] == "Acme Robotics" and company["timezone"] == "Europe/Prague"
    assert "createdAt" in company and "created_at" not in company
    got = await stack.http.get(f"/api/v1/companies/{company['id']}", headers=tenant.headers())
    assert got.status_code == 200 and got.json() == company
    got_slash = await stack.http.get(f"/api/v1/companies/{company['id']}/", headers=tenant.headers())
    assert got_slash.status_code == 200
    listed = await stack.http.get("/api/v1/companies?limit=1&offset=0", headers=tenant.headers())
    page = listed.json()
    assert page["count"] >= 1 and len(page["data"]) == 1 and page["limit"] == 1


async def test_bad_input_is_a_problem_and_changes_nothing(stack: RunningStack, tenant: Tenant) -> None:
    before = await count_companies(stack, tenant)
    bad_bodies = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "X", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "X", "website": "ftp://nope"}, "website"),
        ({"name": "X", "surprise": 1}, "surprise"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Nul\u0000Co"}, ""),
        ({"name": "X", "industry": "a\u0000b"}, ""),
    ]
    for body, field in bad_bodies:
        response = await stack.http.post("/api/v1/companies", json=body, headers=tenant.headers())
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        problem = response.json()
        assert problem["status"] == 422 and problem["title"] and problem["type"]
        assert any(field in e["field"] for e in problem["errors"]), problem
    malformed = await stack.http.post(
        "/api/v1/companies",
        content=b'{"name": "Acme",',
        headers={**tenant.headers(), "Content-Type": "application/json"},
    )
    assert malformed.status_code == 422 and malformed.headers["content-type"].startswith(PROBLEM)
    assert (
        malformed.json()["errors"][0]["field"] == "body"
        and "not valid JSON" in malformed.json()["errors"][0]["message"]
    )
    assert await count_companies(stack, tenant) == before
    for query in ("offset=100000000000000000000", "offset=-1", "limit=0", "limit=201", "limit=x"):
        paged = await stack.http.get(f"/api/v1/companies?{query}", headers=tenant.headers())
        assert paged.status_code == 422, (query, paged.text)


async def test_unknown_ids_are_404_problems(stack: RunningStack, tenant: Tenant) -> None:
    for path in (
        f"/api/v1/companies/{uuid.uuid4()}",
        f"/api/v1/ai/jobs/{uuid.uuid4()}/",
        f"/api/v1/companies/{uuid.uuid4()}/dna",
    ):
        response = await stack.http.get(path, headers=tenant.headers())
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith(PROBLEM)
    not_a_uuid = await stack.http.get("/api/v1/companies/not-a-uuid", headers=tenant.headers())
    assert not_a_uuid.status_code == 422
    started = await stack.http.post(f"/api/v1/ai/companies/{uuid.uuid4()}/scrape-dna/", headers=tenant.headers())
    assert started.status_code == 404 and started.headers["content-type"].startswith(PROBLEM)


async def test_health_and_readiness(stack: RunningStack) -> None:
    assert (await stack.http.get("/healthz")).json() == {"status": "ok"}
    ready = await stack.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}


async def test_unexpected_errors_are_500_problems_without_internals() -> None:
    app = create_app(
        Settings(database_url="postgresql://nobody@127.0.0.1:1/none", _env_file=None)  # type: ignore[call-arg]
    )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail at /srv/app.py line 12")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_readiness_reports_an_unreachable_engine_and_starts_anyway(database_url: str, tenant: Tenant) -> None:
    dead = free_port()
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url,
        temporal_address=f"127.0.0.1:{dead}",
        _env_file=None,
    )
    async with serving(create_app(settings)) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": "ok", "temporal": f"unreachable at 127.0.0.1:{dead}"}
        # Without the engine a start is refused with 503 and Retry-After, never a 500, and writes no job.
        company = (await http.post("/api/v1/companies", json={"name": "No Engine Co"}, headers=tenant.headers())).json()
        refused = await http.post(f"/api/v1/ai/companies/{company['id']}/scrape-dna/", headers=tenant.headers())
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"].startswith(PROBLEM)
        jobs = (await http.get(f"/api/v1/ai/companies/{company['id']}/jobs/", headers=tenant.headers())).json()
        assert jobs["count"] == 0
        # Reads do not need the engine: a finished job is served from the database.
        db = Database.from_url(database_url, pool_size=1)
        async with db.session() as session:
            done = AIJob(
                tenant_id=tenant.id, company_id=company["id"], job_type=JobType.GENERATE_DNA, status=JobStatus.COMPLETED
            )
            session.add(done)
            await session.commit()
        await db.close()
        read = await http.get(f"/api/v1/ai/jobs/{done.id}/", headers=tenant.headers())
        assert read.status_code == 200 and read.json()["status"] == "COMPLETED"
        assert read.json()["usage"]["costUsd"] == 0
