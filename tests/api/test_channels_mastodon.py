"""Mastodon channels end to end: the API, a worker and the local server that speaks Mastodon's documented API.

The OAuth sign-in as a person goes through it (the API answers the instance's authorization URL, the instance sends
the browser back to the API's callback), the channel's token kept only encrypted, a test that posts nothing, a
revoked token seen as such (with `channel.needs_reconnect` to the tenant's webhook, once), posts published through
the channel with an Idempotency-Key and the instance's own character limit, and disconnecting revokes the token.
"""

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import col
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deps import StageDeps
from activities.publish import PublishActivities
from models.db import Database
from models.enums import Platform, PublishState, Role
from models.names import ErrorType
from models.pipeline import PublishPost
from models.tables import Channel, ChannelAttempt, OAuthClient, SocialPost
from providers.router import ProviderRouter
from tests.support.mastodon_fixtures import mastodon_fixture, mastodon_session_fixture  # noqa: F401
from tests.support.mastodon_server import STATUSES, MastodonServer, dropped_after, follow_authorization, query_of
from tests.support.publish_rows import make_posts, reload, set_webhook
from tests.support.stack import RunningStack, Tenant
from tests.support.webhook_receiver import SECRET, receiving
from worker import ensure_channel_health_schedule
from workflows.policies import CHANNEL_HEALTH_SCHEDULE_ID

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
async def fresh_instance(mastodon: MastodonServer, db: Database) -> None:
    """The local server starts every test as a new instance that has never seen this deployment's app: the app
    registered by an earlier test is forgotten here too (a real instance keeps it, and so does the deployment)."""
    async with db.session() as session:
        await session.exec(sa.delete(OAuthClient).where(col(OAuthClient.service) == mastodon.base_url))  # type: ignore[call-overload]
        await session.commit()


