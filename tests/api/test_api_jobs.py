"""The seed's job endpoints over HTTP: each stage started alone, its input checked against the company, the
Idempotency-Key, the tenant's rate limit, cancel, the job list and the statistics."""

import asyncio
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from models.db import Database
from models.enums import JobStatus, JobType, Tier
from models.pipeline import month_after
from models.tables import AIJob
from tests.activities.test_dna_job import new_company
from tests.support.stack import RunningStack, Tenant, make_tenant, running_stack, wait_for_job

pytestmark = pytest.mark.e2e

JOBS = "/api/v1/ai"


def next_month() -> str:
    return month_after(datetime.now(UTC))


async def start(
    stack: RunningStack, tenant: Tenant, company_id: str, endpoint: str, body: Any = None, **headers: str
) -> httpx.Response:
    return await stack.http.post(
        f"{JOBS}/companies/{company_id}/{endpoint}/", json=body, headers={**tenant.headers(), **headers}
    )


async def run(stack: RunningStack, tenant: Tenant, company_id: str, endpoint: str, body: Any = None) -> dict[str, Any]:
    response = await start(stack, tenant, company_id, endpoint, body)
    assert response.status_code == 202, response.text
    job = await wait_for_job(stack.http, response.json()["jobId"], tenant.headers(), wait_seconds=120)
    assert job["status"] == "COMPLETED", job
    return job


async def listing(stack: RunningStack, tenant: Tenant, path: str) -> list[dict[str, Any]]:
    response = await stack.http.get(f"/api/v1/companies/{path}", headers=tenant.headers())
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_every_stage_runs_alone_through_its_endpoint(stack: RunningStack, tenant: Tenant) -> None:
    company = await new_company(stack, tenant)
    await run(stack, tenant, company, "scrape-dna")

    personas_job = await run(stack, tenant, company, "generate-personas", {"language": "en"})
    assert personas_job["jobType"] == "generate_personas" and len(personas_job["resultData"]["artifactIds"]) == 6
    persona_id = personas_job["resultData"]["artifactIds"][0]

    topics_job = await run(
        stack, tenant, company, "generate-topics", {"personaId": persona_id, "month": next_month(), "count": 2}
    )
    assert topics_job["personaId"] == persona_id and len(topics_job["resultData"]["artifactIds"]) == 2
    topic_id = topics_job["resultData"]["artifactIds"][0]

    blog_job = await run(stack, tenant, company, "generate-blogpost", {"topicId": topic_id, "pages": 4})
    assert blog_job["topicId"] == topic_id
    post_id = blog_job["resultData"]["artifactIds"][0]

    social_job = await run(
        stack, tenant, company, "generate-social", {"blogPostId": post_id, "platforms": ["x", "linkedin"]}
    )
    social_ids = social_job["resultData"]["artifactIds"]
    assert len(social_ids) == 2

    image_job = await run(stack, tenant, company, "generate-image", {"socialPostId": social_ids[0]})
    video_job = await run(stack, tenant, company, "generate-video", {"blogPostId": post_id, "aspectRatio": "9:16"})
    assert image_job["resultData"]["artifactIds"] and video_job["resultData"]["artifactIds"]
    for job in (image_job, video_job):
        assert job["workflowId"] == f"job-{job['id']}" and job["usage"]["provider"] == "offline"

    # Each job is its own workflow, found by company in the Web UI (visibility catches up within a moment).
    jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=tenant.headers())).json()
    expected = {f"job-{j['id']}" for j in jobs["data"]}
    for _ in range(50):
        found = {w.id async for w in stack.client.list_workflows(f"CompanyId='{company}'")}
        if found == expected:
            break
        await asyncio.sleep(0.1)
    assert jobs["count"] == 7 and found == expected
    assert [j["jobType"] for j in jobs["data"]] == [
        "generate_video",
        "generate_image",
        "generate_social",
        "generate_blogpost",
        "generate_topics",
        "generate_personas",
        "generate_dna",
    ]


