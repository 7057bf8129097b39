"""The first job end to end: the API writes the AIJob and starts its workflow, the worker researches the DNA
through the offline provider, and the job ends COMPLETED (or FAILED on a permanent provider error)."""

import asyncio

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models.enums import Role
from tests.support.stack import RunningStack, Tenant, running_stack, wait_for_job


async def new_company(stack: RunningStack, tenant: Tenant, name: str = "Acme Robotics") -> str:
    response = await stack.http.post(
        "/api/v1/companies",
        json={"name": name, "website": "https://acme-robotics.example", "industry": "Industrial automation"},
        headers=tenant.headers(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_dna_job_end_to_end(stack: RunningStack, tenant: Tenant) -> None:
    company_id = await new_company(stack, tenant)
    started = await stack.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers())
    assert started.status_code == 202, started.text
    job_id = started.json()["jobId"]

    job = await wait_for_job(stack.http, job_id, tenant.headers())
    assert job["status"] == "COMPLETED", job
    assert job["jobType"] == "generate_dna"
    assert job["progress"] == 100
    assert job["workflowId"] == f"job-{job_id}"
    assert job["temporalUiUrl"].endswith(f"/workflows/job-{job_id}")
    assert job["startedAt"] and job["completedAt"] and job["errorMessage"] == ""
    result = job["resultData"]
    assert isinstance(result, dict)
    assert result["summary"]["dataPoints"] >= 30 and result["summary"]["sample"] is True
    assert len(result["artifactIds"]) == 1
    usage = job["usage"]
    assert isinstance(usage, dict)
    assert usage["provider"] == "offline" and usage["inputTokens"] > 0 and usage["outputTokens"] > 0

    dna = (await stack.http.get(f"/api/v1/companies/{company_id}/dna", headers=tenant.headers())).json()
    assert dna["version"] == 1 and dna["isSample"] is True
    assert len(dna["dataPoints"]) >= 30
    assert len({p["name"].lower() for p in dna["dataPoints"]}) == len(dna["dataPoints"])
    for point in dna["dataPoints"]:
        assert point["value"] and point["sourceIndexes"]
        assert all(0 <= i < len(dna["sources"]) for i in point["sourceIndexes"])
    assert all(s["url"].startswith("https://") for s in dna["sources"])
    assert "SAMPLE" in dna["summary"].upper() or all("sample" in s["title"].lower() for s in dna["sources"])

    # The workflow carries its search attributes: an operator can find it by company. The row is COMPLETED
    # before the workflow closes (its last activity writes it), and visibility follows the close a moment later.
    await stack.client.get_workflow_handle(f"job-{job_id}").result()
    for _ in range(300):
        found = [w async for w in stack.client.list_workflows(f"CompanyId='{company_id}'")]
        if found and found[0].status != WorkflowExecutionStatus.RUNNING:
            break
        await asyncio.sleep(0.1)
    assert [w.id for w in found] == [f"job-{job_id}"]
    assert found[0].status == WorkflowExecutionStatus.COMPLETED

    jobs = (await stack.http.get(f"/api/v1/ai/companies/{company_id}/jobs/", headers=tenant.headers())).json()
    assert jobs["count"] == 1 and jobs["data"][0]["id"] == job_id
    completed = await stack.http.get(
        f"/api/v1/ai/companies/{company_id}/jobs/?status=COMPLETED&jobType=generate_dna", headers=tenant.headers()
    )
    assert completed.json()["count"] == 1
    failed = await stack.http.get(f"/api/v1/ai/companies/{company_id}/jobs/?status=FAILED", headers=tenant.headers())
    assert failed.json()["count"] == 0
    bad_filter = await stack.http.get(f"/api/v1/ai/companies/{company_id}/jobs/?status=DONE", headers=tenant.headers())
    assert bad_filter.status_code == 422

    # A second research run adds a version; the first is kept.
    again = await stack.http.post(
        f"/api/v1/ai/companies/{company_id}/scrape-dna", headers=tenant.headers(Role.SUPERVISOR)
    )
    assert (await wait_for_job(stack.http, again.json()["jobId"], tenant.headers()))["status"] == "COMPLETED"
    assert (await stack.http.get(f"/api/v1/companies/{company_id}/dna", headers=tenant.headers())).json()[
        "version"
    ] == 2


async def test_a_running_job_shows_live_state_and_a_terminated_one_ends_failed(
    database_url: str, dev_temporal: WorkflowEnvironment, tenant: Tenant
) -> None:
    async with running_stack(database_url, dev_temporal.client, offline_latency_ms=30_000) as slow:
        company_id = await new_company(slow, tenant, "Live Co")
        job_id = (
            await slow.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers())
        ).json()["jobId"]
        # Until the stage is in its (30 s) research call: on a busy machine "started" can still be showing.
        for _ in range(400):
            job = (await slow.http.get(f"/api/v1/ai/jobs/{job_id}/", headers=tenant.headers())).json()
            if job["status"] == "PROCESSING" and job["live"]["activity"] and job["progressMessage"] != "started":
                break
            await asyncio.sleep(0.05)
        assert job["status"] == "PROCESSING"
        assert job["live"] == {
            "workflowStatus": "RUNNING",
            "activity": "generate_dna",
            "attempt": 1,
            "lastFailure": None,
            "nextAttemptAt": None,
        }
        assert job["progressMessage"].startswith("researching Live Co")
        # An operator terminates the workflow in the Web UI: the job must not stay PROCESSING forever.
        await slow.client.get_workflow_handle(f"job-{job_id}").terminate("operator stopped it")
        ended = (await slow.http.get(f"/api/v1/ai/jobs/{job_id}/", headers=tenant.headers())).json()
        assert ended["status"] == "FAILED" and "terminated" in ended["errorMessage"]
        assert ended["live"] is None and ended["completedAt"]


