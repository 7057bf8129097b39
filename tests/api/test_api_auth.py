"""Bearer auth on every /api/v1 route: 401 without a valid key, 403 for a role that may not, 404 across tenants."""

import uuid
from collections.abc import Mapping

import httpx
import pytest

from models.enums import Role
from tests.support.stack import RunningStack, Tenant

PROBLEM = "application/problem+json"


def routes(company_id: str, job_id: str, key_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("POST", "/api/v1/companies", {"name": "X"}),
        ("GET", "/api/v1/companies", None),
        ("GET", f"/api/v1/companies/{company_id}", None),
        ("GET", f"/api/v1/companies/{company_id}/dna", None),
        ("POST", f"/api/v1/ai/companies/{company_id}/scrape-dna/", None),
        ("GET", f"/api/v1/ai/jobs/{job_id}/", None),
        ("GET", f"/api/v1/ai/companies/{company_id}/jobs/", None),
        ("GET", "/api/v1/tenant", None),
        ("GET", "/api/v1/apikeys", None),
        ("POST", "/api/v1/apikeys", {"role": "marketer"}),
        ("DELETE", f"/api/v1/apikeys/{key_id}", None),
    ]


async def call(
    http: httpx.AsyncClient, method: str, path: str, body: Mapping[str, object] | None, headers: dict[str, str]
) -> httpx.Response:
    return await http.request(method, path, json=body, headers=headers)


async def company_and_job(stack: RunningStack, tenant: Tenant) -> tuple[str, str]:
    company = await stack.http.post("/api/v1/companies", json={"name": "Auth Co"}, headers=tenant.headers())
    assert company.status_code == 201, company.text
    company_id = company.json()["id"]
    job = await stack.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers())
    assert job.status_code == 202, job.text
    return company_id, job.json()["jobId"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer cpk_00000000_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "unknown", "not-bearer", "empty"],
)
async def test_every_route_needs_a_valid_key(stack: RunningStack, tenant: Tenant, headers: dict[str, str]) -> None:
    company_id, job_id = await company_and_job(stack, tenant)
    for method, path, body in routes(company_id, job_id, str(uuid.uuid4())):
        response = await call(stack.http, method, path, body, headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401


async def test_a_revoked_key_is_refused(stack: RunningStack, tenant: Tenant) -> None:
    created = await stack.http.post("/api/v1/apikeys", json={"role": "marketer"}, headers=tenant.headers(Role.ADMIN))
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["apiKey"].startswith("cpk_") and key["role"] == "marketer"
    own = {"Authorization": f"Bearer {key['apiKey']}"}
    assert (await stack.http.get("/api/v1/companies", headers=own)).status_code == 200
    assert (
        await stack.http.delete(f"/api/v1/apikeys/{key['id']}", headers=tenant.headers(Role.ADMIN))
    ).status_code == 204
    refused = await stack.http.get("/api/v1/companies", headers=own)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


async def test_roles_are_enforced(stack: RunningStack, tenant: Tenant) -> None:
    for role in (Role.MARKETER, Role.SUPERVISOR):
        for method, path, body in [("GET", "/api/v1/apikeys", None), ("POST", "/api/v1/apikeys", {"role": "admin"})]:
            response = await call(stack.http, method, path, body, tenant.headers(role))
            assert response.status_code == 403, (role, method, path, response.text)
            assert response.headers["content-type"].startswith(PROBLEM)
            assert "admin" in response.json()["detail"]
    listed = await stack.http.get("/api/v1/apikeys", headers=tenant.headers(Role.ADMIN))
    assert listed.status_code == 200
    assert all("apiKey" not in k and "keyHash" not in k for k in listed.json())
    # Supervisors and admins can do a marketer's work.
    for role in Role:
        assert (await stack.http.get("/api/v1/companies", headers=tenant.headers(role))).status_code == 200


async def test_another_tenants_objects_are_404_and_unchanged(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant
) -> None:
    company_id, job_id = await company_and_job(stack, tenant)
    mine = await stack.http.get("/api/v1/apikeys", headers=tenant.headers(Role.ADMIN))
    key_id = mine.json()[0]["id"]
    before = (await stack.http.get(f"/api/v1/ai/companies/{company_id}/jobs/", headers=tenant.headers())).json()[
        "count"
    ]
    for method, path, body in routes(company_id, job_id, key_id):
        if not any(object_id in path for object_id in (company_id, job_id, key_id)):
            continue
        response = await call(stack.http, method, path, body, other_tenant.headers(Role.ADMIN))
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert company_id not in response.text and job_id not in response.text
    listed = (await stack.http.get("/api/v1/companies", headers=other_tenant.headers())).json()
    assert company_id not in {c["id"] for c in listed["data"]}
    after = (await stack.http.get(f"/api/v1/ai/companies/{company_id}/jobs/", headers=tenant.headers())).json()["count"]
    assert after == before, "another tenant's request started a job"
    still = await stack.http.get("/api/v1/companies", headers={"Authorization": f"Bearer {tenant.keys[Role.ADMIN]}"})
    assert still.status_code == 200