async def test_inputs_are_checked_against_the_company(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant
) -> None:
    company = await new_company(stack, tenant)
    theirs = await new_company(stack, other_tenant, "Their company")
    nothing = str(uuid.uuid4())

    # No DNA yet: personas and topics cannot be planned (409, with the way out).
    response = await start(stack, tenant, company, "generate-personas")
    assert response.status_code == 409 and "scrape-dna" in response.json()["detail"]

    # Ids that are not this company's: missing, or another tenant's, answer the same 422 naming the field.
    their_job = await run(stack, other_tenant, theirs, "scrape-dna")
    their_personas = await run(stack, other_tenant, theirs, "generate-personas")
    their_persona = their_personas["resultData"]["artifactIds"][0]
    for endpoint, body, field in [
        ("generate-topics", {"personaId": nothing, "month": next_month()}, "personaId"),
        ("generate-topics", {"personaId": their_persona, "month": next_month()}, "personaId"),
        ("generate-blogpost", {"topicId": nothing}, "topicId"),
        ("generate-social", {"blogPostId": nothing, "platforms": ["x"]}, "blogPostId"),
        ("generate-image", {"socialPostId": nothing}, "socialPostId"),
        ("generate-video", {"blogPostId": nothing}, "blogPostId"),
    ]:
        response = await start(stack, tenant, company, endpoint, body)
        assert response.status_code == 422, (endpoint, response.text)
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in problem["errors"]] == [field]
        assert their_persona not in response.text

    # Bodies that are wrong in themselves.
    wrong: list[tuple[str, Any]] = [
        ("generate-topics", {"personaId": nothing, "month": "2026-13"}),
        ("generate-topics", {"personaId": nothing, "month": next_month(), "count": 0}),
        ("generate-blogpost", {"topicId": nothing, "pages": 3}),
        ("generate-blogpost", {"topicId": nothing, "pages": 11}),
        ("generate-social", {"blogPostId": nothing, "platforms": ["x", "x"]}),
        ("generate-social", {"blogPostId": nothing, "platforms": ["myspace"]}),
        ("generate-social", {"blogPostId": nothing, "platforms": []}),
        ("generate-video", {"blogPostId": nothing, "aspectRatio": "4:3"}),
        ("generate-image", {"socialPostId": "not-a-uuid"}),
        ("generate-image", {"socialPostId": nothing, "extra": 1}),
        ("generate-topics", None),
    ]
    for endpoint, wrong_body in wrong:
        response = await start(stack, tenant, company, endpoint, wrong_body)
        assert response.status_code == 422, (endpoint, wrong_body, response.text)
        assert response.json()["errors"], response.text

    # A past month is refused even for a real persona.
    await run(stack, tenant, company, "scrape-dna")
    personas = await run(stack, tenant, company, "generate-personas")
    response = await start(
        stack,
        tenant,
        company,
        "generate-topics",
        {"personaId": personas["resultData"]["artifactIds"][0], "month": "2020-01"},
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "month"

    # Another tenant's company is 404; a marketer key is enough; no key is 401.
    assert (await start(stack, tenant, theirs, "scrape-dna")).status_code == 404
    assert (await stack.http.post(f"{JOBS}/companies/{company}/scrape-dna/")).status_code == 401
    assert their_job["status"] == "COMPLETED"
    # None of the refused requests left a job behind.
    jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=tenant.headers())).json()
    assert jobs["count"] == 2


async def test_media_endpoints_need_their_tier(stack: RunningStack, db: Database) -> None:
    free = await make_tenant(db, Tier.FREE, "Free tenant")
    pro = await make_tenant(db, Tier.PRO, "Pro tenant")
    for tenant, endpoint, body in [
        (free, "generate-image", {"socialPostId": str(uuid.uuid4())}),
        (free, "generate-video", {"blogPostId": str(uuid.uuid4())}),
        (pro, "generate-video", {"blogPostId": str(uuid.uuid4())}),
    ]:
        company = await new_company(stack, tenant)
        response = await start(stack, tenant, company, endpoint, body)
        assert response.status_code == 403, response.text
        assert tenant.tier.value in response.json()["detail"]
    # PRO may make images: its refusal is about the input, not the tier.
    company = await new_company(stack, pro)
    assert (await start(stack, pro, company, "generate-image", {"socialPostId": str(uuid.uuid4())})).status_code == 422


