"""Pipelines over HTTP on the dev server with the real worker, the real stages (offline provider) and a real
webhook receiver: start, the three gates decided by a supervisor, refusals that change nothing, the inbox,
publishing, cancel, and who may do what."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from models.db import Database
from models.enums import JobStatus, PublishState, Role
from models.pipeline import month_after
from models.tables import AIJob, Persona, SocialPost
from tests.support.stack import RunningStack, Tenant, running_stack
from tests.support.webhook_receiver import receiving

OPTIONS = {"topicsPerPersona": 1, "compressScheduleSeconds": 2}
TERMINAL = ("COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED")


def next_month() -> str:
    return month_after(datetime.now(UTC))


async def new_company(http: httpx.AsyncClient, tenant: Tenant) -> str:
    body = {
        "name": f"Pipeline Co {uuid.uuid4().hex[:6]}",
        "website": "https://pipeline.example",
        "timezone": "Europe/Prague",
    }
    response = await http.post("/api/v1/companies", json=body, headers=tenant.headers())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start(http: httpx.AsyncClient, tenant: Tenant, company: str, **options: Any) -> str:
    body = {"month": next_month(), "platforms": ["linkedin", "x"], "options": {**OPTIONS, **options}}
    response = await http.post(f"/api/v1/ai/companies/{company}/pipelines/", json=body, headers=tenant.headers())
    assert response.status_code == 202, response.text
    return str(response.json()["pipelineId"])


async def wait_for(
    http: httpx.AsyncClient, tenant: Tenant, pipeline: str, gate: str | None, seconds: float = 90
) -> dict[str, Any]:
    """Polls until the given gate is pending (or, with None, until the pipeline has ended)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=tenant.headers())
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        pending = state["pendingApproval"]
        if gate is None and state["status"] in TERMINAL:
            return state
        if gate is not None and pending and pending["gate"] == gate:
            return state
        if gate is not None and state["status"] in TERMINAL:
            raise AssertionError(f"the pipeline ended while waiting for {gate}: {state['status']} {state['reason']}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still waiting for {gate}: {state}")
        await asyncio.sleep(0.2)


async def reflects_decision(http: httpx.AsyncClient, tenant: Tenant, pipeline: str, decided: list[str]) -> None:
    """Read your writes: right after a 2xx decision, neither the pipeline nor the inbox shows the decided items."""
    state = (await http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=tenant.headers())).json()
    inbox = (await http.get("/api/v1/approvals/", headers=tenant.headers(Role.SUPERVISOR))).json()
    shown = {i["id"] for g in state["pendingApprovals"] for i in g["items"]} | {
        i["id"] for g in inbox for i in g["items"]
    }
    assert not shown & set(decided), (state["pendingApprovals"], inbox)