async def test_a_permanent_provider_failure_ends_the_job_failed(
    database_url: str, dev_temporal: WorkflowEnvironment, tenant: Tenant
) -> None:
    async with running_stack(database_url, dev_temporal.client, offline_fault="auth", offline_fault_every=1) as failing:
        company_id = await new_company(failing, tenant, "Failing Co")
        started = await failing.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers())
        assert started.status_code == 202
        job_id = started.json()["jobId"]
        job = await wait_for_job(failing.http, job_id, tenant.headers())
        assert job["status"] == "FAILED", job
        assert "offline" in job["errorMessage"] and job["errorMessage"]
        assert job["completedAt"] is not None
        dna = await failing.http.get(f"/api/v1/companies/{company_id}/dna", headers=tenant.headers())
        assert dna.status_code == 404, "a failed job must not leave a DNA behind"
        handle = failing.client.get_workflow_handle(f"job-{job_id}")
        for _ in range(50):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_concurrent_dna_jobs_for_one_company_each_get_a_version(stack: RunningStack, tenant: Tenant) -> None:
    company_id = await new_company(stack, tenant, "Busy Co")
    started = await asyncio.gather(
        *(stack.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers()) for _ in range(6))
    )
    jobs = await asyncio.gather(*(wait_for_job(stack.http, r.json()["jobId"], tenant.headers()) for r in started))
    assert {j["status"] for j in jobs} == {"COMPLETED"}
    for job in jobs:
        attempts = [
            event.activity_task_started_event_attributes.attempt
            async for event in stack.client.get_workflow_handle(job["workflowId"]).fetch_history_events()
            if event.HasField("activity_task_started_event_attributes")
        ]
        assert attempts == [1], f"job {job['id']} needed {attempts}: concurrent jobs must not collide"
    latest = (await stack.http.get(f"/api/v1/companies/{company_id}/dna", headers=tenant.headers())).json()
    assert latest["version"] == 6


async def test_a_rate_limited_job_shows_its_retries_live_then_gives_up(
    database_url: str, dev_temporal: WorkflowEnvironment, tenant: Tenant
) -> None:
    # Every call is rate limited with Retry-After: 1 s: the job retries 3 times, then fails.
    async with running_stack(
        database_url, dev_temporal.client, offline_fault="rate_limit", offline_fault_every=1
    ) as limited:
        company_id = await new_company(limited, tenant, "Limited Co")
        job_id = (
            await limited.http.post(f"/api/v1/ai/companies/{company_id}/scrape-dna/", headers=tenant.headers())
        ).json()["jobId"]
        seen_live = None
        for _ in range(100):
            job = (await limited.http.get(f"/api/v1/ai/jobs/{job_id}/", headers=tenant.headers())).json()
            if job["live"] and job["live"]["lastFailure"]:
                seen_live = job
                break
            await asyncio.sleep(0.05)
        assert seen_live is not None, "the live state never showed the failed attempt"
        assert seen_live["status"] == "PROCESSING"
        assert seen_live["live"]["workflowStatus"] == "RUNNING"
        assert "rate limit" in seen_live["live"]["lastFailure"]
        assert seen_live["progressMessage"].startswith("rate limited, retrying in 1 s, attempt")
        done = await wait_for_job(limited.http, job_id, tenant.headers())
        assert done["status"] == "FAILED"
        assert "rate limit" in done["errorMessage"] and "gave up after 4 attempts" in done["errorMessage"]