async def new_company(stack: RunningStack, tenant: Tenant) -> str:
    answer = await stack.http.post(
        "/api/v1/companies", json={"name": f"Mastodon {uuid.uuid4().hex[:6]}"}, headers=tenant.headers()
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def connect(stack: RunningStack, tenant: Tenant, company_id: str, mastodon: MastodonServer) -> dict:
    """The whole sign-in as a person does it: start, agree at the instance, come back to the callback."""
    started = await stack.http.post(
        f"/api/v1/companies/{company_id}/channels/connect",
        json={"platform": "mastodon", "instance": mastodon.base_url},
        headers=tenant.headers(),
    )
    assert started.status_code == 200, started.text
    back = await follow_authorization(started.json()["authorizationUrl"])
    assert back.startswith(f"{stack.base_url}/api/v1/channels/callback/mastodon?")
    finished = await stack.http.get(back.removeprefix(stack.base_url), headers={"Accept": "application/json"})
    assert finished.status_code == 201, finished.text
    channel: dict = finished.json()
    return channel


async def channel_rows(db: Database, company_id: str) -> list[Channel]:
    async with db.session() as session:
        rows = await session.exec(sa.select(Channel).where(col(Channel.company_id) == uuid.UUID(company_id)))  # type: ignore[call-overload]
        return list(rows.scalars().all())


async def channel_histories(stack: RunningStack, tenant: Tenant, *, at_least: int) -> list[str]:
    """The JSON histories of the tenant's ChannelTaskWorkflows (visibility catches up within moments)."""
    query = f"WorkflowType = 'ChannelTaskWorkflow' AND TenantId = '{tenant.id}'"
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        executions = [execution async for execution in stack.client.list_workflows(query)]
        if len(executions) >= at_least or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert len(executions) >= at_least, executions
    return [
        (await stack.client.get_workflow_handle(e.id, run_id=e.run_id).fetch_history()).to_json() for e in executions
    ]


def live_tokens(mastodon: MastodonServer) -> list[str]:
    return [value for value, token in mastodon.tokens.items() if not token.revoked]


async def test_a_marketer_connects_mastodon_through_the_instances_sign_in(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mastodon.config.max_characters = 1000
    company_id = await new_company(stack, tenant)
    channel = await connect(stack, tenant, company_id, mastodon)

    assert channel["platform"] == "mastodon" and channel["state"] == "CONNECTED"
    assert channel["account"]["handle"].startswith("@alice@") and channel["account"]["displayName"] == "Alice Example"
    assert channel["rules"]["maxChars"] == 1000 and channel["rules"]["urlLength"] == 23
    listed = await stack.http.get(f"/api/v1/companies/{company_id}/channels", headers=tenant.headers())
    assert listed.status_code == 200 and [c["id"] for c in listed.json()["data"]] == [channel["id"]]

    # The token and the app's secret are in the table only encrypted; no attempt is left behind.
    [token] = live_tokens(mastodon)
    [app] = mastodon.apps.values()
    [row] = await channel_rows(db, company_id)
    assert token not in row.credentials and app.client_secret not in row.credentials
    async with db.session() as session:
        attempts = await session.exec(
            sa.select(sa.func.count()).select_from(ChannelAttempt).where(col(ChannelAttempt.tenant_id) == tenant.id)  # type: ignore[call-overload]
        )
        assert attempts.one()[0] == 0
    # ... and nowhere in what the API, the worker or Temporal's client logged.
    for secret in (token, app.client_secret):
        assert secret not in caplog.text
    assert token not in listed.text

    # Test: posts nothing, verifies the token.
    tested = await stack.http.post(f"/api/v1/channels/{channel['id']}/test", headers=tenant.headers())
    assert tested.status_code == 200 and tested.json()["ok"] is True
    assert mastodon.statuses == []

    # Nor in Temporal's histories: the channel workflows (authorize, connect, test) carry ids only.
    [grant] = mastodon.grants.values()
    histories = await channel_histories(stack, tenant, at_least=3)
    for history in histories:
        for secret in (token, app.client_secret, grant.code):
            assert secret not in history


async def test_the_callback_is_good_once_and_a_declined_sign_in_connects_nothing(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    company_id = await new_company(stack, tenant)
    started = await stack.http.post(
        f"/api/v1/companies/{company_id}/channels/connect",
        json={"platform": "mastodon", "instance": mastodon.base_url},
        headers=tenant.headers(),
    )
    back = await follow_authorization(started.json()["authorizationUrl"])
    path = back.removeprefix(stack.base_url)
    assert (await stack.http.get(path)).status_code == 201
    replayed = await stack.http.get(path)
    assert replayed.status_code == 400 and replayed.headers["content-type"].startswith(PROBLEM)
    forged = await stack.http.get("/api/v1/channels/callback/mastodon", params={"state": "x" * 40, "code": "y"})
    assert forged.status_code == 400

    # A person who says no at the instance: nothing connected for the second company; a browser goes to the studio.
    other = await new_company(stack, tenant)
    mastodon.authorize_decision = "deny"
    started = await stack.http.post(
        f"/api/v1/companies/{other}/channels/connect",
        json={"platform": "mastodon", "instance": mastodon.base_url},
        headers=tenant.headers(),
    )
    back = await follow_authorization(started.json()["authorizationUrl"])
    assert query_of(back)["error"] == "access_denied"
    declined = await stack.http.get(back.removeprefix(stack.base_url), headers={"Accept": "text/html"})
    assert declined.status_code == 303 and declined.headers["location"].endswith("/channels?failed=mastodon")
    assert await channel_rows(db, other) == []


async def test_bad_input_is_refused_and_changes_nothing(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    company_id = await new_company(stack, tenant)
    cases = [
        ({"platform": "mastodon", "instance": "ftp://mastodon.example"}, "body.instance"),
        ({"platform": "mastodon"}, "body.instance"),
        ({"platform": "bluesky", "instance": mastodon.base_url}, "body.platform"),
        ({"platform": "x", "instance": mastodon.base_url}, "body.platform"),
    ]
    for body, field in cases:
        answer = await stack.http.post(
            f"/api/v1/companies/{company_id}/channels/connect", json=body, headers=tenant.headers()
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field
    # Another tenant's company is not found, whatever the body.
    foreign = await stack.http.post(
        f"/api/v1/companies/{company_id}/channels/connect",
        json={"platform": "mastodon", "instance": mastodon.base_url},
        headers=other_tenant.headers(),
    )
    assert foreign.status_code == 404
    assert mastodon.apps == {} and await channel_rows(db, company_id) == []


async def test_a_revoked_token_needs_a_reconnect_and_the_tenant_hears_once(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    company_id = await new_company(stack, tenant)
    channel = await connect(stack, tenant, company_id, mastodon)
    async with receiving("notice") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        mastodon.revoke_all_tokens()
        for _ in range(2):
            tested = await stack.http.post(f"/api/v1/channels/{channel['id']}/test", headers=tenant.headers())
            assert tested.status_code == 200 and tested.json()["ok"] is False
        shown = tested.json()["channel"]
        assert shown["state"] in ("NEEDS_RECONNECT", "REVOKED") and shown["lastError"]
        notices = [r for r in receiver.requests if r.event == "channel.needs_reconnect"]
        assert len(notices) == 1 and notices[0].verified
        data = notices[0].json["data"]
        assert data["channelId"] == channel["id"] and data["platform"] == "mastodon"
        assert data["reconnectUrl"].endswith(f"/studio/companies/{company_id}/channels")

    # Connecting again makes the same channel CONNECTED (one per company and platform).
    again = await connect(stack, tenant, company_id, mastodon)
    assert again["id"] == channel["id"] and again["state"] == "CONNECTED"


async def test_disconnecting_revokes_the_token_and_forgets_the_channel(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    company_id = await new_company(stack, tenant)
    channel = await connect(stack, tenant, company_id, mastodon)
    supervisor_says = await stack.http.delete(
        f"/api/v1/channels/{channel['id']}", headers=tenant.headers(Role.SUPERVISOR)
    )
    assert supervisor_says.status_code == 204
    assert live_tokens(mastodon) == []
    assert await channel_rows(db, company_id) == []
    assert (await stack.http.delete(f"/api/v1/channels/{channel['id']}", headers=tenant.headers())).status_code == 404


def publisher_acts(stack: RunningStack, db: Database) -> PublishActivities:
    """The publish activities as the stack's worker runs them (its settings: its channel key)."""
    settings = stack.settings
    return PublishActivities(StageDeps(db=db, router=ProviderRouter.from_settings(settings), settings=settings))


async def test_posts_go_out_through_the_channel_once_even_after_an_unknown_outcome(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.MASTODON], publish_at=datetime(2026, 3, 12, 9, tzinfo=UTC))
    company_id = str(post.company_id)
    await connect(stack, tenant, company_id, mastodon)
    acts = publisher_acts(stack, db)

    # The instance posts the status, then the connection drops: the retry carries the same Idempotency-Key.
    mastodon.inject(STATUSES, dropped_after())
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    outcome = await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert outcome.state == PublishState.PUBLISHED
    assert len(mastodon.statuses) == 1 and mastodon.duplicates == 1
    keys = {r.headers.get("idempotency-key") for r in mastodon.requests_for(STATUSES)}
    assert len(keys) == 1 and None not in keys
    row = await reload(db, post.id)
    assert row.external_id == mastodon.statuses[0].id and row.published_at is not None

    # A revoked token: the next post waits (SCHEDULED, with why), it does not fail, and it goes once reconnected.
    [later] = await make_posts(db, tenant.id, [Platform.MASTODON], publish_at=datetime(2026, 3, 13, 9, tzinfo=UTC))
    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(SocialPost).where(col(SocialPost.id) == later.id).values(company_id=post.company_id)
        )
        await session.commit()
    mastodon.revoke_all_tokens()
    for _ in range(2):
        with pytest.raises(ApplicationError) as waiting:
            await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=later.id))
        assert waiting.value.type == ErrorType.CHANNEL_NEEDS_RECONNECT and not waiting.value.non_retryable
    row = await reload(db, later.id)
    assert row.publish_state == PublishState.SCHEDULED and "reconnect" in (row.publish_error or "")
    [channel] = await channel_rows(db, company_id)
    assert channel.state in ("NEEDS_RECONNECT", "REVOKED")

    await connect(stack, tenant, company_id, mastodon)
    outcome = await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=later.id))
    assert outcome.state == PublishState.PUBLISHED and len(mastodon.statuses) == 2


async def test_a_post_for_a_platform_without_a_channel_or_webhook_fails_saying_what_to_connect(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.MASTODON], publish_at=datetime(2026, 3, 12, 9, tzinfo=UTC))
    await set_webhook(db, tenant.id, None, None)
    outcome = await ActivityEnvironment().run(
        publisher_acts(stack, db).publish_post, PublishPost(social_post_id=post.id)
    )
    assert outcome.state == PublishState.FAILED and outcome.message.startswith("connect a mastodon channel")


