"""The webhook publisher against a real receiver on 127.0.0.1: signatures, the wire format, and which
error each failure becomes (not sent, rejected, outcome unknown)."""

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from models.enums import MediaKind, Platform
from publishers import (
    Delivery,
    MediaRef,
    PublishNotSent,
    PublishOutcomeUnknown,
    PublishRejected,
    WebhookPublisher,
    send_notification,
    sign,
    verify,
)
from publishers.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, retry_after_seconds
from tests.webhook_receiver import SECRET, dropping, receiving, refused_url

TIMEOUT = 0.5


def delivery(**overrides: object) -> Delivery:
    media_id = uuid.uuid4()
    values: dict[str, object] = {
        "social_post_id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "company_id": uuid.uuid4(),
        "company_name": "Acme Robotics",
        "blog_post_id": uuid.uuid4(),
        "platform": Platform.LINKEDIN,
        "text": "Robots that sort parcels — and why it matters. ✨",
        "hashtags": ["#robotics", "#logistics"],
        "publish_at": datetime(2026, 3, 12, 8, 10, tzinfo=UTC),
        "media": [
            MediaRef(
                id=media_id,
                url=f"http://127.0.0.1:8000/api/v1/media/{media_id}/file",
                kind=MediaKind.IMAGE,
                mime_type="image/png",
                alt_text="A robot arm",
                width=1200,
                height=627,
            )
        ],
    }
    values.update(overrides)
    return Delivery.model_validate(values)


# ---- signing ---------------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"post.publish"}'
    expected = hmac.new(b"s3cret", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1767225600, body) == f"sha256={expected}"
    assert sign("s3cret", "1767225600", body.decode()) == f"sha256={expected}"


def test_verify_accepts_the_secret_and_refuses_everything_else() -> None:
    body = '{"event":"post.publish","data":{"text":"čau"}}'.encode()
    now = int(time.time())
    signature = sign(SECRET, now, body)
    assert verify(SECRET, str(now), body, signature)
    assert not verify("whsec_wrong", str(now), body, signature)
    assert not verify(SECRET, str(now), body + b" ", signature)  # tampered body
    assert not verify(SECRET, str(now + 1), body, signature)  # tampered timestamp
    assert not verify(SECRET, str(now), body, None)
    assert not verify(SECRET, None, body, signature)
    assert not verify(SECRET, "yesterday", body, signature)
    assert not verify(SECRET, str(now), body, "sha256=" + "0" * 64)
    # Replays: a correctly signed but old request is refused.
    old = now - 3600
    assert not verify(SECRET, str(old), body, sign(SECRET, old, body))
    assert verify(SECRET, str(old), body, sign(SECRET, old, body), tolerance_seconds=7200)
    # During a secret rotation a sender may send both signatures.
    assert verify(SECRET, str(now), body, f"{sign('whsec_old', now, body)}, {signature}")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (retry_after_seconds(in_a_minute) or 0) <= 60


# ---- the wire ----------------------------------------------------------------------------------------------


async def test_a_post_is_delivered_signed_with_its_media_and_the_receiver_id_comes_back() -> None:
    post = delivery()
    async with receiving("ok") as receiver:
        receipt = await WebhookPublisher(receiver.url, SECRET, timeout_seconds=TIMEOUT).publish(post)

    assert receipt.external_id == "ext-1"
    assert receipt.url == "https://social.example/p/1"
    assert receipt.status_code == 201
    [request] = receiver.requests
    assert request.verified
    assert request.event == "post.publish"
    assert request.idempotency_key == str(post.social_post_id)
    assert request.headers["content-type"] == "application/json"
    assert request.headers[SIGNATURE_HEADER.lower()].startswith("sha256=")
    assert abs(int(request.headers[TIMESTAMP_HEADER.lower()]) - time.time()) < 60
    body = request.json
    assert body["event"] == "post.publish"
    assert body["deliveryId"] == request.headers[DELIVERY_HEADER.lower()]
    data = body["data"]
    assert data["socialPostId"] == str(post.social_post_id)
    assert data["platform"] == "linkedin"
    assert data["text"] == post.text  # UTF-8 as it is, not escaped
    assert data["hashtags"] == ["#robotics", "#logistics"]
    assert data["publishAt"] == "2026-03-12T08:10:00Z"
    assert data["companyName"] == "Acme Robotics"
    assert data["media"] == [
        {
            "id": str(post.media[0].id),
            "url": post.media[0].url,
            "kind": "image",
            "mimeType": "image/png",
            "altText": "A robot arm",
            "width": 1200,
            "height": 627,
            "durationSeconds": None,
        }
    ]
    assert data["isSample"] is False


