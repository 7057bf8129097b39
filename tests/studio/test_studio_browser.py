"""The studio in a real browser (Debian's Chromium through Playwright) against the real stack: a supervisor takes a
pipeline through its three gates with the pages' own forms, a marketer sees the controls disabled with the reason,
hostile text stays text, a revoked key's session ends, a phone-width screen has no sideways scroll, and no page
has a serious or critical accessibility violation (axe-core). Locators are the accessible ones a person would use:
labels, roles and names. The same flows over plain HTTP are in test_studio_http.py."""

import asyncio
import re
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlmodel import col, select

from api.keys import hash_key
from models.db import Database
from models.enums import Role
from models.tables import ApiKey, BlogPost, Persona, Topic
from tests.api.test_pipeline_api import TERMINAL, new_company, start, wait_for
from tests.support.browser import DESKTOP, PHONE, OpenContext, assert_accessible, collected_findings, screenshot
from tests.support.stack import RunningStack, Tenant

pytestmark = pytest.mark.e2e

PIPELINE_SECONDS = 180  # the longest a test waits on the pipeline (offline provider) before it fails
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


# ---- helpers ---------------------------------------------------------------------------------------------------


async def sign_in(page: Page, key: str, shot: str | None = None) -> None:
    """Signs in through the sign-in form and lands on the approvals page."""
    await page.goto("/studio/sign-in")
    await expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    await page.get_by_label("API key").fill(key)
    if shot:
        await screenshot(page, shot)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/studio/approvals$"))
    await expect(page.get_by_role("heading", name="Approvals", level=1)).to_be_visible()


async def open_approvals(page: Page) -> None:
    """Through the navigation's link, as a person would."""
    await page.get_by_role("navigation", name="Studio").get_by_role("link", name="Approvals", exact=True).click()
    await expect(page.get_by_role("heading", name="Approvals", level=1)).to_be_visible()


async def pipeline_at_persona_gate(stack: RunningStack, tenant: Tenant, company: str | None = None) -> str:
    company = company or await new_company(stack.http, tenant)
    pipeline = await start(stack.http, tenant, company, autoApprovePersonas=False)
    await wait_for(stack.http, tenant, pipeline, "personas", seconds=PIPELINE_SECONDS)
    return pipeline


async def cancel(stack: RunningStack, tenant: Tenant, pipeline: str) -> None:
    await stack.http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers())


def gate_items(state: dict[str, Any], gate: str) -> list[dict[str, Any]]:
    return [item for group in state["pendingApprovals"] if group["gate"] == gate for item in group["items"]]


async def wait_for_open_gate(stack: RunningStack, tenant: Tenant, pipeline: str, gate: str) -> dict[str, Any]:
    """Until `gate` is among the pipeline's open gates; its state. Not only the first one (`pendingApproval`):
    once topics are approved, their branches' blog posts open a gate of their own, in whichever order the workers
    finish, while a topic sent back is still being written again."""
    deadline = asyncio.get_running_loop().time() + PIPELINE_SECONDS
    while True:
        response = await stack.http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=tenant.headers())
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        if gate_items(state, gate):
            return state
        if state["status"] in TERMINAL:
            raise AssertionError(f"the pipeline ended while waiting for {gate}: {state['status']} {state['reason']}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still waiting for {gate}: {state}")
        await asyncio.sleep(0.2)


async def wait_for_topics(
    stack: RunningStack, tenant: Tenant, pipeline: str, decided: Collection[str] = ()
) -> list[str]:
    """Until the topic gate is open with topics not yet decided; their ids."""
    deadline = asyncio.get_running_loop().time() + PIPELINE_SECONDS
    while True:
        state = await wait_for_open_gate(stack, tenant, pipeline, "topics")
        fresh = [item["id"] for item in gate_items(state, "topics") if item["id"] not in decided]
        if fresh:
            return fresh
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no new topics came back to the gate: {state}")
        await asyncio.sleep(0.5)


