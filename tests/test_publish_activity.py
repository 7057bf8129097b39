"""publish_post and notify_tenant against a real PostgreSQL and a real webhook receiver on 127.0.0.1:
a post is delivered at most once, whatever fails and however often the activity runs."""

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.publish import EARLIER_ATTEMPT_MESSAGE, NO_PUBLISHER_MESSAGE, PostStore, PublishActivities
from models.db import Database
from models.enums import Platform, PublishState
from models.pipeline import PublishOutcome, PublishPost, TenantNotice
from models.tables import SocialPost
from tests.conftest import Tenant
from tests.publish_rows import PUBLIC_BASE_URL, make_posts, media_of, publish_activities, reload, set_webhook
from tests.webhook_receiver import SECRET, dropping, receiving, refused_url

PUBLISH_AT = datetime(2026, 3, 12, 8, 10, tzinfo=UTC)


@pytest.fixture
def acts(database_url: str, db: Database) -> PublishActivities:
    return publish_activities(database_url, db)


async def scheduled_post(db: Database, tenant: Tenant, *, with_image: bool = False) -> SocialPost:
    [post] = await make_posts(db, tenant.id, [Platform.LINKEDIN], publish_at=PUBLISH_AT, with_image=with_image)
    return post


async def publish(acts: PublishActivities, post_id: uuid.UUID) -> PublishOutcome:
    return await ActivityEnvironment().run(acts.publish_post, PublishPost(social_post_id=post_id))


async def test_a_post_is_published_once_when_the_activity_runs_twice(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant, with_image=True)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        first = await publish(acts, post.id)
        second = await publish(acts, post.id)

    assert first == PublishOutcome(social_post_id=post.id, state=PublishState.PUBLISHED, external_id="ext-1", message="")
    assert second == first
    assert len(receiver.requests) == 1
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.PUBLISHED and row.external_id == "ext-1" and row.publish_error is None
    assert row.published_at is not None and abs(row.published_at - datetime.now(UTC)) < timedelta(minutes=1)

    [request] = receiver.requests
    assert request.verified and request.idempotency_key == str(post.id)
    data = request.json["data"]
    assert data["socialPostId"] == str(post.id) and data["platform"] == "linkedin"
    assert data["text"] == post.text and data["hashtags"] == ["#robots"] and data["companyName"] == "Acme Robotics"
    assert data["publishAt"] == "2026-03-12T08:10:00Z"
    [asset] = await media_of(db, post.id)
    [url] = [m["url"] for m in data["media"]]
    # A link the receiver can download without an API key, signed with the tenant's webhook secret.
    assert url.startswith(f"{PUBLIC_BASE_URL}/api/v1/media/{asset.id}/file?expires=") and "&signature=" in url
    assert data["media"][0]["altText"] == "A robot sorting parcels"


