"""Bluesky channels end to end against a real PDS on 127.0.0.1 (tests/support/pds_server.py): connecting with an app
password through the API, the credentials only encrypted at rest, a wrong password that changes nothing, a whole
pipeline whose Bluesky and Mastodon posts go out through the company's channels (read back from the PDS with their
images and facets), and publishing that survives the PDS going away mid-way without a duplicate or a lost post."""

import logging
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deps import StageDeps
from activities.publish import PublishActivities
from models.credentials import vault_for
from models.db import Database
from models.enums import Platform, PublishState, Role, Tier
from models.pipeline import PublishPost
from models.tables import Channel, ChannelAttempt, SocialPost
from providers.router import ProviderRouter
from publishers.bluesky import POST_COLLECTION, record_key
from tests.api.test_channels_mastodon import connect as connect_mastodon
from tests.api.test_channels_mastodon import fresh_instance  # noqa: F401
from tests.api.test_pipeline_api import next_month, wait_for
from tests.support.mastodon_fixtures import mastodon_fixture, mastodon_session_fixture  # noqa: F401
from tests.support.mastodon_server import MastodonServer
from tests.support.pds_fixtures import pds_fixture, pds_session_fixture  # noqa: F401
from tests.support.pds_server import PdsAccount, PdsServer
from tests.support.publish_rows import make_posts, reload, set_post
from tests.support.stack import RunningStack, Tenant, make_tenant

PROBLEM = "application/problem+json"
BLOG_URL = "https://bsky-co.example/blog/{slug}"


async def new_company(stack: RunningStack, tenant: Tenant) -> str:
    body = {"name": f"Bluesky {uuid.uuid4().hex[:6]}", "website": "https://bsky-co.example", "timezone": "UTC"}
    answer = await stack.http.post("/api/v1/companies", json=body, headers=tenant.headers())
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def connect_bluesky(
    stack: RunningStack, tenant: Tenant, company_id: str, pds: PdsServer, account: PdsAccount, password: str
) -> dict:
    answer = await stack.http.post(
        f"/api/v1/companies/{company_id}/channels",
        json={"platform": "bluesky", "handle": account.handle, "appPassword": password, "service": pds.url},
        headers=tenant.headers(),
    )
    assert answer.status_code == 201, answer.text
    channel: dict = answer.json()
    return channel


async def channel_rows(db: Database, company_id: str) -> list[Channel]:
    async with db.session() as session:
        rows = await session.exec(select(Channel).where(col(Channel.company_id) == uuid.UUID(company_id)))
        return list(rows.all())