async def test_a_pipeline_from_research_to_published_posts_through_the_api(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    http = stack.http
    supervisor = tenant.headers(Role.SUPERVISOR)
    async with receiving() as receiver:
        hook = await http.put("/api/v1/tenant/webhook", json={"url": receiver.url}, headers=tenant.headers(Role.ADMIN))
        assert hook.status_code == 200, hook.text
        receiver.secret = hook.json()["secret"]

        company = await new_company(http, tenant)
        pipeline = await start(http, tenant, company)
        again = await http.post(
            f"/api/v1/ai/companies/{company}/pipelines/",
            json={"month": next_month(), "platforms": ["x"]},
            headers=tenant.headers(),
        )
        assert again.status_code == 409  # one running pipeline per company and month

        state = await wait_for(http, tenant, pipeline, "personas")
        assert state["status"] == "AWAITING_APPROVAL" and state["stage"] == "awaiting_persona_selection"
        personas = [item["id"] for item in state["pendingApproval"]["items"]]
        assert len(personas) == 6
        base = f"/api/v1/ai/pipelines/{pipeline}/approvals"

        inbox = (await http.get("/api/v1/approvals/", headers=supervisor)).json()
        assert [(i["pipelineId"], i["gate"]) for i in inbox] == [(pipeline, "personas")]
        assert (await http.get("/api/v1/approvals/", headers=other_tenant.headers(Role.SUPERVISOR))).json() == []
        assert (await http.get("/api/v1/approvals/", headers=tenant.headers())).status_code == 403

        # Refusals: wrong role, another tenant, wrong gate, wrong count, unknown id, bad body; nothing changes.
        selection = {"selectedPersonaIds": personas[:3]}
        assert (await http.post(f"{base}/personas/", json=selection, headers=tenant.headers())).status_code == 403
        assert (
            await http.post(f"{base}/personas/", json=selection, headers=other_tenant.headers(Role.SUPERVISOR))
        ).status_code == 404
        wrong_gate = await http.post(
            f"{base}/topics/", json={"approvedTopicIds": [], "rejected": []}, headers=supervisor
        )
        assert wrong_gate.status_code == 409 and "personas gate is open" in wrong_gate.json()["detail"]
        two = await http.post(f"{base}/personas/", json={"selectedPersonaIds": personas[:2]}, headers=supervisor)
        assert two.status_code == 422 and "select 3 to 6" in two.json()["detail"]
        unknown = await http.post(
            f"{base}/personas/", json={"selectedPersonaIds": [*personas[:2], str(uuid.uuid4())]}, headers=supervisor
        )
        assert unknown.status_code == 422
        assert (
            await http.post(f"{base}/personas/", json={"selected": personas}, headers=supervisor)
        ).status_code == 422
        async with db.session() as session:
            chosen = (
                await session.exec(
                    select(Persona).where(col(Persona.company_id) == uuid.UUID(company), col(Persona.selected))
                )
            ).all()
        assert chosen == []

        ok = await http.post(f"{base}/personas/", json=selection, headers=supervisor)
        assert ok.status_code == 200, ok.text
        await reflects_decision(http, tenant, pipeline, personas)
        assert (await http.post(f"{base}/personas/", json=selection, headers=supervisor)).status_code == 409

        state = await wait_for(http, tenant, pipeline, "topics")
        topics = [item["id"] for item in state["pendingApproval"]["items"]]
        assert len(topics) == 3
        decision = {
            "approvedTopicIds": topics[1:],
            "rejected": [{"topicId": topics[0], "feedback": "Tell a customer story"}],
        }
        assert (await http.post(f"{base}/topics/", json=decision, headers=supervisor)).status_code == 200
        await reflects_decision(http, tenant, pipeline, topics)
        state = await wait_for(http, tenant, pipeline, "topics")
        [replacement] = state["pendingApproval"]["items"]
        assert replacement["revision"] == 1 and replacement["id"] not in topics
        assert (
            await http.post(f"{base}/topics/", json={"approvedTopicIds": [replacement["id"]]}, headers=supervisor)
        ).status_code == 200

        state = await wait_for(http, tenant, pipeline, "blogpost")
        first = state["pendingApproval"]["items"][0]
        no_feedback = await http.post(
            f"{base}/blogposts/{first['id']}/", json={"decision": "request_changes"}, headers=supervisor
        )
        assert no_feedback.status_code == 422
        sent_back = await http.post(
            f"{base}/blogposts/{first['id']}/",
            json={"decision": "request_changes", "feedback": "Cite the survey"},
            headers=supervisor,
        )
        assert sent_back.status_code == 200, sent_back.text
        await reflects_decision(http, tenant, pipeline, [first["id"]])
        decided = {(first["id"], 0)}
        while True:
            body = (await http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=tenant.headers())).json()
            if body["status"] not in ("RUNNING", "AWAITING_APPROVAL"):
                break
            gate = body["pendingApproval"] or {}
            for item in gate.get("items", []) if gate.get("gate") == "blogpost" else []:
                if (item["id"], item["revision"]) not in decided:
                    decided.add((item["id"], item["revision"]))
                    answer = await http.post(
                        f"{base}/blogposts/{item['id']}/", json={"decision": "approve"}, headers=supervisor
                    )
                    assert answer.status_code in (200, 409), answer.text
            await asyncio.sleep(0.2)

        final = await wait_for(http, tenant, pipeline, None)
        assert final["status"] == "COMPLETED", final["reason"]
        assert final["stage"] == "done"
        assert (first["id"], 1) in decided  # the sent-back post came back as revision 2 and was approved
        counts = final["counts"]
        assert counts["blogPosts"] == 3 and counts["socialPosts"] == 6 and counts["published"] == 6
        assert counts["images"] == 6 and counts["videos"] == 3  # the tenant is ULTIMATE
        assert len(final["artifacts"]["personas"]) == 6 and len(final["artifacts"]["blogPosts"]) == 3
        assert {j["status"] for j in final["jobs"]} == {"COMPLETED"}
        assert final["temporalUiUrl"].endswith(final["workflowId"])

        posts = [r for r in receiver.requests if r.event == "post.publish"]
        assert len(posts) == 6 and all(r.verified for r in posts)
        media = posts[0].json["data"]["media"]
        assert media and all("signature=" in m["url"] for m in media)
        download = await http.get(media[0]["url"].replace(stack.base_url, ""))
        assert download.status_code == 200 and download.content[:4] in (
            b"\x89PNG",
            b"\x00\x00\x00\x18",
            b"\x00\x00\x00\x1c",
            b"\x00\x00\x00 ",
        )
        async with db.session() as session:
            rows = (
                await session.exec(select(SocialPost).where(col(SocialPost.company_id) == uuid.UUID(company)))
            ).all()
        assert len(rows) == 6 and all(r.publish_state == PublishState.PUBLISHED and r.external_id for r in rows)

        assert (await http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=other_tenant.headers())).status_code == 404
        assert (
            await http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers())
        ).status_code == 409


