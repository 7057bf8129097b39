"""publish_post and notify_tenant against a real PostgreSQL and a real webhook receiver on 127.0.0.1: a post
is delivered and never posted twice, whatever fails and however often the activity runs. Webhook deliveries
are safe to repeat (Standard Webhooks: the receiver de-duplicates on webhook-id), so an unknown outcome is sent
again with the same id, with backoff, until the receiver acknowledges it or the budget (counted in the database)
is spent; a publisher that is not safe to repeat never sends twice."""

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.publish import (
    EARLIER_ATTEMPT_MESSAGE,
    MAX_SENDS,
    NO_PUBLISHER_MESSAGE,
    PostStore,
    PublishActivities,
    backoff,
)
from models import destinations
from models.db import Database
from models.enums import Platform, PublishState
from models.pipeline import PublishOutcome, PublishPost, TenantNotice
from models.tables import SocialPost
from publishers.base import Delivery, Publisher, PublishOutcomeUnknown, Receipt
from publishers.webhook import derived_webhook_id
from tests.support.publish_rows import (
    PUBLIC_BASE_URL,
    make_posts,
    media_of,
    publish_activities,
    reload,
    set_post,
    set_webhook,
)
from tests.support.stack import Tenant
from tests.support.webhook_receiver import SECRET, dropping, receiving, refused_url

PUBLISH_AT = datetime(2026, 3, 12, 8, 10, tzinfo=UTC)
BACKOFFS = [timedelta(seconds=s) for s in (5, 10, 20, 40, 80, 160, 300)]


@pytest.fixture
def acts(database_url: str, db: Database) -> PublishActivities:
    return publish_activities(database_url, db)


async def scheduled_post(db: Database, tenant: Tenant, *, with_image: bool = False) -> SocialPost:
    [post] = await make_posts(db, tenant.id, [Platform.LINKEDIN], publish_at=PUBLISH_AT, with_image=with_image)
    return post


async def publish(acts: PublishActivities, post_id: uuid.UUID) -> PublishOutcome:
    return await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post_id))


async def retried(acts: PublishActivities, post_id: uuid.UUID) -> ApplicationError:
    """One attempt that ends in a retryable error (what Temporal would retry after its next_retry_delay)."""
    with pytest.raises(ApplicationError) as caught:
        await publish(acts, post_id)
    assert not caught.value.non_retryable
    return caught.value


def test_the_backoff_doubles_from_5_s_up_to_5_min_and_honours_retry_after() -> None:
    assert [backoff(n) for n in range(1, 8)] == BACKOFFS
    assert backoff(20) == timedelta(minutes=5)
    assert backoff(1, retry_after=7) == timedelta(seconds=7)
    assert backoff(3, retry_after=1) == timedelta(seconds=20)  # never sooner than the backoff
    assert backoff(1, retry_after=86400) == timedelta(hours=1)


# ---- acknowledged -----------------------------------------------------------------------------------------------