async def wait_for_blog_post(
    stack: RunningStack, tenant: Tenant, db: Database, pipeline: str, post: str | None = None, revision: int = 1
) -> dict[str, Any]:
    """Until a blog post (`post`, else any) waits at its gate with its current revision at least `revision` (1 is
    the first; the gate item's own `revision` counts the rewrites, from 0); its gate item."""
    deadline = asyncio.get_running_loop().time() + PIPELINE_SECONDS
    while True:
        state = await wait_for_open_gate(stack, tenant, pipeline, "blogpost")
        for item in gate_items(state, "blogpost"):
            if post is None or item["id"] == post:
                async with db.session() as session:
                    row = await session.get(BlogPost, uuid.UUID(item["id"]))
                if row is not None and row.current_revision >= revision:
                    return item
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"blog post {post} did not come back with revision {revision}: {state}")
        await asyncio.sleep(0.5)


async def persona_names(db: Database, ids: list[str]) -> list[str]:
    """What each persona's checkbox is labelled with, in the order of `ids`."""
    async with db.session() as session:
        rows = (await session.exec(select(Persona).where(col(Persona.id).in_([uuid.UUID(i) for i in ids])))).all()
    names = {str(row.id): row.name for row in rows}
    return [names[i] for i in ids]


async def topic_titles(db: Database, ids: list[str]) -> list[str]:
    """What each topic's fieldset is named by (its legend), in the order of `ids`."""
    async with db.session() as session:
        rows = (await session.exec(select(Topic).where(col(Topic.id).in_([uuid.UUID(i) for i in ids])))).all()
    titles = {str(row.id): row.title for row in rows}
    return [titles[i] for i in ids]


async def selected_personas(db: Database, company: str) -> int:
    async with db.session() as session:
        statement = select(Persona).where(col(Persona.company_id) == uuid.UUID(company), col(Persona.selected))
        return len((await session.exec(statement)).all())


# What makes a page wider than the screen: elements past its right edge that no scrolling box contains (those a
# `.table-wrap` holds scroll inside it; an absolutely positioned one escapes unless the box is positioned), the
# widest first; every element past the edge when none is found that way.
OVERFLOWING = """() => {
    const width = document.documentElement.clientWidth;
    const path = el => {
        const parts = [];
        for (let e = el; e && e.nodeType === 1 && parts.length < 5; e = e.parentElement) {
            const classes = typeof e.className === 'string' ? e.className.trim().split(/\\s+/).join('.') : '';
            parts.unshift(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (classes ? '.' + classes : ''));
        }
        return parts.join(' > ');
    };
    const contained = el => {
        const escapes = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
            const style = getComputedStyle(a);
            if (style.overflowX !== 'visible') return !escapes || style.position !== 'static';
        }
        return false;
    };
    const right = e => e.getBoundingClientRect().right;
    const past = [...document.body.querySelectorAll('*')]
        .filter(e => e.getClientRects().length && right(e) > width + 0.5);
    const culprits = past.filter(e => !contained(e));
    return (culprits.length ? culprits : past)
        .sort((a, b) => right(b) - right(a))
        .slice(0, 10)
        .map(e => `${path(e)} (right edge ${Math.round(right(e))} px, position ${getComputedStyle(e).position})`);
}"""


async def assert_one_main_heading(page: Page, text: str) -> None:
    """The page's title is its only level-1 heading."""
    headings = await page.get_by_role("heading", level=1).all_inner_texts()
    assert headings == [text], f"{page.url}: level-1 headings {headings}, expected only {text!r}"


async def assert_one_heading(page: Page, name: str, level: int) -> None:
    """One heading of this name and level on the page (a section shown twice is a bug)."""
    count = await page.get_by_role("heading", name=name, exact=True, level=level).count()
    assert count == 1, f"{page.url}: {count} level-{level} headings named {name!r}, expected one"


async def assert_no_sideways_scroll(page: Page, width: int) -> None:
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    if scroll_width > width:
        offenders = await page.evaluate(OVERFLOWING)
        raise AssertionError(
            f"{page.url} scrolls sideways at {width} px (scrollWidth {scroll_width}); wider than the screen:\n  "
            + "\n  ".join(offenders)
        )