async def test_cancel_during_a_gate_keeps_what_was_made_and_stops_everything(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    http = stack.http
    company = await new_company(http, tenant)
    pipeline = await start(http, tenant, company)
    await wait_for(http, tenant, pipeline, "personas")
    assert (
        await http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers(Role.ADMIN))
    ).status_code == 202
    final = await wait_for(http, tenant, pipeline, None)
    assert final["status"] == "CANCELLED" and final["pendingApproval"] is None
    assert len(final["artifacts"]["personas"]) == 6  # kept
    async with db.session() as session:
        open_jobs = (
            await session.exec(
                select(AIJob).where(
                    col(AIJob.pipeline_id) == uuid.UUID(pipeline), col(AIJob.status).not_in(["COMPLETED", "CANCELLED"])
                )
            )
        ).all()
    assert open_jobs == []
    assert (
        await http.post(
            f"/api/v1/ai/pipelines/{pipeline}/approvals/personas/",
            json={"selectedPersonaIds": []},
            headers=tenant.headers(Role.SUPERVISOR),
        )
    ).status_code == 409


async def test_cancel_during_a_running_stage_ends_its_job_cancelled(
    database_url: str, dev_temporal: WorkflowEnvironment, tenant: Tenant, db: Database
) -> None:
    # Every provider call takes 1.5 s here, so a blog post is still being written when the cancel arrives.
    async with running_stack(database_url, dev_temporal.client, offline_latency_ms=1500) as slow:
        http = slow.http
        company = await new_company(http, tenant)
        pipeline = await start(
            http, tenant, company, autoApprovePersonas=True, autoApproveTopics=True, autoApproveBlogposts=True
        )
        deadline = asyncio.get_running_loop().time() + 90
        while True:
            state = (await http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=tenant.headers())).json()
            if any(j["jobType"] == "generate_blogpost" and j["status"] == "PROCESSING" for j in state["jobs"]):
                break
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(0.05)
        assert (
            await http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers())
        ).status_code == 202
        final = await wait_for(http, tenant, pipeline, None)
    assert final["status"] == "CANCELLED"
    statuses = {j["status"] for j in final["jobs"]}
    cancelled = [j for j in final["jobs"] if j["status"] == "CANCELLED"]
    assert cancelled and all(j["jobType"] == "generate_blogpost" for j in cancelled), final["jobs"]
    messages = {j["progressMessage"] for j in cancelled}
    assert "cancelled while running; nothing was stored" in messages, messages
    assert statuses <= {"COMPLETED", "CANCELLED"} and JobStatus.CANCELLED.value in statuses
    async with db.session() as session:
        scheduled = (
            await session.exec(
                select(SocialPost).where(
                    col(SocialPost.company_id) == uuid.UUID(company), col(SocialPost.publish_state) == "SCHEDULED"
                )
            )
        ).all()
    assert scheduled == []


async def test_start_refuses_bad_input_and_free_tenants_get_text_only(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    from models.enums import Tier
    from tests.support.stack import make_tenant

    http = stack.http
    company = await new_company(http, tenant)
    url = f"/api/v1/ai/companies/{company}/pipelines/"
    for body in (
        {"month": "2020-01", "platforms": ["x"]},
        {"month": "2026-13", "platforms": ["x"]},
        {"month": next_month(), "platforms": []},
        {"month": next_month(), "platforms": ["myspace"]},
        {"month": next_month(), "platforms": ["x", "x"]},
        {"month": next_month(), "platforms": ["x"], "options": {"blogPages": 11}},
        {"month": next_month(), "platforms": ["x"], "options": {"surprise": True}},
    ):
        response = await http.post(url, json=body, headers=tenant.headers())
        assert response.status_code == 422, (body, response.text)
    assert (await http.post(url, json={"month": next_month(), "platforms": ["x"]})).status_code == 401
    assert (await http.get(f"/api/v1/ai/pipelines/{uuid.uuid4()}/", headers=tenant.headers())).status_code == 404

    free = await make_tenant(db, Tier.FREE, name="Free tenant")
    company = await new_company(http, free)
    pipeline = await start(
        http, free, company, autoApprovePersonas=True, autoApproveTopics=True, autoApproveBlogposts=True
    )
    # No webhook is set: each branch's posts fail to publish and the branch waits for a supervisor's decision.
    dropped: set[str] = set()
    deadline = asyncio.get_running_loop().time() + 120
    while len(dropped) < 3:
        state = (await http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=free.headers())).json()
        assert state["status"] not in TERMINAL, state
        for gate in state["pendingApprovals"]:
            for item in gate["items"] if gate["gate"] == "failure" else []:
                assert "connect a linkedin channel" in item["detail"]
                answer = await http.post(
                    f"/api/v1/ai/pipelines/{pipeline}/approvals/failures/{item['id']}/",
                    json={"decision": "drop"},
                    headers=free.headers(Role.SUPERVISOR),
                )
                assert answer.status_code == 200, answer.text
                dropped.add(item["id"])
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.2)
    final = await wait_for(http, free, pipeline, None, seconds=120)
    assert final["tier"] == "free"
    types = {j["jobType"] for j in final["jobs"]}
    assert "generate_image" not in types and "generate_video" not in types
    # No webhook is set: the posts are not sent, and say why.
    assert final["counts"].get("publishFailed") == 6
    assert final["status"] == "FAILED" and "connect a linkedin channel" in final["reason"]