async def test_connect_with_an_app_password_keeps_only_encrypted_credentials(
    stack: RunningStack, tenant: Tenant, db: Database, pds: PdsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = pds.create_account("acme")
    password = pds.create_app_password(account)
    company_id = await new_company(stack, tenant)

    wrong = await stack.http.post(
        f"/api/v1/companies/{company_id}/channels",
        json={
            "platform": "bluesky",
            "handle": account.handle,
            "appPassword": "wxyz-wxyz-wxyz-wxyz",
            "service": pds.url,
        },
        headers=tenant.headers(),
    )
    assert wrong.status_code == 422 and wrong.headers["content-type"].startswith(PROBLEM), wrong.text
    assert wrong.json()["errorType"] == "credentials_rejected" and "wxyz" not in wrong.text
    assert await channel_rows(db, company_id) == []

    channel = await connect_bluesky(stack, tenant, company_id, pds, account, password)
    assert channel["platform"] == "bluesky" and channel["state"] == "CONNECTED"
    assert channel["account"]["id"] == account.did and channel["account"]["handle"] == account.handle
    assert channel["service"] == pds.url and channel["rules"]["maxChars"] == 300
    assert password not in str(channel)

    [row] = await channel_rows(db, company_id)
    assert password not in row.credentials and account.did not in row.credentials
    async with db.session() as session:
        left = await session.exec(
            sa.select(sa.func.count()).select_from(ChannelAttempt).where(col(ChannelAttempt.tenant_id) == tenant.id)  # type: ignore[call-overload]
        )
        assert left.one()[0] == 0  # the password is not kept past the request

    tested = await stack.http.post(f"/api/v1/channels/{channel['id']}/test", headers=tenant.headers())
    assert tested.status_code == 200 and tested.json()["ok"] is True
    assert pds.list_records(account.did, POST_COLLECTION) == []  # a test posts nothing

    # Bad input: 422 naming the field, nothing connected for the company.
    other = await new_company(stack, tenant)
    for body, field in (
        ({"platform": "bluesky", "handle": "not a handle", "appPassword": password}, "body.handle"),
        (
            {"platform": "bluesky", "handle": account.handle, "appPassword": password, "service": "ftp://x"},
            "body.service",
        ),
        ({"platform": "mastodon", "handle": account.handle, "appPassword": password}, "body.platform"),
    ):
        answer = await stack.http.post(f"/api/v1/companies/{other}/channels", json=body, headers=tenant.headers())
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field
    assert await channel_rows(db, other) == []

    # Nothing the API, the worker, the SDKs or Temporal's client logged holds the password or a session token.
    stored = acts_vault_open(stack, row)
    # The SDK's session string: handle:::did:::access JWT:::refresh JWT:::PDS.
    session_tokens = [part for part in stored["session"].split(":::") if part.startswith("eyJ")]
    assert len(session_tokens) == 2 and stored["appPassword"] == password
    assert not [t for t in session_tokens if t in row.credentials]  # the tokens are in the table only encrypted
    assert password not in caplog.text and not [t for t in session_tokens if t.split(".")[2] in caplog.text]

    gone = await stack.http.delete(f"/api/v1/channels/{channel['id']}", headers=tenant.headers(Role.ADMIN))
    assert gone.status_code == 204 and await channel_rows(db, company_id) == []


def acts_vault_open(stack: RunningStack, row: Channel) -> dict[str, str]:
    """The channel's credentials as the stack's worker reads them."""
    return vault_for(stack.settings).open(row.credentials)


def publisher_acts(stack: RunningStack, db: Database) -> PublishActivities:
    settings = stack.settings
    return PublishActivities(StageDeps(db=db, router=ProviderRouter.from_settings(settings), settings=settings))


async def bluesky_post(stack: RunningStack, tenant: Tenant, db: Database, pds: PdsServer) -> tuple[SocialPost, str]:
    """A scheduled Bluesky post of a company whose channel is connected; and the account's DID."""
    [post] = await make_posts(db, tenant.id, [Platform.BLUESKY], publish_at=datetime(2026, 3, 12, 9, tzinfo=UTC))
    await set_post(db, post.id, text="Parcel robots, sorted: https://acme.example/blog/robots #robots")
    account = pds.create_account("robots")
    await connect_bluesky(stack, tenant, str(post.company_id), pds, account, pds.create_app_password(account))
    return post, account.did


async def test_the_pds_going_away_mid_publish_loses_nothing_and_posts_once(
    stack: RunningStack, tenant: Tenant, db: Database, pds: PdsServer
) -> None:
    post, did = await bluesky_post(stack, tenant, db, pds)
    acts = publisher_acts(stack, db)
    pds.stop_pds()
    try:
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
        assert not caught.value.non_retryable
        waiting = await reload(db, post.id)
        assert waiting.publish_state in (PublishState.SCHEDULED, PublishState.PUBLISHING)
    finally:
        pds.start_pds()
    outcome = await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert outcome.state == PublishState.PUBLISHED
    [record] = pds.list_records(did, POST_COLLECTION)
    assert record["uri"] == outcome.external_id and record["uri"].endswith(record_key(post.id))
    facets = record["value"]["facets"]
    assert {f["features"][0]["$type"] for f in facets} == {
        "app.bsky.richtext.facet#link",
        "app.bsky.richtext.facet#tag",
    }

    # The worker died after the PDS took the record but before it was written down: the next attempt asks the PDS
    # instead of guessing, and finds it.
    await set_post(db, post.id, publish_state=PublishState.PUBLISHING.value, external_id=None, published_at=None)
    again = await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert again.state == PublishState.PUBLISHED and again.external_id == outcome.external_id
    assert len(pds.list_records(did, POST_COLLECTION)) == 1


async def test_a_refused_password_makes_posts_wait_for_a_reconnect(
    stack: RunningStack, tenant: Tenant, db: Database, pds: PdsServer
) -> None:
    post, did = await bluesky_post(stack, tenant, db, pds)
    [channel] = await channel_rows(db, str(post.company_id))
    # The session and the app password stop working (the owner revoked the app password): simulated by replacing
    # the stored credentials with ones the PDS refuses, as the channel layer stores them.
    acts = publisher_acts(stack, db)
    vault = acts.channels.vault
    stale = vault.open(channel.credentials)
    stale.update(appPassword="aaaa-bbbb-cccc-dddd", session="")
    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(Channel).where(col(Channel.id) == channel.id).values(credentials=vault.seal(stale))
        )
        await session.commit()
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert caught.value.type == "ChannelNeedsReconnect" and not caught.value.non_retryable
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.SCHEDULED and "connected again" in (row.publish_error or "")
    [channel] = await channel_rows(db, str(post.company_id))
    assert channel.state == "NEEDS_RECONNECT" and pds.list_records(did, POST_COLLECTION) == []