# ---- the tests -------------------------------------------------------------------------------------------------


async def test_a_supervisor_takes_a_pipeline_through_the_three_gates(
    stack: RunningStack, tenant: Tenant, db: Database, page: Page
) -> None:
    """The whole way through the three gates with the pages' forms. Accessibility problems (axe-core, serious or
    critical) and a page's headings are collected on the way and fail the test at its end, with all of them."""
    company = await new_company(stack.http, tenant)
    pipeline = await pipeline_at_persona_gate(stack, tenant, company)
    try:
        with collected_findings() as findings:
            await sign_in(page, tenant.keys[Role.SUPERVISOR], shot="sign-in")
            navigation = page.get_by_role("navigation", name="Studio")
            await expect(navigation.get_by_role("link", name="Approvals", exact=True)).to_be_visible()
            await findings.check(assert_accessible(page))
            await screenshot(page, "approvals")

            # Gate 1: too few personas is refused inline and changes nothing; then three are selected.
            await page.get_by_role("link", name="Review", exact=True).click()
            await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}/personas$"))
            await expect(page.get_by_role("heading", name=re.compile("^Select personas"), level=1)).to_be_visible()
            state = await wait_for(stack.http, tenant, pipeline, "personas")
            names = await persona_names(db, [item["id"] for item in gate_items(state, "personas")])
            await expect(page.get_by_role("checkbox")).to_have_count(len(names))
            await findings.check(assert_accessible(page))
            await screenshot(page, "persona-gate")

            for name in names[:2]:
                await page.get_by_role("checkbox", name=name, exact=True).check()
            await page.get_by_role("button", name="Select personas").click()
            await expect(page.get_by_role("alert")).to_contain_text("Select at least 3 personas")
            await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}/personas$"))
            assert await selected_personas(db, company) == 0
            assert len(gate_items(await wait_for(stack.http, tenant, pipeline, "personas"), "personas")) == len(names)

            for name in names[:3]:
                await page.get_by_role("checkbox", name=name, exact=True).check()
            await page.get_by_role("button", name="Select personas").click()
            await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}(\?|$)"))
            await expect(page.get_by_role("status")).to_contain_text("Personas selected")
            assert await selected_personas(db, company) == 3

            # Gate 2: one topic sent back with feedback, the rest approved; then the regenerated one approved.
            topics = await wait_for_topics(stack, tenant, pipeline)
            titles = await topic_titles(db, topics)
            await open_approvals(page)
            await page.get_by_role("link", name="Review", exact=True).click()
            await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}/topics$"))
            await expect(page.get_by_role("button", name="Submit decision")).to_be_visible()
            await expect(page.get_by_role("group")).to_have_count(len(topics))
            await findings.check(assert_accessible(page))
            await screenshot(page, "topic-gate")

            feedback = "Too generic: name a real retrofit project"
            for index, title in enumerate(titles):
                topic = page.get_by_role("group", name=title, exact=True)
                if index == 0:
                    await topic.get_by_role("radio", name="Reject", exact=True).check()
                    await topic.get_by_label("Feedback").fill(feedback)
                else:
                    await topic.get_by_role("radio", name="Approve", exact=True).check()
            await page.get_by_role("button", name="Submit decision").click()
            await expect(page.get_by_role("status")).to_contain_text(
                f"Decision sent: {len(topics) - 1} approved, 1 sent back"
            )
            async with db.session() as session:
                rejected = await session.get(Topic, uuid.UUID(topics[0]))
                assert rejected is not None and rejected.status == "REJECTED" and rejected.feedback == feedback

            again = await wait_for_topics(stack, tenant, pipeline, decided=set(topics))
            await open_approvals(page)
            await page.get_by_role("link", name="Review", exact=True).click()
            await expect(page.get_by_role("group")).to_have_count(len(again))
            for title in await topic_titles(db, again):
                await page.get_by_role("group", name=title, exact=True).get_by_role("radio", name="Approve").check()
            await page.get_by_role("button", name="Submit decision").click()
            await expect(page.get_by_role("status")).to_contain_text(
                f"Decision sent: {len(again)} approved, 0 sent back"
            )

            # Gate 3: a blog post; changes requested once with feedback, then its revision 2 approved.
            item = await wait_for_blog_post(stack, tenant, db, pipeline)
            post = str(item["id"])
            async with db.session() as session:
                row = await session.get(BlogPost, uuid.UUID(post))
                assert row is not None
                title = row.title
            await open_approvals(page)
            await page.get_by_role("link", name=f"Review {item['title']}", exact=True).click()
            await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}/blogposts/{post}$"))
            await expect(page.get_by_role("heading", level=1).first).to_have_text(title)
            await findings.check(assert_one_main_heading(page, title))
            await findings.check(assert_one_heading(page, "Sources", level=2))
            article = page.get_by_role("article")
            await expect(article.get_by_text(re.compile(r"^Revision 1 ·"))).to_be_visible()
            await findings.check(assert_accessible(page))
            await screenshot(page, "blog-post")

            changes = "Add a customer story"
            await page.get_by_label("Feedback").fill(changes)
            await page.get_by_role("button", name="Request changes").click()
            await expect(page.get_by_role("status")).to_contain_text("Changes requested")

            await wait_for_blog_post(stack, tenant, db, pipeline, post, revision=2)
            await page.goto(f"/studio/pipelines/{pipeline}/blogposts/{post}")
            await expect(article.get_by_text(re.compile(r"^Revision 2 ·"))).to_be_visible()
            revisions = page.get_by_role("region", name="Revisions")
            await expect(
                revisions.get_by_text(re.compile(rf"^Revision 2 ·.*after feedback: “{changes}”"))
            ).to_be_visible()
            await expect(revisions.get_by_label("Changes against revision 1")).to_be_visible()
            await findings.check(assert_accessible(page))  # now with the diff against revision 1
            await page.set_viewport_size(PHONE)  # where the diff's long lines surely scroll sideways
            await findings.check(assert_accessible(page))
            await page.set_viewport_size(DESKTOP)
            await page.get_by_role("button", name="Approve", exact=True).click()
            await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}(\?|$)"))
            await expect(page.get_by_role("status")).to_contain_text("Blog post approved")
            async with db.session() as session:
                row = await session.get(BlogPost, uuid.UUID(post))
                assert row is not None and row.status == "APPROVED" and row.current_revision == 2

            await expect(page.get_by_role("heading", name="Jobs", level=2)).to_be_visible()
            await findings.check(assert_accessible(page))
            await screenshot(page, "pipeline")
    finally:
        await cancel(stack, tenant, pipeline)