@pytest.mark.parametrize(("mode", "external_id"), [("post_id", "post-1"), ("external_id", "4201")])
async def test_the_receiver_id_may_be_named_post_id_or_external_id(mode: str, external_id: str) -> None:
    async with receiving(mode) as receiver:
        receipt = await WebhookPublisher(receiver.url, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
    assert receipt.external_id == external_id


async def test_a_wrong_secret_is_refused_by_the_receiver() -> None:
    async with receiving("ok") as receiver:
        with pytest.raises(PublishRejected) as caught:
            await WebhookPublisher(receiver.url, "whsec_not-the-receivers", timeout_seconds=TIMEOUT).publish(delivery())
    assert caught.value.status_code == 401
    assert [r.verified for r in receiver.requests] == [False]


# ---- failures: which error, and exactly one request each ------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "error", "status"),
    [
        ("reject", PublishRejected, 422),
        ("redirect", PublishRejected, 307),
        ("error", PublishOutcomeUnknown, 500),
        ("unavailable", PublishOutcomeUnknown, 503),
        ("conflict", PublishOutcomeUnknown, 409),
        ("no_id", PublishOutcomeUnknown, 202),
        ("throttle", PublishNotSent, 429),
        ("request_timeout", PublishNotSent, 408),
    ],
)
async def test_each_answer_maps_to_its_error(mode: str, error: type[Exception], status: int) -> None:
    async with receiving(mode) as receiver:
        with pytest.raises(error) as caught:
            await WebhookPublisher(receiver.url, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
    assert getattr(caught.value, "status_code", None) == status
    assert len(receiver.requests) == 1  # never retried, never redirected
    assert "receiver-side-token" not in str(caught.value)  # the URL's query stays out of messages


async def test_429_carries_retry_after_and_rejections_carry_the_receivers_reason() -> None:
    async with receiving("throttle") as receiver:
        with pytest.raises(PublishNotSent) as throttled:
            await WebhookPublisher(receiver.url, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
        receiver.mode = "reject"
        with pytest.raises(PublishRejected) as rejected:
            await WebhookPublisher(receiver.url, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
    assert throttled.value.retry_after == 7
    assert "longer than 280 characters" in str(rejected.value)


async def test_a_receiver_too_slow_to_answer_is_an_unknown_outcome() -> None:
    async with receiving("slow") as receiver:
        started = time.monotonic()
        with pytest.raises(PublishOutcomeUnknown, match=r"did not answer within 0\.5 s"):
            await WebhookPublisher(receiver.url, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
        assert time.monotonic() - started < 3
        assert len(receiver.requests) == 1  # it got the post


async def test_a_connection_dropped_after_sending_is_an_unknown_outcome() -> None:
    async with dropping() as dropper:
        with pytest.raises(PublishOutcomeUnknown, match="broke after the request was sent"):
            await WebhookPublisher(dropper.url, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
    assert dropper.requests == 1


async def test_a_refused_connection_is_not_sent() -> None:
    with pytest.raises(PublishNotSent, match="could not connect"):
        await WebhookPublisher(refused_url(), SECRET, timeout_seconds=TIMEOUT).publish(delivery())


async def test_an_unknown_host_is_not_sent() -> None:
    with pytest.raises(PublishNotSent, match="could not connect"):
        await WebhookPublisher("http://no-such-host.invalid/hook", SECRET, timeout_seconds=TIMEOUT).publish(delivery())


async def test_a_failed_tls_handshake_is_not_sent() -> None:
    async with receiving("ok") as receiver:
        plain = receiver.url.replace("http://", "https://")  # the receiver speaks plain HTTP
        with pytest.raises(PublishNotSent, match="could not connect"):
            await WebhookPublisher(plain, SECRET, timeout_seconds=TIMEOUT).publish(delivery())
    assert receiver.requests == []


async def test_an_unusable_url_is_rejected() -> None:
    with pytest.raises(PublishRejected, match="cannot be used"):
        await WebhookPublisher("ftp://127.0.0.1/hook", SECRET, timeout_seconds=TIMEOUT).publish(delivery())


def test_a_publisher_needs_its_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookPublisher("https://hooks.example/x", "", timeout_seconds=TIMEOUT)


# ---- notices ----------------------------------------------------------------------------------------------------


async def test_a_notice_is_signed_and_needs_no_id_back() -> None:
    async with receiving("notice") as receiver:
        status = await send_notification(
            receiver.url,
            SECRET,
            "approval.reminder",
            {"gate": "topics"},
            timeout_seconds=TIMEOUT,
            idempotency_key="notice-1",
        )
        receiver.mode = "error"
        with pytest.raises(PublishOutcomeUnknown):
            await send_notification(receiver.url, SECRET, "approval.reminder", {}, timeout_seconds=TIMEOUT)
    assert status == 204
    first = receiver.requests[0]
    assert first.verified and first.event == "approval.reminder" and first.idempotency_key == "notice-1"
    assert first.json["event"] == "approval.reminder" and first.json["data"] == {"gate": "topics"}
    assert receiver.requests[1].idempotency_key is None
