"""The studio's calendar, its iCalendar feed and the social post previews, over HTTP against the running stack
(rows made straight in the database, no pipeline run), plus the pure counting and iCalendar helpers."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from api.keys import add_key
from api.studio import ics
from api.studio.calendar import ics_token
from models.db import Database
from models.enums import MediaKind, Platform, PublishState, Role
from models.media_store import media_path
from models.tables import ApiKey, BlogPost, Company, MediaAsset, Persona, SocialPost, Topic
from models.text_limits import LIMITS, counted_length, grapheme_count
from tests.studio.conftest import OpenContext
from tests.studio.test_studio_browser import PHONE, assert_no_sideways_scroll, assert_one_main_heading, sign_in
from tests.studio.test_studio_http import signed_in
from tests.support.browser import assert_accessible, collected_findings, screenshot
from tests.support.stack import RunningStack, Tenant

HOSTILE = 'Launch, today; really\nsecond line <script>alert("x")</script> \\ done'
FEED_URL = re.compile(r'id="feed-url" type="text" readonly value="([^"]+)"')
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class Made:
    company: Company
    blog_post: BlogPost


async def make_blog_post(
    db: Database, tenant: Tenant, *, title: str = "Heat pumps in old houses", timezone: str = "Europe/Prague"
) -> Made:
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name=f"Calendar Co {uuid.uuid4().hex[:6]}", timezone=timezone)
        session.add(company)
        await session.flush()
        persona = Persona(tenant_id=tenant.id, company_id=company.id, name="Facility manager")
        session.add(persona)
        await session.flush()
        topic = Topic(tenant_id=tenant.id, company_id=company.id, persona_id=persona.id, month="2027-01", title=title)
        session.add(topic)
        await session.flush()
        post = BlogPost(tenant_id=tenant.id, company_id=company.id, topic_id=topic.id, title=title, slug="heat-pumps")
        session.add(post)
        await session.commit()
        await session.refresh(company)
        await session.refresh(post)
        return Made(company=company, blog_post=post)


async def make_social(
    db: Database,
    made: Made,
    platform: Platform,
    text: str,
    publish_at: datetime | None,
    state: PublishState = PublishState.SCHEDULED,
    hashtags: list[str] | None = None,
) -> SocialPost:
    async with db.session() as session:
        post = SocialPost(
            tenant_id=made.blog_post.tenant_id,
            company_id=made.company.id,
            blog_post_id=made.blog_post.id,
            platform=platform,
            text=text,
            hashtags=hashtags or [],
            image_prompt="A heat pump beside a brick house at dusk. Warm light.",
            publish_at=publish_at,
            publish_state=state,
        )
        session.add(post)
        await session.commit()
        await session.refresh(post)
        return post


def unfold(body: str) -> list[str]:
    """The content lines of an iCalendar text (RFC 5545 3.1): CRLF + space continues the line before."""
    return body.replace("\r\n ", "").split("\r\n")


def unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def events_of(lines: list[str]) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in lines:
        if line == "BEGIN:VEVENT":
            current = {}
        elif line == "END:VEVENT":
            assert current is not None
            events.append(current)
            current = None
        elif current is not None:
            name, _, value = line.partition(":")
            assert name not in current, f"{name} twice in one VEVENT"
            current[name] = value
    return events


# ---- the calendar page -------------------------------------------------------------------------------------


async def test_the_calendar_shows_the_tenants_posts_on_their_local_day(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    mine = await make_blog_post(db, tenant, title="<b>Bold</b> heat pumps")
    # 23:30 UTC on 15 January is 00:30 on the 16th in Prague (CET, UTC+1).
    await make_social(db, mine, Platform.LINKEDIN, "A" * 120 + " tail words", datetime(2027, 1, 15, 23, 30, tzinfo=UTC))
    # 31 January 23:30 UTC is already February in Prague: not on January's page.
    await make_social(
        db, mine, Platform.X, "Next month already", datetime(2027, 1, 31, 23, 30, tzinfo=UTC), PublishState.PUBLISHED
    )
    await make_social(db, mine, Platform.BLUESKY, "Never scheduled draft", None, PublishState.DRAFT)
    second = await make_blog_post(db, tenant, title="Second company post", timezone="America/New_York")
    # 03:00 UTC on 10 January is 22:00 on the 9th in New York.
    await make_social(db, second, Platform.THREADS, "From New York", datetime(2027, 1, 10, 3, 0, tzinfo=UTC))
    theirs = await make_blog_post(db, other_tenant, title="Other tenant's secret post")
    await make_social(db, theirs, Platform.X, "Other tenant text", datetime(2027, 1, 15, 12, 0, tzinfo=UTC))

    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        page = await client.get("/studio/calendar", params={"month": "2027-01"})
        assert page.status_code == 200, page.text
        html = page.text
        assert ">Calendar: January 2027</h1>" in html
        day = re.search(r'<h2 id="day-2027-01-16">.*?</section>', html, re.S)
        assert day, html
        assert "Saturday 16 January 2027" in day.group(0)
        assert ">00:30 CET</time>" in day.group(0) and "LinkedIn" in day.group(0) and "Scheduled" in day.group(0)
        assert "A" * 70 in day.group(0) and "A" * 120 not in day.group(0) and "\u2026" in day.group(0)
        assert f'href="/studio/blogposts/{mine.blog_post.id}/social"' in day.group(0)
        assert "&lt;b&gt;Bold&lt;/b&gt; heat pumps" in day.group(0) and "<b>Bold</b>" not in html
        assert 'id="day-2027-01-15"' not in html
        assert 'id="day-2027-01-09"' in html and ">22:00 EST</time>" in html
        assert "Next month already" not in html and "Never scheduled draft" not in html
        assert "Other tenant" not in html
        # Month links keep the company filter; the filter is a labelled GET select.
        assert 'href="/studio/calendar?month=2026-12"' in html and 'href="/studio/calendar?month=2027-02"' in html
        assert '<label for="company">Company</label>' in html and '<select id="company" name="company">' in html
        assert str(theirs.company.id) not in html
        assert "Subscribe (iCalendar)" in html and "/studio/calendar.ics?token=" in html
        assert page.headers["referrer-policy"] == "no-referrer"

        feb = await client.get("/studio/calendar", params={"month": "2027-02", "company": str(mine.company.id)})
        assert feb.status_code == 200 and 'id="day-2027-02-01"' in feb.text and "Published" in feb.text
        assert "Next month already" in feb.text and "From New York" not in feb.text
        assert f"month=2027-03&amp;company={mine.company.id}" in feb.text
        only_second = await client.get(
            "/studio/calendar", params={"month": "2027-01", "company": str(second.company.id)}
        )
        assert "From New York" in only_second.text and "tail words" not in only_second.text

        # Another tenant's company, or no company at all, is the 404 page; a bad month is said so.
        for company in (str(theirs.company.id), str(uuid.uuid4()), "not-a-uuid"):
            refused = await client.get("/studio/calendar", params={"month": "2027-01", "company": company})
            assert refused.status_code == 404 and "Not found" in refused.text, company
        bad = await client.get("/studio/calendar", params={"month": "2027-13<script>"})
        assert bad.status_code == 422 and "is not a month" in bad.text and "<script>" not in bad.text

    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        answer = await anonymous.get("/studio/calendar")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/studio/sign-in")


async def test_the_calendar_defaults_to_this_month(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    made = await make_blog_post(db, tenant, timezone="UTC")
    now = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    await make_social(db, made, Platform.X, "This month's post", now)
    async with signed_in(stack, tenant.keys[Role.SUPERVISOR]) as client:
        page = await client.get("/studio/calendar")
        assert page.status_code == 200
        assert f"Calendar: {now:%B %Y}" in page.text and "This month&#39;s post" in page.text


# ---- the iCalendar feed ------------------------------------------------------------------------------------


async def feed_path(client: httpx.AsyncClient) -> str:
    page = await client.get("/studio/calendar")
    match = FEED_URL.search(page.text)
    assert match, page.text
    url = httpx.URL(match.group(1).replace("&amp;", "&"))
    return f"{url.path}?{url.query.decode()}"


async def test_the_ics_feed_is_rfc_5545_and_only_the_tenants(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    made = await make_blog_post(db, tenant, title="Heat pumps, explained; finally")
    now = datetime.now(UTC).replace(microsecond=0)
    soon = await make_social(db, made, Platform.LINKEDIN, HOSTILE, now + timedelta(days=10))
    long_text = "Wärmepumpe für Altbauten — " * 20 + "🙂👩‍💻"
    done = await make_social(db, made, Platform.X, long_text, now - timedelta(days=20), PublishState.PUBLISHED)
    await make_social(db, made, Platform.BLUESKY, "Unscheduled", None, PublishState.DRAFT)
    await make_social(db, made, Platform.THREADS, "Too far ahead", now + timedelta(days=500))
    await make_social(db, made, Platform.FACEBOOK, "Too long ago", now - timedelta(days=140))
    theirs = await make_blog_post(db, other_tenant, title="Their post")
    other = await make_social(db, theirs, Platform.X, "Other tenant's text", now + timedelta(days=3))

    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        path = await feed_path(client)
    assert re.fullmatch(r"/studio/calendar\.ics\?token=[0-9a-f]{32}\.[0-9a-f]{64}", path), path

    async with httpx.AsyncClient(base_url=stack.base_url) as calendar_app:  # no cookie: a calendar app
        answer = await calendar_app.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    body = answer.content.decode("utf-8")
    assert body.endswith("\r\n") and "\n" not in body.replace("\r\n", "")
    physical = body.split("\r\n")[:-1]
    assert all(len(line.encode("utf-8")) <= 75 for line in physical), [
        line for line in physical if len(line.encode()) > 75
    ]
    assert any(line.startswith(" ") for line in physical)  # long lines were folded

    lines = unfold(body)[:-1]
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    head = dict(line.split(":", 1) for line in lines[1:6])
    assert head["VERSION"] == "2.0" and head["CALSCALE"] == "GREGORIAN" and head["PRODID"]
    assert "X-WR-CALNAME" in head
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") == 2

    events = {event["UID"]: event for event in events_of(lines)}
    assert set(events) == {f"{soon.id}@content-pipeline", f"{done.id}@content-pipeline"}
    first = events[f"{soon.id}@content-pipeline"]
    assert first["DTSTART"] == (now + timedelta(days=10)).strftime("%Y%m%dT%H%M%SZ")
    assert re.fullmatch(r"\d{8}T\d{6}Z", first["DTSTAMP"]) and first["DURATION"] == "PT15M"
    assert first["SUMMARY"] == "LinkedIn: Heat pumps\\, explained\\; finally"
    assert unescape(first["SUMMARY"]) == "LinkedIn: Heat pumps, explained; finally"
    assert first["STATUS"] == "TENTATIVE"
    description = first["DESCRIPTION"]
    assert description.startswith(
        'Launch\\, today\\; really\\nsecond line <script>alert("x")</script> \\\\ done\\n\\nState: Scheduled'
    )
    assert unescape(description).startswith(HOSTILE + "\n\nState: Scheduled")
    # The hostile text is only ever a DESCRIPTION value: nowhere else, and never a line of its own.
    assert [line for line in lines if "<script>" in line] == [f"DESCRIPTION:{description}"]
    assert not any(line.startswith("second line") for line in lines)

    second = events[f"{done.id}@content-pipeline"]
    assert second["STATUS"] == "CONFIRMED" and second["SUMMARY"].startswith("X: ")
    assert unescape(second["DESCRIPTION"]).startswith(long_text + "\n\nState: Published")
    assert str(other.id) not in body and "Other tenant" not in body

    # The other tenant's own feed has its post and none of ours.
    async with signed_in(stack, other_tenant.keys[Role.MARKETER]) as client:
        their_path = await feed_path(client)
    async with httpx.AsyncClient(base_url=stack.base_url) as calendar_app:
        their_body = (await calendar_app.get(their_path)).text
    assert f"UID:{other.id}@content-pipeline" in their_body and str(soon.id) not in their_body


async def test_a_forged_or_revoked_feed_token_is_404(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    made = await make_blog_post(db, tenant)
    await make_social(db, made, Platform.X, "Soon", datetime.now(UTC) + timedelta(days=1))
    async with db.session() as session:
        key, row = await add_key(session, tenant.id, Role.MARKETER)
        await session.commit()
        key_id, key_hash = row.id, row.key_hash
    async with signed_in(stack, key) as client:
        path = await feed_path(client)
    assert path == f"/studio/calendar.ics?token={ics_token(key_id, key_hash)}"
    token = path.split("token=", 1)[1]
    key_hex, signature = token.split(".")

    async with httpx.AsyncClient(base_url=stack.base_url) as calendar_app:
        assert (await calendar_app.get(path)).status_code == 200
        other_key = tenant.keys[Role.SUPERVISOR]
        for forged in (
            f"{key_hex}.{'0' * 64}",  # a made-up signature
            f"{key_hex}.{signature[:-1]}",  # a cut one
            f"{uuid.uuid4().hex}.{signature}",  # another key id with this signature
            f"{key_hex}.{ics_token(key_id, 'not the stored hash').split('.')[1]}",  # signed with the wrong secret
            key_hex,
            "garbage",
            other_key,  # an API key itself is no token
        ):
            refused = await calendar_app.get("/studio/calendar.ics", params={"token": forged})
            assert refused.status_code == 404, forged
            assert refused.headers["content-type"].startswith("text/plain") and "BEGIN:VCALENDAR" not in refused.text
        assert (await calendar_app.get("/studio/calendar.ics")).status_code == 404

        async with db.session() as session:
            stored = await session.get(ApiKey, key_id)
            assert stored is not None
            stored.revoked_at = datetime.now(UTC)
            session.add(stored)
            await session.commit()
        revoked = await calendar_app.get(path)
        assert revoked.status_code == 404 and revoked.headers["content-type"].startswith("text/plain")


# ---- previews ----------------------------------------------------------------------------------------------


async def test_previews_show_each_post_as_published_and_escape_hostile_text(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    made = await make_blog_post(db, tenant)
    link = "https://example.com/blog/heat-pumps-in-old-houses-a-very-long-address-indeed"
    x_text = f"<script>alert(1)</script> Old houses can run on heat pumps.\n\n{link}\n\n#HeatPumps #Retrofit"
    x_post = await make_social(
        db,
        made,
        Platform.X,
        x_text,
        datetime(2027, 1, 15, 23, 30, tzinfo=UTC),
        hashtags=["HeatPumps", "Retrofit", "Energy"],
    )
    long_x = await make_social(db, made, Platform.X, "word " * 60 + link, None, PublishState.DRAFT)
    linkedin = await make_social(db, made, Platform.LINKEDIN, "We wrote about heat pumps. " + link, None)
    # The X post's image, in the media store.
    async with db.session() as session:
        asset_id = uuid.uuid4()
        relative = media_path(tenant.id, asset_id, "image/png")
        target = Path(stack.settings.resolved_media_dir) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(PNG)
        asset = MediaAsset(
            id=asset_id,
            tenant_id=tenant.id,
            company_id=made.company.id,
            social_post_id=x_post.id,
            kind=MediaKind.IMAGE,
            mime_type="image/png",
            path=relative,
            size_bytes=len(PNG),
            width=1,
            height=1,
            prompt='A heat pump beside a brick house "at dusk"',
            alt_text='A heat pump beside a brick house "at dusk"',
        )
        session.add(asset)
        await session.commit()

    url = f"/studio/blogposts/{made.blog_post.id}/social"
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        html = page.text
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        cards = re.findall(r'<article class="preview preview-(\w+)".*?</article>', html, re.S)
        assert cards == ["x", "x", "linkedin"], cards  # one card per post, in the platforms' order
        x_card = re.search(rf'<article[^>]*aria-labelledby="preview-{x_post.id}">.*?</article>', html, re.S)
        assert x_card, html
        card = x_card.group(0)
        assert made.company.name in card and "00:30 CET" in card
        assert f'<a href="{link}" rel="noopener nofollow ugc" target="_blank">{link}</a>' in card
        assert '<span class="tag">#HeatPumps</span>' in card
        assert f'src="/studio/media/{asset_id}" alt="A heat pump beside a brick house &#34;at dusk&#34;"' in card
        expected = counted_length(Platform.X, x_text)
        assert expected == len(x_text) - len(link) + 23
        assert f"<strong>{expected} / 280</strong> characters" in card and "Over the limit" not in card
        assert "#Energy" in card  # listed, but not in the text that is sent

        long_card = re.search(rf'aria-labelledby="preview-{long_x.id}">.*?</article>', html, re.S)
        assert long_card
        over = counted_length(Platform.X, long_x.text) - 280
        assert over > 0 and f"Over the limit by {over} characters" in long_card.group(0)
        assert 'class="count over"' in long_card.group(0)
        linkedin_card = re.search(rf'aria-labelledby="preview-{linkedin.id}">.*?</article>', html, re.S)
        assert linkedin_card and f"<strong>{len(linkedin.text)} / 3000</strong>" in linkedin_card.group(0)

        image = await client.get(f"/studio/media/{asset_id}")
        assert image.status_code == 200 and image.content == PNG and image.headers["content-type"] == "image/png"
        assert (await client.get(f"/studio/media/{uuid.uuid4()}")).status_code == 404
        assert (await client.get(f"/studio/blogposts/{uuid.uuid4()}/social")).status_code == 404

    async with signed_in(stack, other_tenant.keys[Role.SUPERVISOR]) as stranger:
        refused = await stranger.get(url)
        assert refused.status_code == 404 and "Not found" in refused.text and made.company.name not in refused.text
        assert (await stranger.get(f"/studio/media/{asset_id}")).status_code == 404


# ---- in a browser, on a phone -----------------------------------------------------------------------------


@pytest.mark.e2e
async def test_calendar_and_previews_fit_a_phone_and_pass_axe(
    stack: RunningStack, tenant: Tenant, db: Database, open_context: OpenContext
) -> None:
    """At 390 px: no sideways scroll with long unbroken words and links, one level-1 heading, no serious or
    critical axe-core violation; the company filter is a labelled select that works."""
    made = await make_blog_post(db, tenant, title="Wärmepumpen" * 8)
    unbroken = "Supercalifragilistic" * 6
    link = "https://example.com/" + "very-long-path-segment-" * 8
    await make_social(db, made, Platform.X, f"{unbroken} {link} #{unbroken}", datetime(2027, 1, 16, 9, 0, tzinfo=UTC))
    await make_social(db, made, Platform.LINKEDIN, "Short one " + link, datetime(2027, 1, 16, 10, 0, tzinfo=UTC))
    other = await make_blog_post(db, tenant, title="Other company post")
    await make_social(db, other, Platform.THREADS, "Other company's text", datetime(2027, 1, 20, 9, 0, tzinfo=UTC))

    context = await open_context(viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, tenant.keys[Role.MARKETER])
    with collected_findings() as findings:
        await page.goto("/studio/calendar?month=2027-01")
        await expect(page.get_by_role("heading", name="Saturday 16 January 2027", level=2)).to_be_visible()
        await findings.check(assert_one_main_heading(page, "Calendar: January 2027"))
        await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
        await findings.check(assert_accessible(page))
        await screenshot(page, "calendar-phone")

        await page.get_by_label("Company").select_option(label=made.company.name)
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(rf"month=2027-01&company={made.company.id}$"))
        await expect(page.get_by_text("Other company's text")).to_have_count(0)
        await page.get_by_role("link", name=re.compile("^Next month")).click()
        await expect(page.get_by_role("heading", name=re.compile("February 2027"), level=1)).to_be_visible()

        await page.goto(f"/studio/blogposts/{made.blog_post.id}/social")
        await expect(page.get_by_role("heading", name="X", level=2)).to_be_visible()
        await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
        await findings.check(assert_accessible(page))
        await screenshot(page, "previews-phone")


# ---- the pure parts ----------------------------------------------------------------------------------------


def test_limits_are_the_platforms() -> None:
    assert LIMITS == {
        Platform.X: 280,
        Platform.LINKEDIN: 3000,
        Platform.INSTAGRAM: 2200,
        Platform.FACEBOOK: 63206,
        Platform.THREADS: 500,
        Platform.BLUESKY: 300,
        Platform.MASTODON: 500,  # Mastodon's default: a connected instance may allow more (the previews use its own)
    }


def test_x_counts_every_url_as_23() -> None:
    text = "Read https://example.com/a/very/long/path/that/goes/on?x=1. Then http://b.io!"
    # "Read " 5 + 23 + ". Then " 7 + 23 + "!" 1: the sentence's full stop and "!" are not part of the links.
    assert counted_length(Platform.X, text) == 59
    assert counted_length(Platform.LINKEDIN, text) == len(text)
    assert counted_length(Platform.X, "no links here") == 13
    assert counted_length(Platform.X, "e\u0301") == 1  # NFC first, as X does
    assert counted_length(Platform.X, "https://") == 8  # no host: not a link


@pytest.mark.parametrize(
    ("text", "graphemes"),
    [
        ("👩‍💻", 1),  # woman technologist: woman, ZWJ, laptop
        ("👨‍👩‍👧‍👦", 1),  # a family of four: seven code points
        ("👍🏽", 1),  # skin tone modifier
        ("❤️", 1),  # variation selector
        ("1️⃣", 1),  # keycap
        ("🇨🇿🇩🇪", 2),  # two flags from four regional indicators
        ("e\u0301", 1),  # a combining accent
        ("a\u200db", 2),  # ZWJ between letters joins nothing
        ("Hi\r\n", 3),
        ("abc", 3),
    ],
)
def test_bluesky_counts_graphemes(text: str, graphemes: int) -> None:
    assert grapheme_count(text) == graphemes
    assert counted_length(Platform.BLUESKY, text) == graphemes


def test_bluesky_post_with_a_zwj_sequence() -> None:
    text = "We build 👩‍💻 tools https://example.com"
    assert counted_length(Platform.BLUESKY, text) == len("We build ") + 1 + len(" tools https://example.com")
    assert counted_length(Platform.THREADS, text) == len(text) == counted_length(Platform.BLUESKY, text) + 2


def test_ics_escaping_and_folding() -> None:
    assert ics.escape_text('a,b;c\\d\ne\r\nf\rg\x07h\ti<script>"') == "a\\,b\\;c\\\\d\\ne\\nf\\ng" + 'h\ti<script>"'
    line = "DESCRIPTION:" + "ž" * 100
    folded = ics.fold(line)
    parts = folded.split("\r\n")
    assert all(len(part.encode()) <= 75 for part in parts) and all(part.startswith(" ") for part in parts[1:])
    assert folded.replace("\r\n ", "") == line
    assert ics.fold("SHORT:x") == "SHORT:x"
    assert ics.utc_stamp(datetime(2027, 1, 16, 0, 30, tzinfo=UTC) + timedelta(hours=0)) == "20270116T003000Z"
