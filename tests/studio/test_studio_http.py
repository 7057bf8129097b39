"""The studio over plain HTTP against the real stack (dev server, worker, offline provider): sign-in and its cookie,
sessions that die with their key, CSRF, tenancy, roles, hostile text, and the three gates decided through its
forms. The same flows in a real browser are in test_studio_browser.py."""

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from api.keys import hash_key
from models.db import Database
from models.enums import JobStatus, JobType, Role
from models.tables import AIJob, ApiKey, Company, Persona, Pipeline, Topic
from tests.api.test_pipeline_api import new_company, start, wait_for
from tests.support.stack import RunningStack, Tenant

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
SIGN_IN_TOKEN = re.compile(r'name="sign_in_token" value="([^"]+)"')


@contextlib.asynccontextmanager
async def signed_in(stack: RunningStack, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client (its own cookie jar) signed in with `key`."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        form = await client.get("/studio/sign-in")
        token = SIGN_IN_TOKEN.search(form.text)
        assert token, form.text
        response = await client.post("/studio/sign-in", data={"api_key": key, "sign_in_token": token.group(1)})
        assert response.status_code == 303 and response.headers["location"] == "/studio/approvals", response.text
        yield client


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, html
    return match.group(1)


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(stack: RunningStack, tenant: Tenant) -> None:
    key = tenant.keys[Role.SUPERVISOR]
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        assert (await client.get("/studio/approvals")).headers["location"] == "/studio/sign-in"
        form = await client.get("/studio/sign-in")
        assert 'for="api_key">API key</label>' in form.text and ">Sign in</button>" in form.text
        token = SIGN_IN_TOKEN.search(form.text)
        assert token
        # A wrong key: the form again with the reason, and no session.
        wrong = await client.post("/studio/sign-in", data={"api_key": "cp_wrong", "sign_in_token": token.group(1)})
        assert wrong.status_code == 401 and "not valid or has been revoked" in wrong.text
        assert "studio_session" not in client.cookies
        # No sign-in token (a form posted from another site): refused.
        async with httpx.AsyncClient(base_url=stack.base_url) as stranger:
            refused = await stranger.post("/studio/sign-in", data={"api_key": key, "sign_in_token": "x"})
            assert refused.status_code == 403 and "studio_session" not in stranger.cookies

        token = SIGN_IN_TOKEN.search((await client.get("/studio/sign-in")).text)
        assert token
        ok = await client.post("/studio/sign-in", data={"api_key": key, "sign_in_token": token.group(1)})
        assert ok.status_code == 303
        cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith("studio_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/studio" in cookie
        assert "Max-Age=" in cookie
        assert key not in cookie and hash_key(key) not in cookie
        page = await client.get("/studio/approvals")
        assert page.status_code == 200 and "<h1>Approvals</h1>" in page.text

        # Signing out needs the form's CSRF token, then the session is gone.
        assert (await client.post("/studio/sign-out")).status_code == 403
        out = await client.post("/studio/sign-out", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/studio/sign-in?why=signed-out"
        assert (await client.get("/studio/approvals")).headers["location"] == "/studio/sign-in"


async def test_a_forged_or_revoked_session_is_signed_out(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    from api.keys import add_key

    async with db.session() as session:
        key, _ = await add_key(session, tenant.id, Role.SUPERVISOR)
        await session.commit()
    async with signed_in(stack, key) as client:
        assert (await client.get("/studio/approvals")).status_code == 200
        value = client.cookies["studio_session"]
        key_hex, issued, nonce, signature = value.split(".")

        async with httpx.AsyncClient(base_url=stack.base_url) as forger:
            for forged in (
                f"{key_hex}.{issued}.{nonce}.{'0' * 64}",  # a made-up signature
                f"{key_hex}.{int(issued) + 10**6}.{nonce}.{signature}",  # a later issue time, the old signature
                "garbage",
            ):
                forger.cookies.set("studio_session", forged, path="/studio")
                answer = await forger.get("/studio/approvals")
                assert answer.status_code == 303 and answer.headers["location"].startswith("/studio/sign-in")

        async with db.session() as session:
            row = (await session.exec(select(ApiKey).where(col(ApiKey.key_hash) == hash_key(key)))).one()
            row.revoked_at = datetime.now(UTC)
            session.add(row)
            await session.commit()
        ended = await client.get("/studio/approvals")
        assert ended.status_code == 303 and ended.headers["location"] == "/studio/sign-in?why=revoked"
        notice = await client.get("/studio/sign-in?why=revoked")
        assert "has been revoked" in notice.text


async def test_another_tenants_pipeline_is_the_404_page(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant
) -> None:
    company = await new_company(stack.http, tenant)
    pipeline = await start(stack.http, tenant, company, autoApprovePersonas=False)
    async with signed_in(stack, other_tenant.keys[Role.SUPERVISOR]) as client:
        for path in ("", "/personas", "/topics", f"/blogposts/{uuid.uuid4()}"):
            answer = await client.get(f"/studio/pipelines/{pipeline}{path}")
            assert answer.status_code == 404 and "Not found" in answer.text, path
        async with signed_in(stack, tenant.keys[Role.MARKETER]) as mine:
            assert (await mine.get(f"/studio/pipelines/{pipeline}")).status_code == 200
            assert (await mine.get(f"/studio/pipelines/{uuid.uuid4()}")).status_code == 404
    await stack.http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers())


async def wait_for_revision(stack: RunningStack, tenant: Tenant, pipeline: str, post: str, revision: int) -> None:
    """Until the blog post waits at its gate again with at least `revision` (the gate counts the changes asked for:
    0 the first time, 1 after one request for changes)."""
    for _ in range(360):
        state = await wait_for(stack.http, tenant, pipeline, "blogpost", seconds=180)
        items = {i["id"]: i for g in state["pendingApprovals"] if g["gate"] == "blogpost" for i in g["items"]}
        if post in items and items[post]["revision"] >= revision:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"blog post {post} did not come back with revision {revision}")


async def selected_personas(db: Database, company: str) -> list[Any]:
    async with db.session() as session:
        statement = select(Persona).where(col(Persona.company_id) == uuid.UUID(company), col(Persona.selected))
        return list((await session.exec(statement)).all())


@pytest.mark.e2e
async def test_three_gates_through_the_studios_forms(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    """A supervisor decides all three gates through the studio's forms; a marketer sees them and cannot decide;
    refusals (no CSRF token, too few personas, a rejection without feedback) change nothing; hostile text from
    the company's name is shown as text."""
    response = await stack.http.post(
        "/api/v1/companies",
        json={"name": "<script>alert(1)</script> Evil <img src=x onerror=alert(2)>", "website": "https://evil.example"},
        headers=tenant.headers(),
    )
    assert response.status_code == 201, response.text
    company = str(response.json()["id"])
    pipeline = await start(stack.http, tenant, company, autoApprovePersonas=False)
    await wait_for(stack.http, tenant, pipeline, "personas")
    base = f"/studio/pipelines/{pipeline}"

    async with (
        signed_in(stack, tenant.keys[Role.MARKETER]) as marketer,
        signed_in(stack, tenant.keys[Role.SUPERVISOR]) as supervisor,
    ):
        inbox = await supervisor.get("/studio/approvals")
        assert f'href="{base}/personas">Review</a>' in inbox.text
        assert "<script>alert(1)</script>" not in inbox.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in inbox.text
        assert "<img src=x" not in inbox.text

        # The marketer sees the personas with the controls disabled and the reason; a forced POST changes nothing.
        seen = await marketer.get(f"{base}/personas")
        assert seen.status_code == 200 and "Only a supervisor can decide" in seen.text
        assert re.search(r'<button type="submit"\s+disabled', seen.text)
        ids = re.findall(r'name="persona" value="([0-9a-f-]{36})"', seen.text)
        assert len(ids) == 6
        forced = await marketer.post(f"{base}/personas", data={"csrf_token": csrf_of(seen.text), "persona": ids[:3]})
        assert forced.status_code == 403 and await selected_personas(db, company) == []

        page = await supervisor.get(f"{base}/personas")
        token = csrf_of(page.text)
        # No CSRF token, or another session's: refused, nothing changed.
        assert (await supervisor.post(f"{base}/personas", data={"persona": ids[:3]})).status_code == 403
        other = await supervisor.post(f"{base}/personas", data={"persona": ids[:3], "csrf_token": csrf_of(seen.text)})
        assert other.status_code == 403 and await selected_personas(db, company) == []
        # Fewer than three: shown inline.
        two = await supervisor.post(f"{base}/personas", data={"persona": ids[:2], "csrf_token": token})
        assert two.status_code == 422 and "Select at least 3 personas" in two.text
        assert await selected_personas(db, company) == []

        chosen = await supervisor.post(f"{base}/personas", data={"persona": ids[:3], "csrf_token": token})
        assert chosen.status_code == 303, chosen.text
        assert len(await selected_personas(db, company)) == 3
        assert "Personas selected" in (await supervisor.get(chosen.headers["location"])).text

        # Gate 2: a rejection needs feedback; then one topic is sent back and the rest approved.
        await wait_for(stack.http, tenant, pipeline, "topics")
        page = await supervisor.get(f"{base}/topics")
        topics = re.findall(r'name="decision-([0-9a-f-]{36})" value="approve"', page.text)
        assert len(topics) == 3
        form: dict[str, Any] = {"csrf_token": csrf_of(page.text)}
        form |= {f"decision-{t}": "approve" for t in topics}
        form[f"decision-{topics[0]}"] = "reject"
        refused = await supervisor.post(f"{base}/topics", data=form)
        assert refused.status_code == 422 and "Feedback is required" in refused.text
        assert 'value="reject" id="reject-' in refused.text and "checked" in refused.text  # the choices are kept
        form[f"feedback-{topics[0]}"] = "Too generic: name a real retrofit project"
        form[f"decision-{topics[1]}"] = "drop"
        sent = await supervisor.post(f"{base}/topics", data=form)
        assert sent.status_code == 303, sent.text
        assert "1 approved, 1 sent back, 1 dropped" in (await supervisor.get(sent.headers["location"])).text
        async with db.session() as session:
            rejected = await session.get(Topic, uuid.UUID(topics[0]))
            assert rejected is not None and rejected.status == "REJECTED"
            dropped = await session.get(Topic, uuid.UUID(topics[1]))
            assert dropped is not None and dropped.status == "DROPPED"

        # The regenerated topic comes back to the gate; approve it.
        state = await wait_for(stack.http, tenant, pipeline, "topics")
        page = await supervisor.get(f"{base}/topics")
        again = re.findall(r'name="decision-([0-9a-f-]{36})" value="approve"', page.text)
        assert len(again) == 1 and again[0] not in topics, state  # the rejected one, rewritten; not the dropped
        form = {"csrf_token": csrf_of(page.text)} | {f"decision-{t}": "approve" for t in again}
        assert (await supervisor.post(f"{base}/topics", data=form)).status_code == 303

        # Gate 3: the blog post, rendered; changes requested once, then approved.
        state = await wait_for(stack.http, tenant, pipeline, "blogpost", seconds=180)
        post = state["pendingApproval"]["items"][0]["id"]
        page = await supervisor.get(f"{base}/blogposts/{post}")
        assert page.status_code == 200 and "A4 pages" in page.text and 'class="citation"' in page.text
        assert "Request changes" in page.text
        no_feedback = await supervisor.post(
            f"{base}/blogposts/{post}", data={"csrf_token": csrf_of(page.text), "decision": "request_changes"}
        )
        assert no_feedback.status_code == 422 and "Feedback" in no_feedback.text
        back = await supervisor.post(
            f"{base}/blogposts/{post}",
            data={"csrf_token": csrf_of(page.text), "decision": "request_changes", "feedback": "Add a customer story"},
        )
        assert back.status_code == 303, back.text
        await wait_for_revision(stack, tenant, pipeline, post, 1)
        page = await supervisor.get(f"{base}/blogposts/{post}")
        assert "Revision 2" in page.text and 'class="diff"' in page.text and "Add a customer story" in page.text

        # The supervisor's own edit, with hostile Markdown: saved as revision 3 by a person, shown as text.
        detail = await stack.http.get(f"/api/v1/companies/{company}/blogposts/{post}", headers=tenant.headers())
        hostile = (
            detail.json()["markdown"]
            + "\n\n<script>window.__pwned=1</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) [1]"
        )
        bad = await supervisor.post(
            f"{base}/blogposts/{post}/edit", data={"csrf_token": csrf_of(page.text), "markdown": hostile + " [99]"}
        )
        assert bad.status_code == 422 and "point at no source" in bad.text and "Nothing was saved" in bad.text
        edited = await supervisor.post(
            f"{base}/blogposts/{post}/edit", data={"csrf_token": csrf_of(page.text), "markdown": hostile}
        )
        assert edited.status_code == 303, edited.text
        page = await supervisor.get(edited.headers["location"])
        assert "Saved as revision 3" in page.text and "written by a person" in page.text
        prose = page.text.split('<div class="prose">', 1)[1].split("</div>", 1)[0]
        for raw in ("<script>", "<img", 'href="javascript:'):
            assert raw not in prose, prose[max(0, prose.find(raw) - 300) : prose.find(raw) + 100]
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in prose
        approved = await supervisor.post(
            f"{base}/blogposts/{post}", data={"csrf_token": csrf_of(page.text), "decision": "approve"}
        )
        assert approved.status_code == 303, approved.text
    await stack.http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers())


async def pipeline_with_running_job(db: Database, tenant: Tenant, message: str) -> tuple[Pipeline, AIJob]:
    """A pipeline row (no workflow behind it) with one DNA job PROCESSING at 40 % with `message`."""
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Stream Co", website="https://stream.example")
        session.add(company)
        await session.flush()
        pipeline = Pipeline(
            tenant_id=tenant.id, company_id=company.id, month="2027-01", workflow_id=f"wf-{uuid.uuid4()}"
        )
        session.add(pipeline)
        await session.flush()
        job = AIJob(
            tenant_id=tenant.id,
            company_id=company.id,
            pipeline_id=pipeline.id,
            job_type=JobType.GENERATE_DNA,
            status=JobStatus.PROCESSING,
            progress=40,
            progress_message=message,
        )
        session.add(job)
        await session.commit()
    return pipeline, job


async def test_the_pipeline_page_follows_running_jobs_on_their_streams(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    """A running job's row carries its stream's URL with a token minted for the session's key: it opens without a
    header, sends the job's progress and its end."""
    pipeline, job = await pipeline_with_running_job(db, tenant, "researching")
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        page = await client.get(f"/studio/pipelines/{pipeline.id}")
        assert 'src="/studio/static/studio.js"' in page.text
        found = re.search(rf'id="job-{job.id}" data-stream="([^"]+)"', page.text)
        assert found, page.text
        url = found.group(1).replace("&amp;", "&")
        assert url.startswith(f"/api/v1/ai/jobs/{job.id}/stream/?token=")
        assert (await client.get("/studio/static/studio.js")).status_code == 200

    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as browser:  # no key, no cookie
        async with browser.stream("GET", url) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            seen, ended = "", False
            async for chunk in stream.aiter_text():
                seen += chunk
                if "event: progress" in seen and "researching" in seen and not ended:
                    ended = True
                    async with db.session() as session:
                        row = await session.get(AIJob, job.id)
                        assert row is not None
                        row.status, row.progress, row.progress_message = JobStatus.COMPLETED, 100, "completed"
                        session.add(row)
                        await session.commit()
                if "event: end" in seen:
                    break
        assert "event: end" in seen
