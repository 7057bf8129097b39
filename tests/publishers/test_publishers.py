"""The webhook publisher against a real receiver on 127.0.0.1: Standard Webhooks signatures, the wire format,
which error each failure becomes (not sent, rejected, outcome unknown), and where a delivery may go."""

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

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
from publishers.base import usable_external_id
from publishers.webhook import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    derived_webhook_id,
    encode_event,
    retry_after_seconds,
    signed_headers,
    signing_key,
)
from tests.support.webhook_receiver import SECRET, dropping, receiving, refused_url

TIMEOUT = 0.5
WEBHOOK_ID = "msg_2f1c0c3e8a8b4a55b1f7a1f0c2d3e4f5"


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


def local(url: str) -> WebhookPublisher:
    """A publisher allowed to reach the receivers of these tests, which listen on 127.0.0.1."""
    return WebhookPublisher(url, SECRET, timeout_seconds=TIMEOUT, allow_private_networks=True)


async def publish(url: str, post: Delivery | None = None, webhook_id: str = WEBHOOK_ID) -> object:
    return await local(url).publish(post or delivery(), webhook_id)


# ---- signing: Standard Webhooks ----------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_id_dot_timestamp_dot_body_with_the_secrets_bytes() -> None:
    body = b'{"type":"post.publish"}'
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{WEBHOOK_ID}.1767225600.".encode() + body, hashlib.sha256).digest())
    assert sign(SECRET, WEBHOOK_ID, 1767225600, body) == f"v1,{expected.decode()}"
    assert sign(SECRET, WEBHOOK_ID, 1767225600, body.decode()) == f"v1,{expected.decode()}"


def test_a_delivery_verifies_with_the_standard_webhooks_library_and_a_tampered_one_does_not() -> None:
    body = encode_event("post.publish", {"text": "čau"})
    headers = signed_headers(SECRET, WEBHOOK_ID, body)
    assert set(headers) >= {ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER}
    assert Webhook(SECRET).verify(body, headers)["data"] == {"text": "čau"}
    assert verify(SECRET, body, headers)

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)  # tampered body
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, {**headers, ID_HEADER: "msg_other"})  # another id
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)  # another secret
    old = int(time.time()) - 3600
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, signed_headers(SECRET, WEBHOOK_ID, body, timestamp=old))  # a replay
    assert not verify(SECRET, body + b" ", headers)
    assert not verify(SECRET, body, {k: v for k, v in headers.items() if k != SIGNATURE_HEADER})
    assert not verify(SECRET, body, {**headers, SIGNATURE_HEADER: "garbage"})


def test_the_body_is_the_standard_webhooks_envelope() -> None:
    at = datetime(2026, 3, 12, 8, 10, 5, tzinfo=UTC)
    assert json.loads(encode_event("post.publish", {"a": 1}, at=at)) == {
        "type": "post.publish",
        "timestamp": "2026-03-12T08:10:05Z",
        "data": {"a": 1},
    }


def test_a_secret_from_before_standard_webhooks_cannot_sign() -> None:
    # The old secrets were whsec_ + token_urlsafe: `-` and `_` are not base64, so they stand for no key.
    old = "whsec_" + "Ab-_" * 10 + "xyz"
    with pytest.raises(PublishRejected, match="sets the webhook again"):
        signing_key(old)
    with pytest.raises(PublishRejected):
        signing_key("whsec_" + base64.b64encode(b"short").decode())  # too short a key
    assert len(signing_key(SECRET)) == 32


async def test_a_publisher_with_an_old_secret_sends_nothing() -> None:
    async with receiving("ok") as receiver:
        old = "whsec_" + "Ab-_" * 11
        publisher = WebhookPublisher(receiver.url, old, timeout_seconds=TIMEOUT, allow_private_networks=True)
        with pytest.raises(PublishRejected, match="Nothing was sent"):
            await publisher.publish(delivery(), WEBHOOK_ID)
    assert receiver.requests == []


def test_a_notice_id_is_derived_from_its_key() -> None:
    assert derived_webhook_id("wf/run/3") == derived_webhook_id("wf/run/3")
    assert derived_webhook_id("wf/run/3") != derived_webhook_id("wf/run/4")
    assert derived_webhook_id("wf/run/3").startswith("msg_")


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
        receipt = await local(receiver.url).publish(post, WEBHOOK_ID)

    assert receipt.external_id == "ext-1"
    assert receipt.url == "https://social.example/p/1"
    assert receipt.status_code == 201
    [request] = receiver.requests
    assert request.verified  # by standardwebhooks.Webhook(secret).verify
    assert request.event == "post.publish"
    assert request.webhook_id == WEBHOOK_ID
    assert request.headers["content-type"] == "application/json"
    assert request.headers[SIGNATURE_HEADER].startswith("v1,")
    assert abs(int(request.headers[TIMESTAMP_HEADER]) - time.time()) < 60
    assert not [h for h in request.headers if h.startswith("x-contentpipeline")]
    assert "idempotency-key" not in request.headers
    body = request.json
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "post.publish"
    assert abs(datetime.fromisoformat(body["timestamp"]) - datetime.now(UTC)) < timedelta(minutes=1)
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
        receipt = await local(receiver.url).publish(delivery(), WEBHOOK_ID)
    assert receipt.external_id == external_id


