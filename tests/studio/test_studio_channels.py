"""The studio's Channels page, the inbox's "Channels that need you" and Mastodon's previews, over HTTP against the
running stack (channels and posts written straight to the database), and the page in a browser (phone width, axe).

Test and Disconnect go through the stack's real worker: a channel whose stored credentials no key decrypts is
refused by the worker itself (no platform is asked) and can be disconnected; and a Mastodon account is connected,
tested and disconnected through the page against the tests' local Mastodon server. Bluesky against a real PDS is
tested with the API's channel tests.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.async_api import expect
from sqlmodel import col, select

from models.channels import ChannelState
from models.db import Database
from models.enums import Platform, PublishState, Role
from models.tables import Channel, ChannelAttempt, Company, OAuthClient, SocialPost
from models.text_limits import counted_length
from tests.studio.conftest import OpenContext
from tests.studio.test_studio_browser import PHONE, assert_no_sideways_scroll, assert_one_main_heading, sign_in
from tests.studio.test_studio_calendar import Made, make_blog_post, make_social
from tests.studio.test_studio_http import csrf_of, signed_in
from tests.support.browser import assert_accessible, collected_findings, screenshot
from tests.support.mastodon_fixtures import mastodon_fixture, mastodon_session_fixture  # noqa: F401
from tests.support.mastodon_server import MastodonServer, follow_authorization
from tests.support.stack import RunningStack, Tenant

HOSTILE = '<script>alert("x")</script> Robots & Co'
UNREADABLE = "credentials no key of this deployment decrypts"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
MASTODON_RULES = {"maxChars": 1000, "unit": "characters", "urlLength": 23, "maxImages": 4}


async def a_company(db: Database, tenant: Tenant, name: str = "Channel Co") -> Company:
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name=f"{name} {uuid.uuid4().hex[:6]}", timezone="Europe/Prague")
        session.add(company)
        await session.commit()
        await session.refresh(company)
        return company


async def a_channel(
    db: Database,
    company: Company,
    platform: Platform,
    handle: str,
    *,
    state: ChannelState = ChannelState.CONNECTED,
    **values: Any,
) -> Channel:
    """A channel row as a worker would have written it; its credentials are not readable (nothing here logs in)."""
    service = "https://bsky.social" if platform == Platform.BLUESKY else "https://social.example"
    async with db.session() as session:
        channel = Channel(
            tenant_id=company.tenant_id,
            company_id=company.id,
            platform=platform,
            state=state,
            service=service,
            account_id=f"id-{uuid.uuid4().hex[:8]}",
            handle=handle,
            credentials=UNREADABLE,
            **values,
        )
        session.add(channel)
        await session.commit()
        await session.refresh(channel)
        return channel


async def post_row(db: Database, post_id: uuid.UUID) -> SocialPost:
    async with db.session() as session:
        post = await session.get(SocialPost, post_id)
    assert post is not None
    return post


async def channel_row(db: Database, channel_id: uuid.UUID) -> Channel | None:
    async with db.session() as session:
        return await session.get(Channel, channel_id)


async def rows_of(db: Database, table: type[Channel] | type[ChannelAttempt], company_id: uuid.UUID) -> int:
    async with db.session() as session:
        return len((await session.exec(select(table).where(col(table.company_id) == company_id))).all())


async def channels_of(db: Database, company_id: uuid.UUID) -> list[Channel]:
    async with db.session() as session:
        return list((await session.exec(select(Channel).where(col(Channel.company_id) == company_id))).all())


def channels_url(company: Company) -> str:
    return f"/studio/companies/{company.id}/channels"


async def followed(client: httpx.AsyncClient, response: httpx.Response) -> str:
    """The page a 303 sends the browser to."""
    assert response.status_code == 303, response.text
    return (await client.get(response.headers["location"])).text


# ---- the page ------------------------------------------------------------------------------------------------


async def test_the_channels_page_lists_each_channel_with_its_state_in_words(
    stack: RunningStack, db: Database, tenant: Tenant
) -> None:
    company = await a_company(db, tenant)
    checked = datetime(2027, 3, 1, 8, 30, tzinfo=UTC)
    bluesky = await a_channel(
        db,
        company,
        Platform.BLUESKY,
        "alice.bsky.social",
        display_name=HOSTILE,
        account_url="https://bsky.app/profile/alice.bsky.social",
        last_checked_at=checked,
    )
    mastodon = await a_channel(
        db,
        company,
        Platform.MASTODON,
        "@acme@social.example",
        state=ChannelState.NEEDS_RECONNECT,
        account_url="javascript:alert(1)",
        rules=MASTODON_RULES,
        last_error="the instance refused the token <b>401</b>",
    )
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        # Reached from the company page and from the companies list.
        assert f'href="{channels_url(company)}"' in (await client.get(f"/studio/companies/{company.id}")).text
        assert f'href="{channels_url(company)}"' in (await client.get("/studio/companies")).text

        answer = await client.get(channels_url(company))
        assert answer.status_code == 200, answer.text
        html = answer.text
        assert f"Channels: {company.name}</h1>" in html
        card = re.search(rf'<article class="card channel" id="channel-{bluesky.id}".*?</article>', html, re.S)
        assert card, html
        text = card.group(0)
        assert 'href="https://bsky.app/profile/alice.bsky.social"' in text and ">alice.bsky.social</a>" in text
        assert re.search(r'class="state channel-state channel-connected">.*?connected</span>', text, re.S)
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Robots &amp; Co" in text and "<script>" not in text
        assert "https://bsky.social" in text and "2027-03-01 09:30 CET" in text  # in the company's zone
        assert "Last error" not in text and "Character limit" not in text
        assert f'action="/studio/channels/{bluesky.id}/test"' in text
        assert f'action="/studio/channels/{bluesky.id}/disconnect"' in text
        assert re.search(r"<button[^>]*>Test<span class=\"visually-hidden\"> Bluesky alice.bsky.social</span>", text)
        assert ">Disconnect Bluesky alice.bsky.social</button>" in text and 'name="confirm" value="yes"' in text

        card = re.search(rf'<article class="card channel" id="channel-{mastodon.id}".*?</article>', html, re.S)
        assert card, html
        text = card.group(0)
        assert re.search(r'class="state channel-state channel-needs_reconnect">.*?needs reconnect</span>', text, re.S)
        assert 'href="javascript:' not in text and "Mastodon: @acme@social.example</h3>" in text  # no link
        assert "Instance</dt>" in text and "https://social.example" in text
        assert "1000 characters (every link counts as 23)" in text
        assert "the instance refused the token &lt;b&gt;401&lt;/b&gt;" in text and "never" in text

        # The connect forms: the password field is a password field and never has a value; the PDS defaults.
        assert re.search(
            r'<input type="password" id="bluesky-app_password" name="app_password"\s+autocomplete="off"', html
        )
        assert 'id="bluesky-service" name="service" value="https://bsky.social"' in html
        assert "App passwords" in html
        assert f'action="/studio/companies/{company.id}/channels/mastodon"' in html
        assert html.count(f'name="csrf_token" value="{csrf_of(html)}"') >= 5  # every form


async def test_another_tenants_company_and_channels_are_the_404_page(
    stack: RunningStack, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    company = await a_company(db, tenant)
    channel = await a_channel(db, company, Platform.BLUESKY, "alice.bsky.social")
    async with signed_in(stack, other_tenant.keys[Role.ADMIN]) as client:
        token = csrf_of((await client.get("/studio/companies")).text)
        for answer in (
            await client.get(channels_url(company)),
            await client.get(f"/studio/companies/{uuid.uuid4()}/channels"),
            await client.post(f"{channels_url(company)}/bluesky", data={"csrf_token": token, "handle": "a.b.c"}),
            await client.post(f"{channels_url(company)}/mastodon", data={"csrf_token": token, "instance": "x.y"}),
            await client.post(f"/studio/channels/{channel.id}/test", data={"csrf_token": token}),
            await client.post(
                f"/studio/channels/{channel.id}/disconnect", data={"csrf_token": token, "confirm": "yes"}
            ),
        ):
            assert answer.status_code == 404 and "Not found" in answer.text, answer.text
            assert "alice.bsky.social" not in answer.text and company.name not in answer.text
    assert await channel_row(db, channel.id) is not None
    assert await rows_of(db, ChannelAttempt, company.id) == 0


async def test_the_oauth_callbacks_return_is_a_notice(stack: RunningStack, db: Database, tenant: Tenant) -> None:
    company = await a_company(db, tenant)
    await a_channel(db, company, Platform.MASTODON, "@acme@social.example", rules=MASTODON_RULES)
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        connected = await client.get(channels_url(company), params={"connected": "mastodon"})
        assert re.search(
            r'<p class="notice" role="status">The Mastodon account @acme@social.example is connected', connected.text
        )
        failed = await client.get(channels_url(company), params={"failed": "mastodon"})
        assert re.search(r'<p class="error" role="alert">The Mastodon sign-in did not finish', failed.text)
        assert "nothing was connected" in failed.text
        unknown = await client.get(channels_url(company), params={"connected": "<script>"})
        assert unknown.status_code == 200 and 'class="notice"' not in unknown.text


# ---- the connect forms: input checked as the API checks it, nothing created --------------------------------------


async def test_a_malformed_bluesky_handle_is_shown_at_the_form_and_creates_nothing(
    stack: RunningStack, db: Database, tenant: Tenant
) -> None:
    company = await a_company(db, tenant)
    url = f"{channels_url(company)}/bluesky"
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        token = csrf_of((await client.get(channels_url(company))).text)
        refused = await client.post(
            url,
            data={"csrf_token": token, "handle": "not a handle!", "app_password": APP_PASSWORD, "service": ""},
        )
        assert refused.status_code == 422, refused.text
        html = refused.text
        assert re.search(r'id="bluesky-handle-error" class="error-text">.*is not a Bluesky handle', html)
        assert 'id="bluesky-handle" name="handle" value="not a handle!"' in html  # what was typed stays
        assert 'aria-invalid="true"' in html and "bluesky-handle-error bluesky-handle-hint" in html
        assert APP_PASSWORD not in html  # never written back
        assert '<p class="error" role="alert">Correct the field marked below. Nothing was connected.</p>' in html
        assert 'value="https://bsky.social"' in html

        bad_service = await client.post(
            url,
            data={
                "csrf_token": token,
                "handle": "alice.bsky.social",
                "app_password": APP_PASSWORD,
                "service": "ftp://x",
            },
        )
        assert bad_service.status_code == 422 and APP_PASSWORD not in bad_service.text
        assert re.search(
            r'id="bluesky-service-error" class="error-text">the PDS address must be an https', bad_service.text
        )

        no_password = await client.post(url, data={"csrf_token": token, "handle": "alice.bsky.social"})
        assert no_password.status_code == 422 and 'id="bluesky-app_password-error"' in no_password.text
    assert await rows_of(db, Channel, company.id) == 0
    assert await rows_of(db, ChannelAttempt, company.id) == 0


async def test_a_bad_mastodon_instance_is_shown_at_the_form(stack: RunningStack, db: Database, tenant: Tenant) -> None:
    company = await a_company(db, tenant)
    url = f"{channels_url(company)}/mastodon"
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        token = csrf_of((await client.get(channels_url(company))).text)
        refused = await client.post(url, data={"csrf_token": token, "instance": "ftp://x"})
        assert refused.status_code == 422, refused.text
        assert re.search(
            r'id="mastodon-instance-error" class="error-text">the instance must be an https address', refused.text
        )
        assert 'id="mastodon-instance" name="instance" value="ftp://x"' in refused.text
        empty = await client.post(url, data={"csrf_token": token, "instance": " "})
        assert empty.status_code == 422 and "the Mastodon instance is missing" in empty.text
    assert await rows_of(db, Channel, company.id) == 0
    assert await rows_of(db, ChannelAttempt, company.id) == 0


async def test_a_form_without_the_csrf_token_is_refused(stack: RunningStack, db: Database, tenant: Tenant) -> None:
    company = await a_company(db, tenant)
    channel = await a_channel(db, company, Platform.BLUESKY, "alice.bsky.social")
    async with signed_in(stack, tenant.keys[Role.SUPERVISOR]) as client:
        for path, data in (
            (f"{channels_url(company)}/bluesky", {"handle": "bob.bsky.social", "app_password": APP_PASSWORD}),
            (f"{channels_url(company)}/mastodon", {"instance": "mastodon.social"}),
            (f"/studio/channels/{channel.id}/test", {}),
            (f"/studio/channels/{channel.id}/disconnect", {"confirm": "yes"}),
        ):
            for token in ("", "0" * 64):
                answer = await client.post(path, data={**data, "csrf_token": token} if token else data)
                assert answer.status_code == 403 and "Form refused" in answer.text, path
    after = await channel_row(db, channel.id)
    assert after is not None
    fields = ("state", "handle", "credentials", "last_checked_at", "last_error", "updated_at")
    assert [str(getattr(after, name)) for name in fields] == [str(getattr(channel, name)) for name in fields]
    assert await rows_of(db, ChannelAttempt, company.id) == 0


# ---- test and disconnect, through the stack's worker -------------------------------------------------------------


async def test_test_and_disconnect_run_in_the_worker(stack: RunningStack, db: Database, tenant: Tenant) -> None:
    company = await a_company(db, tenant)
    channel = await a_channel(db, company, Platform.BLUESKY, "alice.bsky.social")
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        token = csrf_of((await client.get(channels_url(company))).text)
        tested = await client.post(f"/studio/channels/{channel.id}/test", data={"csrf_token": token})
        assert tested.headers["location"].startswith(f"{channels_url(company)}?error=")
        html = await followed(client, tested)
        assert re.search(r'role="alert">Tested Bluesky alice.bsky.social: the credentials were refused', html)
        assert "cannot be decrypted" in html
        after = await channel_row(db, channel.id)
        assert after is not None and after.state == ChannelState.NEEDS_RECONNECT and after.last_checked_at
        assert re.search(r"channel-needs_reconnect\">.*?needs reconnect</span>", html, re.S)

        unconfirmed = await client.post(f"/studio/channels/{channel.id}/disconnect", data={"csrf_token": token})
        assert "Tick the box to confirm" in await followed(client, unconfirmed)
        assert await channel_row(db, channel.id) is not None

        gone = await client.post(
            f"/studio/channels/{channel.id}/disconnect", data={"csrf_token": token, "confirm": "yes"}
        )
        html = await followed(client, gone)
        assert re.search(r'role="status">Disconnected Bluesky alice.bsky.social', html)
        assert "No channels yet" in html
        assert await channel_row(db, channel.id) is None
        again = await client.post(f"/studio/channels/{channel.id}/test", data={"csrf_token": token})
        assert again.status_code == 404


async def test_a_mastodon_account_is_connected_tested_and_disconnected_from_the_page(
    stack: RunningStack, db: Database, tenant: Tenant, mastodon: MastodonServer
) -> None:
    """The whole sign-in through the studio's form, against the tests' local Mastodon server (an instance that has
    not seen this deployment's app yet): the instance's own limit shows, Test posts nothing, Disconnect revokes."""
    async with db.session() as session:
        await session.exec(sa.delete(OAuthClient).where(col(OAuthClient.service) == mastodon.base_url))  # type: ignore[call-overload]
        await session.commit()
    mastodon.config.max_characters = 1000
    company = await a_company(db, tenant)
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        token = csrf_of((await client.get(channels_url(company))).text)
        started = await client.post(
            f"{channels_url(company)}/mastodon", data={"csrf_token": token, "instance": mastodon.base_url}
        )
        assert started.status_code == 303, started.text
        assert started.headers["location"].startswith(f"{mastodon.base_url}/oauth/authorize?")
        back = await follow_authorization(started.headers["location"])
        returned = await client.get(back.removeprefix(stack.base_url), headers={"Accept": "text/html"})
        assert returned.headers["location"] == f"{channels_url(company)}?connected=mastodon"
        html = await followed(client, returned)
        assert re.search(r'role="status">The Mastodon account @alice@127.0.0.1:\d+ is connected', html)
        assert "Alice Example" in html and "1000 characters (every link counts as 23)" in html
        assert f'href="{mastodon.account_url("alice")}"' in html
        [channel] = await channels_of(db, company.id)
        assert await rows_of(db, ChannelAttempt, company.id) == 0

        tested = await client.post(f"/studio/channels/{channel.id}/test", data={"csrf_token": token})
        assert re.search(r'role="status">Tested Mastodon @alice@[^:]+:\d+: it works', await followed(client, tested))
        assert mastodon.statuses == []

        gone = await client.post(
            f"/studio/channels/{channel.id}/disconnect", data={"csrf_token": token, "confirm": "yes"}
        )
        assert "(the access token was revoked)" in await followed(client, gone)
        assert [t for t in mastodon.tokens.values() if not t.revoked] == []
        assert await channel_row(db, channel.id) is None


# ---- the supervisor's inbox --------------------------------------------------------------------------------------


async def a_post_with(
    db: Database, made: Made, platform: Platform, state: PublishState, error: str, publish_at: datetime | None
) -> SocialPost:
    post = await make_social(db, made, platform, f"A post for {platform.label}", publish_at, state)
    async with db.session() as session:
        row = await session.get(SocialPost, post.id)
        assert row is not None
        row.publish_error = error
        session.add(row)
        await session.commit()
        await session.refresh(row)
        return row


async def test_the_inbox_lists_channels_and_posts_that_need_a_person(
    stack: RunningStack, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = await make_blog_post(db, tenant)
    company = made.company
    broken = await a_channel(
        db,
        company,
        Platform.BLUESKY,
        "alice.bsky.social",
        state=ChannelState.NEEDS_RECONNECT,
        last_error="Bluesky refused the session: <expired>",
    )
    revoked = await a_channel(db, company, Platform.MASTODON, "@acme@social.example", state=ChannelState.REVOKED)
    healthy_company = await a_company(db, tenant, "Healthy")
    await a_channel(db, healthy_company, Platform.BLUESKY, "healthy.bsky.social")
    when = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
    no_channel = await a_post_with(
        db,
        made,
        Platform.BLUESKY,
        PublishState.FAILED,
        "connect a bluesky channel: the company has no Bluesky channel and the tenant has no webhook",
        when,
    )
    waiting = await a_post_with(
        db,
        made,
        Platform.MASTODON,
        PublishState.SCHEDULED,
        "waiting for the Mastodon channel (@acme@social.example) to be connected again: revoked",
        when + timedelta(hours=1),
    )
    await a_post_with(db, made, Platform.X, PublishState.FAILED, "the receiver answered 500", when)
    await a_post_with(db, made, Platform.LINKEDIN, PublishState.PUBLISHED, "waiting for the old news", when)
    theirs = await make_blog_post(db, other_tenant)
    await a_channel(db, theirs.company, Platform.BLUESKY, "theirs.bsky.social", state=ChannelState.REVOKED)
    await a_post_with(db, theirs, Platform.BLUESKY, PublishState.FAILED, "connect a bluesky channel: theirs", when)

    async with signed_in(stack, tenant.keys[Role.SUPERVISOR]) as client:
        html = (await client.get("/studio/approvals")).text
        assert '<h2 id="channels-need-you">Channels that need you</h2>' in html
        section = html.split('id="channels-need-you"', 1)[1]
        troubles = re.findall(
            r'<a href="/studio/companies/([0-9a-f-]+)/channels#channel-([0-9a-f-]+)">Reconnect', section
        )
        assert troubles == [(str(company.id), str(broken.id)), (str(company.id), str(revoked.id))]
        assert "needs reconnect</span>" in section and "revoked</span>" in section
        assert "Bluesky refused the session: &lt;expired&gt;" in section
        assert "the account&#39;s owner revoked this app&#39;s access" in section
        assert "healthy.bsky.social" not in section and "theirs" not in section

        posts = section.split('aria-label="Posts without a channel"', 1)[1].split("<tbody>", 1)[1]
        rows = re.findall(r"<tr>(.*?)</tr>", posts, re.S)
        assert len(rows) == 2, rows
        first, second = rows
        assert company.name in first and "Bluesky" in first and "failed" in first
        assert "2027-02-01 10:00 CET" in first and "connect a bluesky channel" in first
        assert f'href="/studio/companies/{company.id}/channels#connect-bluesky"' in first
        assert f'href="/studio/blogposts/{made.blog_post.id}/social#post-{no_channel.id}"' in first
        assert "Mastodon" in second and "waiting" in second and "waiting for the Mastodon channel" in second
        assert f"#post-{waiting.id}" in second
        assert "the receiver answered 500" not in section and "old news" not in section
        # The supervisor may decide for a waiting post: hold it back (a failed one has nothing to hold back).
        assert f'action="/studio/social-posts/{waiting.id}/hold-back"' in second and "hold-back" not in first
        token = csrf_of(html)
        unconfirmed = await client.post(f"/studio/social-posts/{waiting.id}/hold-back", data={"csrf_token": token})
        assert (
            "Tick+the+box" in unconfirmed.headers["location"] or "Tick%20the%20box" in unconfirmed.headers["location"]
        )
        assert (await post_row(db, waiting.id)).publish_state == PublishState.SCHEDULED
        held = await client.post(
            f"/studio/social-posts/{waiting.id}/hold-back", data={"csrf_token": token, "confirm": "yes"}
        )
        assert held.status_code == 303 and "Held%20back" in held.headers["location"]
        row = await post_row(db, waiting.id)
        assert row.publish_state == PublishState.FAILED and "a supervisor decided" in (row.publish_error or "")

    async with signed_in(stack, other_tenant.keys[Role.SUPERVISOR]) as client:
        html = (await client.get("/studio/approvals")).text
        assert "theirs.bsky.social" in html and "alice.bsky.social" not in html and company.name not in html


async def test_the_inbox_has_no_channel_section_when_all_is_well(
    stack: RunningStack, db: Database, tenant: Tenant
) -> None:
    company = await a_company(db, tenant)
    await a_channel(db, company, Platform.BLUESKY, "alice.bsky.social")
    async with signed_in(stack, tenant.keys[Role.SUPERVISOR]) as client:
        html = (await client.get("/studio/approvals")).text
        assert "Channels that need you" not in html and "Nothing is waiting for a decision." in html


# ---- previews: Mastodon counted as its instance counts -------------------------------------------------------------


def card_of(html: str, post: SocialPost) -> str:
    card = re.search(rf'<article[^>]*aria-labelledby="preview-{post.id}">.*?</article>', html, re.S)
    assert card, html
    return card.group(0)


async def test_previews_count_mastodon_as_the_companys_instance(
    stack: RunningStack, db: Database, tenant: Tenant
) -> None:
    link = "https://example.com/blog/" + "a-very-long-address-" * 5
    text = f"Heat pumps for old houses 👩‍💻 {link} #HeatPumps"
    made = await make_blog_post(db, tenant)
    await a_channel(db, made.company, Platform.MASTODON, "@acme@social.example", rules=MASTODON_RULES)
    toot = await make_social(db, made, Platform.MASTODON, text, None, PublishState.DRAFT)
    skeet = await make_social(db, made, Platform.BLUESKY, text, None, PublishState.DRAFT)
    long_toot = await make_social(db, made, Platform.MASTODON, "x" * 990 + " " + link, None, PublishState.DRAFT)
    bare = await make_blog_post(db, tenant, title="No channel")
    default_toot = await make_social(db, bare, Platform.MASTODON, "y" * 480 + " " + link, None, PublishState.DRAFT)

    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        html = (await client.get(f"/studio/blogposts/{made.blog_post.id}/social")).text
        card = card_of(html, toot)
        assert '<h2 id="preview-' in card and ">Mastodon</h2>" in card
        toot_length = len(text) - len(link) + 23  # code points; the link counts 23
        assert f"<strong>{toot_length} / 1000</strong> characters" in card
        assert "as social.example counts: its own limit, every link counts as 23" in card
        card = card_of(html, skeet)
        graphemes = counted_length(Platform.BLUESKY, text)
        assert graphemes == len(text) - 2  # the ZWJ sequence is one grapheme of three code points
        assert f"<strong>{graphemes} / 300</strong> graphemes" in card
        card = card_of(html, long_toot)
        assert "<strong>1014 / 1000</strong> characters" in card and "Over the limit by 14 characters" in card

        html = (await client.get(f"/studio/blogposts/{bare.blog_post.id}/social")).text
        card = card_of(html, default_toot)
        assert "<strong>504 / 500</strong> characters" in card and "Over the limit by 4 characters" in card
        assert "500 is Mastodon&#39;s default" in card


# ---- in a browser -----------------------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_the_channels_page_and_the_inbox_fit_a_phone_and_pass_axe(
    stack: RunningStack, db: Database, tenant: Tenant, open_context: OpenContext
) -> None:
    """At 390 px, with long handles and errors: one level-1 heading, no sideways scroll, no serious or critical
    axe-core violation, on the page as it comes, with a refused form, and on the inbox's channel section."""
    company = await a_company(db, tenant, "Wärmepumpen" * 6)
    await a_channel(
        db,
        company,
        Platform.BLUESKY,
        "a-very-long-handle-" * 3 + "x.bsky.social",
        account_url="https://bsky.app/profile/x.bsky.social",
        display_name="Acme",
        last_checked_at=datetime(2027, 3, 1, 8, 30, tzinfo=UTC),
    )
    await a_channel(
        db,
        company,
        Platform.MASTODON,
        "@acme@social.example",
        state=ChannelState.NEEDS_RECONNECT,
        rules=MASTODON_RULES,
        last_error="the instance said: " + "token-revoked-" * 8,
    )
    context = await open_context(viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, tenant.keys[Role.SUPERVISOR])
    with collected_findings() as findings:
        await expect(page.get_by_role("heading", name="Channels that need you", level=2)).to_be_visible()
        await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
        await findings.check(assert_accessible(page))

        await page.get_by_role("link", name=re.compile("^Reconnect the Mastodon channel")).click()
        await expect(page.get_by_role("heading", name=f"Channels: {company.name}", level=1)).to_be_visible()
        await expect(page.locator(".channel-needs_reconnect")).to_have_text(re.compile("needs reconnect$"))
        await findings.check(assert_one_main_heading(page, f"Channels: {company.name}"))
        await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
        await findings.check(assert_accessible(page))
        await screenshot(page, "channels-phone")

        await page.get_by_label("Handle", exact=True).fill("not a handle!")
        await page.get_by_label("App password", exact=True).fill(APP_PASSWORD)
        await page.get_by_role("button", name="Connect Bluesky").click()
        handle = page.get_by_label("Handle", exact=True)
        await expect(handle).to_have_attribute("aria-invalid", "true")
        await expect(handle).to_have_accessible_description(re.compile("is not a Bluesky handle"))
        await expect(page.get_by_label("App password", exact=True)).to_have_value("")
        await findings.check(assert_no_sideways_scroll(page, PHONE["width"]))
        await findings.check(assert_accessible(page))

        await page.locator("summary").filter(has_text="Mastodon").click()
        await expect(page.get_by_role("button", name="Disconnect Mastodon @acme@social.example")).to_be_visible()
        await findings.check(assert_accessible(page))
    assert await rows_of(db, ChannelAttempt, company.id) == 0