async def test_the_daily_schedule_checks_every_channel(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    company_id = await new_company(stack, tenant)
    channel = await connect(stack, tenant, company_id, mastodon)
    await ensure_channel_health_schedule(stack.client, stack.settings)
    await ensure_channel_health_schedule(stack.client, stack.settings)  # a second worker leaves it as it is
    handle = stack.client.get_schedule_handle(CHANNEL_HEALTH_SCHEDULE_ID + stack.settings.task_queue_suffix)
    try:
        described = await handle.describe()
        [calendar] = described.schedule.spec.calendars
        assert [r.start for r in calendar.hour] == [stack.settings.channel_check_hour_utc]

        mastodon.revoke_all_tokens()
        await handle.trigger()  # what the schedule does once a day, now
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            [row] = await channel_rows(db, company_id)
            if row.state != "CONNECTED" or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert row.id == uuid.UUID(channel["id"]) and row.state in ("NEEDS_RECONNECT", "REVOKED"), row.state
        assert row.last_checked_at is not None and row.last_error
    finally:
        await handle.delete()


async def test_a_supervisor_holds_back_a_post_that_waits_for_its_channel(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.MASTODON], publish_at=datetime(2026, 3, 12, 9, tzinfo=UTC))
    await connect(stack, tenant, str(post.company_id), mastodon)
    mastodon.revoke_all_tokens()
    acts = publisher_acts(stack, db)
    with pytest.raises(ApplicationError) as waiting:
        await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert waiting.value.type == ErrorType.CHANNEL_NEEDS_RECONNECT

    url = f"/api/v1/companies/{post.company_id}/social-posts/{post.id}/hold-back/"
    assert (await stack.http.post(url, headers=tenant.headers())).status_code == 403  # a supervisor's decision
    held = await stack.http.post(url, headers=tenant.headers(Role.SUPERVISOR))
    assert held.status_code == 200, held.text
    assert held.json()["publishState"] == "FAILED" and "a supervisor decided" in held.json()["publishError"]
    # The waiting publish sees the decision at its next attempt and sends nothing.
    outcome = await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert outcome.state == PublishState.FAILED and "a supervisor decided" in outcome.message
    assert mastodon.statuses == []
    # Once it has ended (or gone out), there is nothing to hold back.
    assert (await stack.http.post(url, headers=tenant.headers(Role.SUPERVISOR))).status_code == 409