@pytest.mark.parametrize(
    ("mode", "note"),
    [("no_id", "gave no id"), ("long_id", "129 characters"), ("unsafe_id", "not kept")],
)
async def test_a_2xx_is_a_receipt_but_only_a_short_safe_id_is_kept(mode: str, note: str) -> None:
    async with receiving(mode) as receiver:
        receipt = await local(receiver.url).publish(delivery(), WEBHOOK_ID)
    assert receipt.external_id is None and receipt.status_code in (201, 202) and note in receipt.note
    assert len(receiver.requests) == 1


def test_which_ids_are_usable() -> None:
    for good in ("ext-1", "4201", 4201, "urn:li:share:7012345", "at://did:plc:abc/app.bsky.feed.post/3k", "a" * 128):
        assert usable_external_id(good) == str(good)
    for bad in ("a" * 129, "", " ", "-leading", "<script>", "a b", "ümlaut", "a\nb", None, True, 1.5, {"id": 1}, ["x"]):
        assert usable_external_id(bad) is None


async def test_a_wrong_secret_is_refused_by_the_receiver() -> None:
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    async with receiving("ok") as receiver:
        with pytest.raises(PublishRejected) as caught:
            await WebhookPublisher(receiver.url, other, timeout_seconds=TIMEOUT, allow_private_networks=True).publish(
                delivery(), WEBHOOK_ID
            )
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
        ("throttle", PublishNotSent, 429),
        ("request_timeout", PublishNotSent, 408),
    ],
)
async def test_each_answer_maps_to_its_error(mode: str, error: type[Exception], status: int) -> None:
    async with receiving(mode) as receiver:
        with pytest.raises(error) as caught:
            await publish(receiver.url)
    assert getattr(caught.value, "status_code", None) == status
    assert len(receiver.requests) == 1  # never retried, never redirected
    assert "receiver-side-token" not in str(caught.value)  # the URL's query stays out of messages


async def test_429_carries_retry_after_and_rejections_carry_the_receivers_reason() -> None:
    async with receiving("throttle") as receiver:
        with pytest.raises(PublishNotSent) as throttled:
            await publish(receiver.url)
        receiver.mode = "reject"
        with pytest.raises(PublishRejected) as rejected:
            await publish(receiver.url)
    assert throttled.value.retry_after == 7
    assert "longer than 280 characters" in str(rejected.value)


async def test_a_receiver_too_slow_to_answer_is_an_unknown_outcome() -> None:
    async with receiving("slow") as receiver:
        started = time.monotonic()
        with pytest.raises(PublishOutcomeUnknown, match=r"did not answer within 0\.5 s"):
            await publish(receiver.url)
        assert time.monotonic() - started < 3
        assert len(receiver.requests) == 1  # it got the post


async def test_a_connection_dropped_after_sending_is_an_unknown_outcome() -> None:
    async with dropping() as dropper:
        with pytest.raises(PublishOutcomeUnknown, match="broke after the request was sent"):
            await publish(dropper.url)
    assert dropper.requests == 1


async def test_a_refused_connection_is_not_sent() -> None:
    with pytest.raises(PublishNotSent, match="could not connect"):
        await publish(refused_url())


async def test_an_unknown_host_is_not_sent() -> None:
    with pytest.raises(PublishNotSent, match=r"could not connect.*does not resolve"):
        await publish("http://no-such-host.invalid/hook")


async def test_a_failed_tls_handshake_is_not_sent() -> None:
    async with receiving("ok") as receiver:
        plain = receiver.url.replace("http://", "https://")  # the receiver speaks plain HTTP
        with pytest.raises(PublishNotSent, match="could not connect"):
            await publish(plain)
    assert receiver.requests == []


async def test_an_unusable_url_is_rejected() -> None:
    with pytest.raises(PublishRejected, match="cannot be used"):
        await publish("ftp://127.0.0.1/hook")


def test_a_publisher_needs_its_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookPublisher("https://hooks.example/x", "", timeout_seconds=TIMEOUT)


def test_the_webhook_publisher_is_safe_to_repeat() -> None:
    assert WebhookPublisher.repeatable


# ---- notices ----------------------------------------------------------------------------------------------------


async def test_a_notice_is_signed_and_needs_no_id_back() -> None:
    async with receiving("notice") as receiver:
        status = await send_notification(
            receiver.url,
            SECRET,
            "approval.reminder",
            {"gate": "topics"},
            timeout_seconds=TIMEOUT,
            webhook_id="msg_notice-1",
            allow_private_networks=True,
        )
        receiver.mode = "error"
        with pytest.raises(PublishOutcomeUnknown):
            await send_notification(
                receiver.url, SECRET, "approval.reminder", {}, timeout_seconds=TIMEOUT, allow_private_networks=True
            )
    assert status == 204
    first, second = receiver.requests
    assert first.verified and first.event == "approval.reminder" and first.webhook_id == "msg_notice-1"
    assert first.json["type"] == "approval.reminder" and first.json["data"] == {"gate": "topics"}
    assert second.webhook_id and second.webhook_id.startswith("msg_") and second.webhook_id != first.webhook_id