async def test_two_attempts_at_the_same_time_send_once(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("ok") as receiver:
        receiver.delay = 0.2
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcomes = await asyncio.gather(publish(acts, post.id), publish(acts, post.id))
    assert len(receiver.requests) == 1
    assert PublishState.PUBLISHED in {o.state for o in outcomes}
    # The loser saw the claim and could not know the outcome; the winner's receipt still lands.
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.PUBLISHED and row.external_id == "ext-1"


async def test_a_crash_between_storing_the_id_and_marking_published_does_not_resend(
    acts: PublishActivities, db: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = await scheduled_post(db, tenant)

    async def crash(self: PostStore, post_id: uuid.UUID) -> bool:
        raise RuntimeError("the worker died here")

    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        with monkeypatch.context() as patched:
            patched.setattr(PostStore, "mark_published", crash)
            with pytest.raises(RuntimeError):
                await publish(acts, post.id)
        halfway = await reload(db, post.id)
        assert halfway.publish_state == PublishState.PUBLISHING and halfway.external_id == "ext-1"

        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1"
    assert len(receiver.requests) == 1
    assert (await reload(db, post.id)).published_at is not None


async def test_a_timeout_leaves_the_post_unconfirmed_and_it_is_never_sent_again(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving("slow") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        first = await publish(acts, post.id)
        receiver.mode = "ok"
        second = await publish(acts, post.id)
    assert first.state == PublishState.UNCONFIRMED
    assert "did not answer within 0.5 s" in first.message and "check the receiver before re-sending" in first.message
    assert second == first
    assert len(receiver.requests) == 1
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.UNCONFIRMED and row.external_id is None and row.published_at is None


@pytest.mark.parametrize(("mode", "said"), [("error", "answered 500"), ("no_id", "without the post's id"), ("conflict", "409")])
async def test_an_unknown_outcome_is_unconfirmed(
    acts: PublishActivities, db: Database, tenant: Tenant, mode: str, said: str
) -> None:
    post = await scheduled_post(db, tenant)
    async with receiving(mode) as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
        again = await publish(acts, post.id)
    assert outcome.state == PublishState.UNCONFIRMED and said in outcome.message
    assert again == outcome and len(receiver.requests) == 1


async def test_a_connection_dropped_mid_request_is_unconfirmed(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    async with dropping() as dropper:
        await set_webhook(db, tenant.id, dropper.url, SECRET)
        outcome = await publish(acts, post.id)
        await publish(acts, post.id)
    assert outcome.state == PublishState.UNCONFIRMED and dropper.requests == 1


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


async def test_a_refused_connection_is_retried_and_then_published_once(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    await set_webhook(db, tenant.id, refused_url(), SECRET)
    with pytest.raises(ApplicationError) as caught:
        await publish(acts, post.id)
    assert caught.value.type == "PublishNotSent" and not caught.value.non_retryable
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.SCHEDULED and row.external_id is None
    assert row.publish_error and row.publish_error.startswith("not sent yet, will retry: could not connect")

    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
        await publish(acts, post.id)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-1" and outcome.message == ""
    assert len(receiver.requests) == 1


async def test_on_the_last_attempt_a_post_never_sent_fails_and_says_so(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    await set_webhook(db, tenant.id, refused_url(), SECRET)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=8, retry_policy=RetryPolicy(maximum_attempts=8))
    outcome = await env.run(acts.publish_post, PublishPost(social_post_id=post.id))
    assert outcome.state == PublishState.FAILED
    assert outcome.message.startswith("not sent after 8 attempts: could not connect")
    assert (await reload(db, post.id)).publish_state == PublishState.FAILED


async def test_a_throttled_post_is_retried_after_the_receivers_delay(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.DRAFT)
    async with receiving("throttle") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        with pytest.raises(ApplicationError) as caught:
            await publish(acts, post.id)
        receiver.mode = "ok"
        outcome = await publish(acts, post.id)
    assert caught.value.type == "PublishNotSent" and caught.value.next_retry_delay == timedelta(seconds=7)
    assert outcome.state == PublishState.PUBLISHED and outcome.external_id == "ext-2"
    assert len(receiver.requests) == 2  # the 429 was not processed; the second request is the only delivery


async def test_without_a_webhook_the_post_fails_with_what_to_do(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    post = await scheduled_post(db, tenant)
    await set_webhook(db, tenant.id, None, None)
    outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.FAILED and outcome.message == NO_PUBLISHER_MESSAGE
    assert "PUT /api/v1/tenant/webhook" in outcome.message
    row = await reload(db, post.id)
    assert row.publish_state == PublishState.FAILED and row.external_id is None


async def test_a_post_left_publishing_by_an_earlier_attempt_is_unconfirmed_not_resent(
    acts: PublishActivities, db: Database, tenant: Tenant
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.PUBLISHING, publish_at=PUBLISH_AT)
    async with receiving("ok") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        outcome = await publish(acts, post.id)
    assert outcome.state == PublishState.UNCONFIRMED and outcome.message == EARLIER_ATTEMPT_MESSAGE
    assert receiver.requests == []


async def test_an_unknown_post_is_a_permanent_error(acts: PublishActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await publish(acts, uuid.uuid4())
    assert caught.value.type == "SocialPostNotFound" and caught.value.non_retryable


# ---- notify_tenant ------------------------------------------------------------------------------------------------------


def notice(tenant: Tenant) -> TenantNotice:
    return TenantNotice(
        tenant_id=tenant.id,
        event="approval.reminder",
        pipeline_id=uuid.uuid4(),
        data={"gate": "topics", "deadline": "2026-03-01T09:00:00Z"},
    )


async def test_a_notice_is_delivered_signed(acts: PublishActivities, db: Database, tenant: Tenant) -> None:
    sent = notice(tenant)
    async with receiving("notice") as receiver:
        await set_webhook(db, tenant.id, receiver.url, SECRET)
        delivered = await ActivityEnvironment().run(acts.notify_tenant, sent)
    assert delivered is True
    [request] = receiver.requests
    assert request.verified and request.event == "approval.reminder" and request.idempotency_key
    assert request.json["data"] == {
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
    assert any("approval.reminder" in r.getMessage() and str(sent.pipeline_id) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["error", "reject", "slow", "refused"])
async def test_a_notice_that_cannot_be_delivered_answers_false(
    acts: PublishActivities, db: Database, tenant: Tenant, mode: str
) -> None:
    async with receiving("notice" if mode == "refused" else mode) as receiver:
        await set_webhook(db, tenant.id, refused_url() if mode == "refused" else receiver.url, SECRET)
        delivered = await ActivityEnvironment().run(acts.notify_tenant, notice(tenant))
    assert delivered is False


async def test_a_notice_for_a_missing_tenant_answers_false(acts: PublishActivities) -> None:
    gone = TenantNotice(tenant_id=uuid.uuid4(), event="pipeline.finished", pipeline_id=uuid.uuid4())
    assert await ActivityEnvironment().run(acts.notify_tenant, gone) is False