async def test_a_marketer_sees_the_persona_gate_but_cannot_decide(
    stack: RunningStack, tenant: Tenant, page: Page
) -> None:
    pipeline = await pipeline_at_persona_gate(stack, tenant)
    try:
        await sign_in(page, tenant.keys[Role.MARKETER])
        await page.get_by_role("link", name="Review", exact=True).click()
        await expect(page).to_have_url(re.compile(rf"/studio/pipelines/{pipeline}/personas$"))
        button = page.get_by_role("button", name="Select personas")
        await expect(button).to_be_disabled()
        await expect(button).to_have_accessible_description(re.compile("Only a supervisor can decide"))
        await expect(page.get_by_text("Only a supervisor can decide")).to_be_visible()
        checkboxes = page.get_by_role("checkbox")
        await expect(checkboxes.first).to_be_visible()
        for index in range(await checkboxes.count()):
            await expect(checkboxes.nth(index)).to_be_disabled()
    finally:
        await cancel(stack, tenant, pipeline)


async def test_hostile_text_is_shown_as_text_and_never_runs(stack: RunningStack, tenant: Tenant, page: Page) -> None:
    response = await stack.http.post(
        "/api/v1/companies", json={"name": HOSTILE, "website": "https://evil.example"}, headers=tenant.headers()
    )
    assert response.status_code == 201, response.text
    pipeline = await pipeline_at_persona_gate(stack, tenant, str(response.json()["id"]))
    try:
        await sign_in(page, tenant.keys[Role.SUPERVISOR])
        await expect(page.get_by_role("cell", name=HOSTILE, exact=True)).to_be_visible()
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("img").count() == 0

        for path in ("", "/personas"):
            await page.goto(f"/studio/pipelines/{pipeline}{path}")
            await expect(page.get_by_role("heading", level=1)).to_contain_text(HOSTILE)
            await expect(page).to_have_title(re.compile(re.escape(HOSTILE)))
            assert await page.evaluate("window.__pwned") is None, path
            assert await page.locator("main img, main script").count() == 0, path
    finally:
        await cancel(stack, tenant, pipeline)