async def test_an_idempotency_key_returns_the_same_job(stack: RunningStack, tenant: Tenant) -> None:
    company = await new_company(stack, tenant)
    first = await start(stack, tenant, company, "scrape-dna", None, **{"Idempotency-Key": "dna-1"})
    again = await start(stack, tenant, company, "scrape-dna", None, **{"Idempotency-Key": "dna-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["jobId"] == again.json()["jobId"]
    # The key belongs to the tenant: another request under it is refused and changes nothing.
    other = await stack.http.post(
        f"{JOBS}/companies/{company}/generate-personas/",
        json={"language": "de"},
        headers={**tenant.headers(), "Idempotency-Key": "dna-1"},
    )
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    # The same body with other whitespace and key order is the same request.
    await wait_for_job(stack.http, first.json()["jobId"], tenant.headers())
    replays = []
    for text in ('{"language": "en"}', '{ "language":"en" }'):
        replays.append(
            await stack.http.post(
                f"{JOBS}/companies/{company}/generate-personas/",
                content=text,
                headers={**tenant.headers(), "Idempotency-Key": "personas-1", "Content-Type": "application/json"},
            )
        )
    assert [r.status_code for r in replays] == [202, 202]
    assert replays[0].json()["jobId"] == replays[1].json()["jobId"]
    # A malformed key is a validation error.
    bad = await start(stack, tenant, company, "scrape-dna", None, **{"Idempotency-Key": "x" * 256})
    assert bad.status_code == 422
    jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=tenant.headers())).json()
    assert jobs["count"] == 2


async def test_twenty_concurrent_requests_with_one_key_make_one_job_and_one_workflow(
    stack: RunningStack, tenant: Tenant
) -> None:
    company = await new_company(stack, tenant)
    key = {"Idempotency-Key": f"burst-{uuid.uuid4()}"}
    responses = await asyncio.gather(*(start(stack, tenant, company, "scrape-dna", None, **key) for _ in range(20)))
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses if r.status_code != 202]
    job_ids = {r.json()["jobId"] for r in responses}
    assert len(job_ids) == 1
    job = await wait_for_job(stack.http, job_ids.pop(), tenant.headers())
    assert job["status"] == "COMPLETED"
    jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=tenant.headers())).json()
    assert jobs["count"] == 1
    # Temporal has exactly one workflow for the company (visibility catches up within a moment).
    for _ in range(50):
        workflows = [w.id async for w in stack.client.list_workflows(f"CompanyId='{company}'")]
        if workflows:
            break
        await asyncio.sleep(0.1)
    assert workflows == [f"job-{job['id']}"]


async def test_a_start_the_engine_refused_frees_its_key(stack: RunningStack, tenant: Tenant) -> None:
    company = await new_company(stack, tenant)
    from api.main import create_app
    from tests.support.stack import serving

    class Refusing:
        async def start_workflow(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("the engine said no")

    app = create_app(stack.settings)
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        app.state.temporal = Refusing()
        refused = await http.post(
            f"{JOBS}/companies/{company}/scrape-dna/", headers={**tenant.headers(), "Idempotency-Key": "k-503"}
        )
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    # The job that never ran is FAILED with the reason, and the key is free again.
    jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=tenant.headers())).json()
    assert [(j["status"], j["errorMessage"]) for j in jobs["data"]] == [
        ("FAILED", "the workflow engine did not accept the job; nothing ran")
    ]
    retried = await start(stack, tenant, company, "scrape-dna", None, **{"Idempotency-Key": "k-503"})
    assert retried.status_code == 202 and retried.json()["jobId"] != jobs["data"][0]["id"]
    assert (await wait_for_job(stack.http, retried.json()["jobId"], tenant.headers()))["status"] == "COMPLETED"