async def test_a_post_is_published_once_when_the_activity_runs_twice(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant, with_image=True)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        first = await publish(acts, post.id)
        second = await publish(acts, post.id)

    assert first == PublishOutcome(
        social_post_id=post.id, state=PublishState.PUBLISHED, external_id="ext-1", message=""
    )
    assert second == first
    assert len(receiver.requests) == 1
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.PUBLISHED and row.external_id == "ext-1" and row.publish_error is None
    assert row.published_at is not None and abs(row.published_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert row.delivery_attempts == 1 and row.delivery_id and row.delivery_id.startswith("msg_")

    [request] = receiver.requests
    assert request.verified and request.webhook_id == row.delivery_id and request.event == "post.publish"
    data = request.json["data"]
    assert data["socialPostId"] == str(post.id) and data["platform"] == "linkedin"
    assert data["text"] == post.text and data["hashtags"] == ["#robots"] and data["companyName"] == "Acme Robotics"
    assert data["publishAt"] == "2026-03-12T08:10:00Z"
    [asset] = await media_of(db, post.id)
    [url] = [m["url"] for m in data["media"]]
    # A link the receiver can download without an API key, signed with the tenant's webhook secret.
    assert url.startswith(f"{PUBLIC_BASE_URL}/api/v1/media/{asset.id}/file?expires=") and "&signature=" in url
    assert data["media"][0]["altText"] == "A robot sorting parcels"


@pytest.mark.parametrize("mode", ["no_id", "long_id", "unsafe_id"])
async def test_a_2xx_without_a_usable_id_is_published_without_one(
    acts: PublishActivities, db: Database, tenant: Tenant, mode: str
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving(mode) as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
        again = await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id is None and outcome.message == ""
    assert again == outcome and len(receiver.requests) == 1
    row = await reload(db, post.id)
    assert row.external_id is None and row.published_at is not None  # nothing of the receiver's answer is kept


async def test_two_attempts_at_the_same_time_send_once(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("ok") as receiver:
        receiver.delay = 0.3
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        results = await asyncio.gather(publish(acts, post.id), publish(acts, post.id), return_exceptions=True)
    assert len(receiver.requests) == 1
    # One attempt holds the post while it sends; the other finds it held and is to come back later.
    [outcome] = [r for r in results if isinstance(r, PublishOutcome)]
    [busy] = [r for r in results if isinstance(r, ApplicationError)]
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1"
    assert busy.type == "PublishInProgress" and busy.next_retry_delay == timedelta(seconds=5)
    assert (await reload(db, post.id)).delivery_attempts == 1


async def test_publishing_heartbeats_while_it_sends(database_url: str, db: Database, tenant: Tenant) -> None:
    patient = publish_activities(database_url, db, timeout_seconds=5)
    post = await scheduled_post(db, tenant)
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    async with receiving("ok") as receiver:
        receiver.delay = 2.2
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await env.run(patient.publish_post, PublishPost(social_post_id=post.id))
    assert outcome.state == PublishState.PUBLISHED
    assert len(beats) >= 2  # every second while the receiver took its time


# ---- a crash mid-delivery --------------------------------------------------------------------------------------


async def test_a_crash_after_the_receiver_took_the_post_resends_it_with_the_same_id(
    acts: PublishActivities, db: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = await scheduled_post(db, tenant)

    async def crash(self: PostStore, post_id: uuid.UUID, external_id: str | None) -> bool:
        raise RuntimeError("the worker died here")

    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        with monkeypatch.context() as patched:
            patched.setattr(PostStore, "mark_published", crash)
            with pytest.raises(RuntimeError):
                await publish(acts, post.id)
        halfway = await reload(db, post.id)
        assert halfway.publish_state == PublishState.PUBLISHING and halfway.delivery_id

        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1"
    assert receiver.ids == [halfway.delivery_id, halfway.delivery_id]  # sent again, with the same webhook-id
    assert len(receiver.held) == 1 and receiver.duplicates == 1  # the receiver holds it once


async def test_a_send_cut_off_mid_request_is_resent_with_the_same_id(
    database_url: str, db: Database, tenant: Tenant
) -> None:
    acts = publish_activities(database_url, db, timeout_seconds=10)
    post = await scheduled_post(db, tenant)
    async with receiving("slow") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        attempt = asyncio.create_task(publish(acts, post.id))
        await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
        attempt.cancel()  # the worker stops while the request is in flight
        with pytest.raises(asyncio.CancelledError):
            await attempt
        left = await reload(db, post.id)
        assert left.publish_state == PublishState.PUBLISHING and left.delivery_attempts == 1

        receiver.mode = "ok"
        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1"
    assert receiver.ids == [left.delivery_id, left.delivery_id]
    assert len(receiver.held) == 1 and receiver.duplicates == 1
    assert (await reload(db, post.id)).delivery_attempts == 2


async def test_a_post_left_publishing_with_a_delivery_id_is_resent_with_it(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.PUBLISHING, publish_at=PUBLISH_AT)
    await set_post(db, post.id, delivery_id="msg_left-by-a-dead-worker", delivery_attempts=1)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1"
    assert receiver.ids == ["msg_left-by-a-dead-worker"]
    row = await reload(db, post.id)
    assert row.delivery_id == "msg_left-by-a-dead-worker" and row.delivery_attempts == 2


async def test_a_post_left_publishing_by_the_previous_version_is_unconfirmed_not_resent(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    # Claimed before deliveries had ids: its send, if any, cannot be recognised by the receiver again.
    [post] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.PUBLISHING, publish_at=PUBLISH_AT)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.UNCONFIRMED and outcome.message == EARLIER_ATTEMPT_MESSAGE
    assert receiver.requests == []


async def test_a_receipt_stored_by_the_previous_version_is_finished_without_sending(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    await set_post(db, post.id, publish_state=PublishState.PUBLISHING.value, external_id="ext-old")
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-old"
    assert receiver.requests == []


# ---- unknown outcomes: sent again, same id, with backoff, bounded ------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("error", "answered 500"),
        ("unavailable", "answered 503"),
        ("conflict", "409"),
        ("slow", "did not answer within"),
    ],
)
async def test_an_unknown_outcome_is_resent_with_the_same_id_until_acknowledged(
    acts: PublishActivities, db: Database, tenant: Tenant, mode: str, said: str
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("ok") as receiver:
        receiver.script = [mode, mode]
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        first = await retried(acts, post.id)
        waiting = await reload(db, post.id)
        second = await retried(acts, post.id)
        outcome = await publish(acts, post.id)
        again = await publish(acts, post.id)
    assert first.type == "PublishOutcomeUnknown" and said in str(first)
    assert [first.next_retry_delay, second.next_retry_delay] == BACKOFFS[:2]
    # Between sends the post stays PUBLISHING (the receiver may hold it) and says what happens next.
    assert waiting.publish_state == PublishState.PUBLISHING and waiting.delivery_attempts == 1
    assert waiting.publish_error and waiting.publish_error.startswith("not acknowledged yet, sending again in 5 s")
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id and outcome.message == ""
    assert again == outcome
    assert len(receiver.requests) == 3 and len(set(receiver.ids)) == 1 and receiver.ids[0] == waiting.delivery_id
    assert len(receiver.held) == 1
    assert (await reload(db, post.id)).delivery_attempts == 3


async def test_a_dropped_connection_is_resent_with_the_same_id(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    async with dropping(drops=1) as dropper:
        await set_webhook(db, tenant.id, dropper.url, SECRET)
        dropped = await retried(acts, post.id)
        outcome = await publish(acts, post.id)
    assert dropped.type == "PublishOutcomeUnknown" and "broke after the request was sent" in str(dropped)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "after-drops"
    assert dropper.requests == 2 and len(set(dropper.ids)) == 1


async def test_after_the_bound_an_unacknowledged_post_is_unconfirmed(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("error") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        delays = [(await retried(acts, post.id)).next_retry_delay for _ in range(MAX_SENDS - 1)]
        outcome = await publish(acts, post.id)
        receiver.mode = "ok"
        again = await publish(acts, post.id)
    assert delays == BACKOFFS
    assert outcome.state == PublishState.UNCONFIRMED
    assert outcome.message.startswith(f"no acknowledgement after {MAX_SENDS} sends (the last: ")
    assert "answered 500" in outcome.message and outcome.message.endswith("check the receiver before re-sending")
    assert again == outcome  # final: never sent again
    assert len(receiver.requests) == MAX_SENDS and len(set(receiver.ids)) == 1
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.UNCONFIRMED and row.delivery_attempts == MAX_SENDS


async def test_a_budget_spent_by_a_crash_on_the_last_send_ends_without_sending(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    [sent, unsent] = await make_posts(db, tenant.id, [Platform.X, Platform.LINKEDIN], publish_at=PUBLISH_AT)
    publishing = PublishState.PUBLISHING.value
    await set_post(db, sent.id, publish_state=publishing, delivery_id="msg_x", delivery_attempts=MAX_SENDS)
    await set_post(db, unsent.id, delivery_id="msg_y", delivery_attempts=MAX_SENDS)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        maybe = await publish(acts, sent.id)
        never = await publish(acts, unsent.id)
    assert maybe.state == PublishState.UNCONFIRMED and f"after {MAX_SENDS} sends" in maybe.message
    assert never.state == PublishState.FAILED and never.message == f"not sent after {MAX_SENDS} attempts"
    assert receiver.requests == []


# ---- nothing sent: retried with backoff, bounded ------------------------------------------------------------------


async def test_a_refused_connection_is_retried_and_then_published_once(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    await set_webhook(db, tenant.id, refused_url(), SECRET)
    refused = await retried(acts, post.id)
    assert refused.type == "PublishNotSent" and refused.next_retry_delay == timedelta(seconds=5)
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.SCHEDULED and row.external_id is None and row.delivery_attempts == 1
    assert row.publish_error and row.publish_error.startswith("not sent yet, will retry: could not connect")

    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
        await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1" and outcome.message == ""
    assert receiver.ids == [row.delivery_id]  # the id fixed by the first claim


async def test_a_post_never_sent_fails_after_the_bound_and_says_so(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    await set_webhook(db, tenant.id, refused_url(), SECRET)
    delays = [(await retried(acts, post.id)).next_retry_delay for _ in range(MAX_SENDS - 1)]
    outcome = await publish(acts, post.id)
    assert delays == BACKOFFS
    assert outcome.state == PublishState.FAILED
    assert outcome.message.startswith(f"not sent after {MAX_SENDS} attempts: could not connect")
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.FAILED and row.delivery_attempts == MAX_SENDS


async def test_nothing_sent_after_a_send_that_may_have_arrived_ends_unconfirmed(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("error") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        await retried(acts, post.id)  # a 500: the receiver may hold it
    await set_webhook(db, tenant.id, refused_url(), SECRET)
    for _ in range(MAX_SENDS - 2):
        assert (await retried(acts, post.id)).type == "PublishNotSent"
        assert (await reload(db, post.id)).publish_state == PublishState.PUBLISHING
    outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.UNCONFIRMED and f"after {MAX_SENDS} sends" in outcome.message


async def test_a_throttled_post_is_retried_after_the_receivers_delay(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.DRAFT)
    async with receiving("throttle") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        throttled = await retried(acts, post.id)
        assert (await reload(db, post.id)).publish_state == PublishState.DRAFT
        receiver.mode = "ok"
        outcome = await publish(acts, post.id)
    assert throttled.type == "PublishNotSent" and throttled.next_retry_delay == timedelta(seconds=7)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-2"
    assert len(receiver.requests) == 2  # the 429 was not processed; the second request is the only delivery


# ---- refused for good ---------------------------------------------------------------------------------------------


async def test_a_rejection_fails_the_post_for_good(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("reject") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
        receiver.mode = "ok"
        again = await publish(acts, post.id)
    assert outcome.state == PublishState.FAILED
    assert "422" in outcome.message and "longer than 280 characters" in outcome.message
    assert again == outcome and len(receiver.requests) == 1


async def test_a_webhook_on_a_non_public_address_fails_the_post_and_sends_nothing(
    database_url: str, db: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = publish_activities(database_url, db, allow_private_networks=False)
    [literal, rebound] = await make_posts(db, tenant.id, [Platform.X, Platform.LINKEDIN], publish_at=PUBLISH_AT)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        by_address = await publish(strict, literal.id)

        # A name that was public when the webhook was set and resolves to loopback now (DNS rebinding).
        real = destinations.lookup

        async def rebinding(host: str, port: int) -> list[str]:
            return ["127.0.0.1"] if host == "hooks.rebind.test" else await real(host, port)

        monkeypatch.setattr(destinations, "lookup", rebinding)
        port = receiver.url.split(":")[2].split("/")[0]
        await set_webhook(db, tenant.id, f"http://hooks.rebind.test:{port}/hook", SECRET)
        by_name = await publish(strict, rebound.id)
    assert receiver.requests == []
    for outcome in (by_address, by_name):
        assert outcome.state == PublishState.FAILED
        assert outcome.message.startswith("the webhook points at a non-public address: ")
    assert "127.0.0.1 is a loopback address" in by_address.message
    assert "hooks.rebind.test resolves to 127.0.0.1, a loopback address" in by_name.message


async def test_a_secret_from_before_standard_webhooks_fails_the_post_with_what_to_do(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, "whsec_" + "q-Xz_7" * 7)
        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.FAILED and "PUT /api/v1/tenant/webhook" in outcome.message
    assert "Nothing was sent" in outcome.message and receiver.requests == []


async def test_without_a_webhook_the_post_fails_with_what_to_do(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    await set_webhook(db, tenant.id, None, None)
    outcome = await publish(acts, post.id)
    expected = NO_PUBLISHER_MESSAGE.format(platform="linkedin", label="LinkedIn", company=post.company_id)
    assert outcome.state == PublishState.FAILED and outcome.message == expected
    assert outcome.message.startswith("connect a linkedin channel")
    assert "PUT /api/v1/tenant/webhook" in outcome.message
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.FAILED and row.external_id is None


async def test_an_unknown_post_is_a_permanent_error(acts: PublishActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await publish(acts, uuid.uuid4())
    assert caught.value.type == "SocialPostNotFound" and caught.value.non_retryable


# ---- a publisher that is not safe to repeat ---------------------------------------------------------------------


class OneShotPublisher(Publisher):
    """A platform API without idempotency: sending twice would post twice."""

    name = "one-shot"
    repeatable = False

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.sent: list[str] = []

    async def publish(self, delivery: Delivery, delivery_id: str) -> Receipt:
        self.sent.append(delivery_id)
        if self.error is not None:
            raise self.error
        return Receipt(external_id="one-1", status_code=200)


async def test_a_publisher_that_is_not_repeatable_never_sends_twice(
    acts: PublishActivities, db: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    [timed_out, left] = await make_posts(db, tenant.id, [Platform.X, Platform.LINKEDIN], publish_at=PUBLISH_AT)
    await set_post(db, left.id, publish_state=PublishState.PUBLISHING.value, delivery_id="msg_z", delivery_attempts=1)
    await set_webhook(db, tenant.id, "https://hooks.example.com/x", SECRET)
    one_shot = OneShotPublisher(PublishOutcomeUnknown("the platform did not answer in time"))
    monkeypatch.setattr(acts, "publisher_for", lambda tenant, post: one_shot)

    unknown = await publish(acts, timed_out.id)
    found_publishing = await publish(acts, left.id)
    one_shot.error = None
    assert await publish(acts, timed_out.id) == unknown
    assert unknown.state == PublishState.UNCONFIRMED and unknown.message.startswith("the platform did not answer")
    assert found_publishing.state == PublishState.UNCONFIRMED and found_publishing.message == EARLIER_ATTEMPT_MESSAGE
    assert len(one_shot.sent) == 1


# ---- notify_tenant ---------------------------------------------------------------------------------------------------


def notice(tenant: Tenant) -> TenantNotice:
    return TenantNotice(
        tenant_id=tenant.id,
        event="approval.reminder",
        pipeline_id=uuid.uuid4(),
        data={"gate": "topics", "deadline": "2026-03-01T09:00:00Z"},
    )


async def test_a_notice_is_delivered_signed_with_an_id_that_a_retry_repeats(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    sent = notice(tenant)
    async with receiving("notice") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        delivered = await ActivityEnvironment().run(acts.notify_tenant, sent)
        again = await ActivityEnvironment().run(acts.notify_tenant, sent)  # a retry of the same activity
    assert delivered is True and again is True
    first, second = receiver.requests
    assert first.verified and first.event == "approval.reminder"
    info = ActivityEnvironment().info
    key = f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
    assert first.webhook_id == second.webhook_id == derived_webhook_id(key)
    assert receiver.duplicates == 1
    assert first.json["data"] == {
        "gate": "topics",
        "deadline": "2026-03-01T09:00:00Z",
        "tenantId": str(tenant.id),
        "pipelineId": str(sent.pipeline_id),
    }


async def test_a_notice_without_a_webhook_is_logged(
    acts: PublishActivities, db: Database, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    await set_webhook(db, tenant.id, None, None)
    sent = notice(tenant)
    with caplog.at_level(logging.INFO, logger="temporalio.activity"):
        delivered = await ActivityEnvironment().run(acts.notify_tenant, sent)
    assert delivered is False
    assert any(
        "approval.reminder" in r.getMessage() and str(sent.pipeline_id) in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize("mode", ["error", "reject", "slow", "refused", "old_secret", "non_public"])
async def test_a_notice_that_cannot_be_delivered_answers_false(
    database_url: str, acts: PublishActivities, db: Database, tenant: Tenant, mode: str
) -> None:
    runner = publish_activities(database_url, db, allow_private_networks=False) if mode == "non_public" else acts
    async with receiving("notice" if mode in ("refused", "old_secret", "non_public") else mode) as receiver:
        secret = "whsec_" + "q-Xz_7" * 7 if mode == "old_secret" else SECRET
        await set_webhook(db, tenant.id, refused_url() if mode == "refused" else receiver.url, secret)
        delivered = await ActivityEnvironment().run(runner.notify_tenant, notice(tenant))
    assert delivered is False


async def test_a_notice_for_a_missing_tenant_answers_false(acts: PublishActivities) -> None:
    gone = TenantNotice(tenant_id=uuid.uuid4(), event="pipeline.finished", pipeline_id=uuid.uuid4())
    assert await ActivityEnvironment().run(acts.notify_tenant, gone) is False