async def test_a_pipeline_publishes_through_its_bluesky_and_mastodon_channels(
    stack: RunningStack, db: Database, pds: PdsServer, mastodon: MastodonServer
) -> None:
    tenant = await make_tenant(db, Tier.PRO)  # images, no video
    http = stack.http
    company_id = await new_company(stack, tenant)
    account = pds.create_account("pipeline")
    await connect_bluesky(stack, tenant, company_id, pds, account, pds.create_app_password(account))
    await connect_mastodon(stack, tenant, company_id, mastodon)

    options = {"topicsPerPersona": 1, "compressScheduleSeconds": 2, "blogUrlTemplate": BLOG_URL}
    started = await http.post(
        f"/api/v1/ai/companies/{company_id}/pipelines/",
        json={"month": next_month(), "platforms": ["bluesky", "mastodon"], "options": options},
        headers=tenant.headers(),
    )
    assert started.status_code == 202, started.text
    pipeline = str(started.json()["pipelineId"])
    supervisor = tenant.headers(Role.SUPERVISOR)
    base = f"/api/v1/ai/pipelines/{pipeline}/approvals"
    state = await wait_for(http, tenant, pipeline, "personas", seconds=180)
    personas = [item["id"] for item in state["pendingApproval"]["items"]]
    assert (
        await http.post(f"{base}/personas/", json={"selectedPersonaIds": personas[:3]}, headers=supervisor)
    ).is_success
    state = await wait_for(http, tenant, pipeline, "topics", seconds=180)
    topics = [item["id"] for item in state["pendingApproval"]["items"]]
    assert (
        await http.post(
            f"{base}/topics/", json={"approvedTopicIds": topics[:1], "droppedTopicIds": topics[1:]}, headers=supervisor
        )
    ).is_success
    state = await wait_for(http, tenant, pipeline, "blogpost", seconds=180)
    [item] = state["pendingApproval"]["items"]
    assert (
        await http.post(f"{base}/blogposts/{item['id']}/", json={"decision": "approve"}, headers=supervisor)
    ).is_success
    final = await wait_for(http, tenant, pipeline, None, seconds=240)
    assert final["status"] == "COMPLETED", final["reason"]
    assert final["counts"]["published"] == 2

    async with db.session() as session:
        rows = (await session.exec(select(SocialPost).where(col(SocialPost.company_id) == uuid.UUID(company_id)))).all()
    by_platform = {Platform(r.platform): r for r in rows}
    assert set(by_platform) == {Platform.BLUESKY, Platform.MASTODON}
    assert all(r.publish_state == PublishState.PUBLISHED for r in rows)

    bluesky = by_platform[Platform.BLUESKY]
    rkey = str(bluesky.external_id).rsplit("/", 1)[-1]
    record = pds.get_record(account.did, POST_COLLECTION, rkey)
    assert record is not None and record["value"]["text"] == bluesky.text
    images = record["value"]["embed"]["images"]
    assert len(images) == 1 and images[0]["alt"]
    blob = pds.get_blob(account.did, images[0]["image"]["ref"]["$link"])
    assert blob[:2] == b"\xff\xd8"  # the image, as JPEG
    link = "https://bsky-co.example/blog/"
    spans = [f for f in record["value"].get("facets", []) if f["features"][0]["$type"].endswith("#link")]
    assert spans and all(f["features"][0]["uri"].startswith(link) for f in spans)
    encoded = bluesky.text.encode("utf-8")
    assert all(encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode().startswith(link) for f in spans)

    [status] = mastodon.statuses
    assert status.id == by_platform[Platform.MASTODON].external_id and len(status.media_ids) == 1