async def test_start_requests_are_rate_limited_per_tenant(
    database_url: str, dev_temporal: WorkflowEnvironment, db: Database
) -> None:
    limited = await make_tenant(db, Tier.PRO, "Limited tenant")
    neighbour = await make_tenant(db, Tier.PRO, "Neighbour")
    async with running_stack(database_url, dev_temporal.client, rate_limit_pro_per_minute=3) as stack:
        company = await new_company(stack, limited)
        accepted = [
            await start(stack, limited, company, "scrape-dna", None, **{"Idempotency-Key": f"r{i}"}) for i in range(3)
        ]
        assert [r.status_code for r in accepted] == [202, 202, 202]
        # A replay costs nothing; a new request is refused with when to come back.
        assert (
            await start(stack, limited, company, "scrape-dna", None, **{"Idempotency-Key": "r0"})
        ).status_code == 202
        refused = await start(stack, limited, company, "scrape-dna")
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 20
        assert refused.headers["content-type"].startswith("application/problem+json")
        pipeline = await stack.http.post(
            f"{JOBS}/companies/{company}/pipelines/",
            json={"month": next_month(), "platforms": ["x"]},
            headers=limited.headers(),
        )
        assert pipeline.status_code == 429
        # Refused requests made nothing, and the limit is per tenant.
        jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=limited.headers())).json()
        assert jobs["count"] == 3
        theirs = await new_company(stack, neighbour)
        assert (await start(stack, neighbour, theirs, "scrape-dna")).status_code == 202
        for job in jobs["data"]:
            await wait_for_job(stack.http, job["id"], limited.headers())


async def test_cancel_a_running_job(
    database_url: str, dev_temporal: WorkflowEnvironment, stack: RunningStack, tenant: Tenant, other_tenant: Tenant
) -> None:
    fast = stack
    async with running_stack(database_url, dev_temporal.client, offline_latency_ms=3000) as stack:
        company = await new_company(stack, tenant)
        job_id = (await start(stack, tenant, company, "scrape-dna")).json()["jobId"]
        for _ in range(100):
            job = (await stack.http.get(f"{JOBS}/jobs/{job_id}/", headers=tenant.headers())).json()
            if job["status"] == "PROCESSING":
                break
            await asyncio.sleep(0.05)
        assert (
            await stack.http.post(f"{JOBS}/jobs/{job_id}/cancel/", headers=other_tenant.headers())
        ).status_code == 404
        cancelled = await stack.http.post(f"{JOBS}/jobs/{job_id}/cancel/", headers=tenant.headers())
        assert cancelled.status_code == 202, cancelled.text
        ended = await wait_for_job(stack.http, job_id, tenant.headers())
        assert ended["status"] == "CANCELLED" and ended["resultData"] is None
        # Idempotent: cancelling again is fine.
        again = await stack.http.post(f"{JOBS}/jobs/{job_id}/cancel/", headers=tenant.headers())
        assert again.status_code == 202 and again.json()["status"] == "CANCELLED"
        dna = await stack.http.get(f"/api/v1/companies/{company}/dna", headers=tenant.headers())
        assert dna.status_code == 404  # nothing was stored

    done = (await start(fast, tenant, company, "scrape-dna")).json()["jobId"]
    await wait_for_job(fast.http, done, tenant.headers())
    finished = await fast.http.post(f"{JOBS}/jobs/{done}/cancel/", headers=tenant.headers())
    assert finished.status_code == 409 and "COMPLETED" in finished.json()["detail"]
    assert (await fast.http.post(f"{JOBS}/jobs/{uuid.uuid4()}/cancel/", headers=tenant.headers())).status_code == 404