async def test_a_revoked_keys_session_ends_at_the_next_page(
    stack: RunningStack, tenant: Tenant, db: Database, page: Page
) -> None:
    from api.keys import add_key

    async with db.session() as session:
        key, _ = await add_key(session, tenant.id, Role.SUPERVISOR)
        await session.commit()
    await sign_in(page, key)
    assert any(cookie["name"] == "studio_session" for cookie in await page.context.cookies())

    async with db.session() as session:
        row = (await session.exec(select(ApiKey).where(col(ApiKey.key_hash) == hash_key(key)))).one()
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        await session.commit()

    await page.reload()
    await expect(page).to_have_url(re.compile(r"/studio/sign-in\?why=revoked$"))
    await expect(page.get_by_role("status")).to_contain_text("has been revoked")
    await expect(page.get_by_label("API key")).to_be_visible()
    assert not any(cookie["name"] == "studio_session" for cookie in await page.context.cookies())
    await page.goto("/studio/approvals")
    await expect(page).to_have_url(re.compile(r"/studio/sign-in$"))


async def test_a_phone_screen_has_no_sideways_scroll(
    stack: RunningStack, tenant: Tenant, open_context: OpenContext
) -> None:
    pipeline = await pipeline_at_persona_gate(stack, tenant)
    try:
        context = await open_context(viewport=PHONE)
        page = await context.new_page()
        with collected_findings() as findings:
            await sign_in(page, tenant.keys[Role.SUPERVISOR])
            await expect(page.get_by_role("link", name="Review", exact=True)).to_be_visible()
            await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
            await page.get_by_role("link", name="Review", exact=True).click()
            await expect(page.get_by_role("button", name="Select personas")).to_be_visible()
            await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
    finally:
        await cancel(stack, tenant, pipeline)


@pytest.mark.e2e
async def test_the_pipeline_page_shows_progress_live(
    stack: RunningStack, tenant: Tenant, db: Database, page: Page
) -> None:
    """A running job's row follows its stream in the browser: a progress report and the job's end show without
    a reload, and the page's script raises no error."""
    from models.enums import JobStatus
    from models.tables import AIJob
    from tests.studio.test_studio_http import pipeline_with_running_job

    pipeline, job = await pipeline_with_running_job(db, tenant, "starting the research")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await sign_in(page, tenant.keys[Role.MARKETER])
    await page.goto(f"/studio/pipelines/{pipeline.id}")
    row = page.locator(f"#job-{job.id}")
    await expect(row.locator(".job-message")).to_have_text("starting the research")

    async def move(**values: object) -> None:
        async with db.session() as session:
            current = await session.get(AIJob, job.id)
            assert current is not None
            for name, value in values.items():
                setattr(current, name, value)
            session.add(current)
            await session.commit()

    await move(progress=60, progress_message="extracting data points")
    await expect(row.locator(".job-message")).to_have_text("extracting data points", timeout=30_000)
    await expect(row.locator(".job-progress")).to_have_text("60")
    await move(status=JobStatus.COMPLETED, progress=100, progress_message="completed")
    await expect(row.locator(".job-status")).to_have_text("COMPLETED", timeout=30_000)
    assert errors == []