async def test_an_edit_of_a_mastodon_post_is_checked_against_the_instances_limit(
    stack: RunningStack, tenant: Tenant, db: Database, mastodon: MastodonServer
) -> None:
    mastodon.config.max_characters = 1000
    [post] = await make_posts(db, tenant.id, [Platform.MASTODON], publish_at=datetime(2026, 3, 12, 9, tzinfo=UTC))
    url = f"/api/v1/companies/{post.company_id}/social-posts/{post.id}"
    long_text = "Parcel robots " * 50  # 700 characters: over Mastodon's default 500, within this instance's 1000
    before = await stack.http.patch(url, json={"text": long_text}, headers=tenant.headers())
    assert before.status_code == 422  # no channel yet: Mastodon's default limit
    await connect(stack, tenant, str(post.company_id), mastodon)
    within = await stack.http.patch(url, json={"text": long_text}, headers=tenant.headers())
    assert within.status_code == 200, within.text
    # A link counts 23 however long it is, as the instance counts it.
    link = "https://acme.example/" + "a" * 200
    with_link = await stack.http.patch(url, json={"text": f"{'x' * 970} {link}"}, headers=tenant.headers())
    assert with_link.status_code == 200, with_link.text
    over = await stack.http.patch(url, json={"text": "x" * 1001}, headers=tenant.headers())
    assert over.status_code == 422 and "1001" in over.text