async def test_a_pipeline_stage_is_cancelled_with_its_pipeline(stack: RunningStack, tenant: Tenant) -> None:
    company = await new_company(stack, tenant)
    pipeline = await stack.http.post(
        f"{JOBS}/companies/{company}/pipelines/",
        json={"month": next_month(), "platforms": ["x"]},
        headers=tenant.headers(),
    )
    assert pipeline.status_code == 202, pipeline.text
    pipeline_id = pipeline.json()["pipelineId"]
    for _ in range(200):
        jobs = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/", headers=tenant.headers())).json()["data"]
        if jobs:
            break
        await asyncio.sleep(0.05)
    refused = await stack.http.post(f"{JOBS}/jobs/{jobs[-1]['id']}/cancel/", headers=tenant.headers())
    assert refused.status_code == 409 and refused.json()["pipelineId"] == pipeline_id, refused.text
    await stack.http.post(f"{JOBS}/pipelines/{pipeline_id}/cancel/", headers=tenant.headers())


async def test_an_unstarted_job_is_cancelled_in_place(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    """A job whose workflow never started (the API died between the row and the start) still cancels."""
    company = await new_company(stack, tenant)
    async with db.session() as session:
        job = AIJob(
            tenant_id=tenant.id, company_id=uuid.UUID(company), job_type=JobType.GENERATE_DNA, progress_message="queued"
        )
        job.workflow_id = f"job-{job.id}"
        session.add(job)
        await session.commit()
    response = await stack.http.post(f"{JOBS}/jobs/{job.id}/cancel/", headers=tenant.headers())
    assert response.status_code == 202 and response.json()["status"] == "CANCELLED"


async def test_jobs_list_is_newest_first_with_filters_and_pages(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    company = await new_company(stack, tenant)
    ids = await seed_jobs(db, tenant, uuid.UUID(company))
    page = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/?limit=3", headers=tenant.headers())).json()
    assert page["count"] == len(ids) and [j["id"] for j in page["data"]] == [str(i) for i in ids[:3]]
    rest = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/?limit=3&offset=3", headers=tenant.headers())).json()
    assert [j["id"] for j in rest["data"]] == [str(i) for i in ids[3:6]]
    failed = (await stack.http.get(f"{JOBS}/companies/{company}/jobs/?status=FAILED", headers=tenant.headers())).json()
    assert failed["count"] == 2 and {j["status"] for j in failed["data"]} == {"FAILED"}
    blogs = (
        await stack.http.get(f"{JOBS}/companies/{company}/jobs/?jobType=generate_blogpost", headers=tenant.headers())
    ).json()
    assert blogs["count"] == 4 and {j["jobType"] for j in blogs["data"]} == {"generate_blogpost"}
    both = (
        await stack.http.get(
            f"{JOBS}/companies/{company}/jobs/?jobType=generate_blogpost&status=COMPLETED", headers=tenant.headers()
        )
    ).json()
    assert both["count"] == 3
    for query in ("status=DONE", "jobType=generate_everything", "limit=0", "limit=201", "offset=-1"):
        response = await stack.http.get(f"{JOBS}/companies/{company}/jobs/?{query}", headers=tenant.headers())
        assert response.status_code == 422, query


# Seeded jobs: (type, status, seconds from start to completion, input tokens, output tokens, cost).
SEEDED = [
    (JobType.GENERATE_BLOGPOST, JobStatus.COMPLETED, 40.0, 1000, 4000, Decimal("0.05")),
    (JobType.GENERATE_BLOGPOST, JobStatus.COMPLETED, 60.0, 1200, 5000, Decimal("0.07")),
    (JobType.GENERATE_BLOGPOST, JobStatus.COMPLETED, 100.0, 1500, 6000, Decimal("0.10")),
    (JobType.GENERATE_BLOGPOST, JobStatus.FAILED, 5.0, 300, 0, Decimal("0.01")),
    (JobType.GENERATE_SOCIAL, JobStatus.COMPLETED, 2.0, 200, 100, Decimal("0.001")),
    (JobType.GENERATE_SOCIAL, JobStatus.COMPLETED, 4.0, 220, 120, Decimal("0.002")),
    (JobType.GENERATE_DNA, JobStatus.FAILED, 1.0, 0, 0, Decimal("0")),
    (JobType.GENERATE_DNA, JobStatus.PROCESSING, None, 50, 0, Decimal("0.0005")),
]


async def seed_jobs(db: Database, tenant: Tenant, company_id: uuid.UUID) -> list[uuid.UUID]:
    """Jobs with known figures, created a second apart; returns their ids newest first."""
    base = datetime.now(UTC) - timedelta(hours=1)
    ids = []
    async with db.session() as session:
        for n, (job_type, status, seconds, tokens_in, tokens_out, cost) in enumerate(SEEDED):
            created = base + timedelta(seconds=n)
            job = AIJob(
                tenant_id=tenant.id,
                company_id=company_id,
                job_type=job_type,
                status=status,
                created_at=created,
                started_at=created,
                completed_at=created + timedelta(seconds=seconds) if seconds is not None else None,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=cost,
            )
            session.add(job)
            ids.append(job.id)
        await session.commit()
    return ids[::-1]


def percentile_cont(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def test_stats_match_the_jobs(stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database) -> None:
    company = await new_company(stack, tenant)
    await seed_jobs(db, tenant, uuid.UUID(company))
    # Another company's and another tenant's jobs do not count.
    await seed_jobs(db, tenant, uuid.UUID(await new_company(stack, tenant, "Sibling")))
    response = await stack.http.get(f"{JOBS}/companies/{company}/jobs/stats/", headers=tenant.headers())
    assert response.status_code == 200, response.text
    stats = response.json()

    assert stats["total"] == len(SEEDED)
    assert stats["byStatus"] == {s.value: sum(1 for row in SEEDED if row[1] == s) for s in JobStatus}
    assert stats["usage"] == {
        "inputTokens": sum(row[3] for row in SEEDED),
        "outputTokens": sum(row[4] for row in SEEDED),
        "costUsd": pytest.approx(float(sum(row[5] for row in SEEDED))),
    }
    for job_type in JobType:
        rows = [row for row in SEEDED if row[0] == job_type]
        of_type = stats["byType"][job_type.value]
        assert of_type["count"] == len(rows)
        assert of_type["usage"]["inputTokens"] == sum(row[3] for row in rows)
        assert of_type["usage"]["costUsd"] == pytest.approx(float(sum(row[5] for row in rows)))
        completed = [float(row[2]) for row in rows if row[1] == JobStatus.COMPLETED and row[2] is not None]
        durations = of_type["durations"]
        assert durations["count"] == len(completed)
        if completed:
            assert durations["p50Seconds"] == pytest.approx(statistics.median(completed))
            assert durations["p95Seconds"] == pytest.approx(percentile_cont(completed, 0.95), abs=1e-3)
        else:
            assert durations["p50Seconds"] is None and durations["p95Seconds"] is None
    assert stats["byType"]["generate_blogpost"]["durations"]["p95Seconds"] == pytest.approx(96.0)

    later = await stack.http.get(
        f"{JOBS}/companies/{company}/jobs/stats/",
        params={"since": datetime.now(UTC).isoformat()},
        headers=tenant.headers(),
    )
    assert later.json()["total"] == 0
    assert (
        await stack.http.get(f"{JOBS}/companies/{company}/jobs/stats/", headers=other_tenant.headers())
    ).status_code == 404
    assert (
        await stack.http.get(f"{JOBS}/companies/{company}/jobs/stats/?since=yesterday", headers=tenant.headers())
    ).status_code == 422


async def test_bodies_over_a_mebibyte_are_refused(stack: RunningStack, tenant: Tenant) -> None:
    big = b'{"name": "' + b"a" * (1024 * 1024) + b'"}'
    response = await stack.http.post(
        "/api/v1/companies", content=big, headers={**tenant.headers(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["status"] == 413

    async def chunks() -> Any:
        for _ in range(20):
            yield b"a" * 65536

    streamed = await stack.http.post(
        "/api/v1/companies", content=chunks(), headers={**tenant.headers(), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    # Just under the limit is parsed as usual (and refused for what it says, not for its size).
    fits = b'{"name": "' + b"a" * (1024 * 1000) + b'"}'
    assert (
        await stack.http.post(
            "/api/v1/companies", content=fits, headers={**tenant.headers(), "Content-Type": "application/json"}
        )
    ).status_code == 422
