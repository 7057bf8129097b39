"""The webhook publisher: an HMAC-SHA256-signed JSON POST to the tenant's URL, for posts and for notices.

Wire format (every request):

    POST <tenant webhook URL>
    Content-Type: application/json
    X-ContentPipeline-Event: post.publish | approval.reminder | ...
    X-ContentPipeline-Timestamp: <unix seconds>
    X-ContentPipeline-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    X-ContentPipeline-Delivery: <uuid, new for every request>
    Idempotency-Key: <social post id> (posts) or the caller's key (notices)

    {"event": "...", "deliveryId": "...", "createdAt": "<ISO 8601 UTC>", "data": {...}}

For `post.publish`, `data` is the `Delivery` in camelCase (post id, platform, text, hashtags, publishAt,
company, media URLs). The receiver answers 2xx with a JSON object carrying its id for the post in `id`,
`postId` or `externalId` (and optionally `url`). Receivers check the signature with `verify` over the
raw body bytes and reject timestamps older than a few minutes (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from publishers.base import (
    PUBLISH_EVENT,
    Delivery,
    Publisher,
    PublishNotSent,
    PublishOutcomeUnknown,
    PublishRejected,
    Receipt,
)

SIGNATURE_HEADER = "X-ContentPipeline-Signature"
TIMESTAMP_HEADER = "X-ContentPipeline-Timestamp"
EVENT_HEADER = "X-ContentPipeline-Event"
DELIVERY_HEADER = "X-ContentPipeline-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "sha256"
USER_AGENT = "content-pipeline-webhook/1"

# How old a signed request may be when it arrives: long enough for clock skew, short enough against replays.
SIGNATURE_TOLERANCE_SECONDS = 300
# Where the receiver's id for the post may be, in order; the first non-empty one wins.
EXTERNAL_ID_FIELDS = ("id", "postId", "externalId")
MAX_EXTERNAL_ID_LENGTH = 500  # social_post.external_id
# A receiver's answer is read up to this size: an id and a short message fit easily.
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 300


# ---- Signing ---------------------------------------------------------------------------------------------


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 with the tenant's secret over `f"{timestamp}.{body}"`."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={digest}"


def verify(
    secret: str,
    timestamp: str | int | None,
    body: bytes | str,
    signature: str | None,
    *,
    tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `signature` (one `sha256=<hex>`, or several separated by commas) signs `timestamp.body`
    with `secret` and the timestamp is within `tolerance_seconds` of now."""
    if not secret or timestamp is None or not signature:
        return False
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        return False
    expected = sign(secret, str(timestamp).strip(), body)
    candidates = [part.strip() for part in signature.split(",")]
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates)


def signed_headers(
    secret: str,
    event: str,
    body: bytes,
    *,
    delivery_id: str,
    idempotency_key: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    sent_at = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(sent_at),
        SIGNATURE_HEADER: sign(secret, sent_at, body),
        DELIVERY_HEADER: delivery_id,
    }
    if idempotency_key:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    return headers


def encode_event(event: str, data: dict[str, Any], delivery_id: str) -> bytes:
    """The body: compact UTF-8 JSON; the exact bytes are what the signature covers."""
    envelope = {
        "event": event,
        "deliveryId": delivery_id,
        "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


# ---- Sending ---------------------------------------------------------------------------------------------


@dataclass
class WebhookAnswer:
    """What the receiver answered: status, the start of the body, and the body as JSON when it was JSON."""

    status_code: int
    headers: httpx.Headers
    text: str
    payload: Any

    @property
    def excerpt(self) -> str:
        text = " ".join(self.text.split())
        return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


async def post_signed(
    url: str,
    secret: str,
    event: str,
    data: dict[str, Any],
    *,
    timeout_seconds: float,
    idempotency_key: str | None = None,
) -> WebhookAnswer:
    """One signed POST, never retried here. Transport failures become `PublishNotSent` when nothing
    can have reached the receiver and `PublishOutcomeUnknown` when the request may have been processed."""
    delivery_id = str(uuid.uuid4())
    body = encode_event(event, data, delivery_id)
    headers = signed_headers(secret, event, body, delivery_id=delivery_id, idempotency_key=idempotency_key)
    where = _where(url)
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            raw = await _read_limited(response)
            return WebhookAnswer(response.status_code, response.headers, raw.decode("utf-8", "replace"), _json_or_none(raw))
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise PublishRejected(f"the webhook URL cannot be used: {exc}") from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
        # Nothing left this machine towards the receiver's application: refused, DNS, TLS handshake.
        raise PublishNotSent(f"could not connect to {where}: {_describe(exc)}") from exc
    except httpx.TimeoutException as exc:
        raise PublishOutcomeUnknown(
            f"{where} did not answer within {timeout_seconds:g} s after the request was sent ({type(exc).__name__})"
        ) from exc
    except httpx.TransportError as exc:
        raise PublishOutcomeUnknown(f"the connection to {where} broke after the request was sent: {_describe(exc)}") from exc


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _where(url: str) -> str:
    """The URL without its query (which may carry a receiver's token) for messages and logs."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "the webhook"
    return str(parsed.copy_with(query=None, fragment=None))


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (either form of RFC 9110: delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def raise_for_answer(answer: WebhookAnswer, where: str) -> None:
    """Nothing for a 2xx; else the error class that says whether the receiver may hold the post."""
    status = answer.status_code
    if 200 <= status < 300:
        return
    said = f"{where} answered {status}" + (f": {answer.excerpt}" if answer.excerpt else "")
    if status in (408, 429):
        # The receiver says it did not process the request: as safe to repeat as a refused connection.
        raise PublishNotSent(said, status_code=status, retry_after=retry_after_seconds(answer.headers.get("retry-after")))
    if status == 409:
        raise PublishOutcomeUnknown(f"{said} (a conflict: the receiver may already hold this post)", status_code=status)
    if 300 <= status < 400:
        location = answer.headers.get("location", "")
        raise PublishRejected(f"{where} answered a redirect ({status}) to {location or 'elsewhere'}; configure the final URL", status_code=status)
    if 400 <= status < 500:
        raise PublishRejected(said, status_code=status)
    # 5xx (and anything unexpected): the receiver or a gateway in front of it may have done the work.
    raise PublishOutcomeUnknown(said, status_code=status)


def receipt_from(answer: WebhookAnswer, where: str) -> Receipt:
    raise_for_answer(answer, where)
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    external_id: str | None = None
    for name in EXTERNAL_ID_FIELDS:
        value = payload.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            external_id = str(value).strip()
            break
    if external_id is None:
        # It said yes, so it most likely posted; without an id we cannot prove it or find it again.
        raise PublishOutcomeUnknown(
            f"{where} answered {answer.status_code} without the post's id (expected a JSON object with "
            f"{', '.join(repr(f) for f in EXTERNAL_ID_FIELDS)}); it has probably published the post",
            status_code=answer.status_code,
        )
    if len(external_id) > MAX_EXTERNAL_ID_LENGTH:
        raise PublishOutcomeUnknown(
            f"{where} accepted the post but its id is {len(external_id)} characters long (at most "
            f"{MAX_EXTERNAL_ID_LENGTH}); it starts {external_id[:60]!r}",
            status_code=answer.status_code,
        )
    url = payload.get("url")
    return Receipt(external_id=external_id, url=url if isinstance(url, str) else None, status_code=answer.status_code)


class WebhookPublisher(Publisher):
    """Delivers a post as a signed `post.publish` event; the post id is the Idempotency-Key."""

    name: ClassVar[str] = "webhook"

    def __init__(self, url: str, secret: str, *, timeout_seconds: float) -> None:
        if not secret:
            raise ValueError("a webhook needs its signing secret")
        self.url = url
        self.secret = secret
        self.timeout_seconds = timeout_seconds

    async def publish(self, delivery: Delivery) -> Receipt:
        answer = await post_signed(
            self.url,
            self.secret,
            PUBLISH_EVENT,
            delivery.model_dump(mode="json", by_alias=True),
            timeout_seconds=self.timeout_seconds,
            idempotency_key=str(delivery.social_post_id),
        )
        return receipt_from(answer, _where(self.url))


async def send_notification(
    url: str,
    secret: str,
    event: str,
    data: dict[str, Any],
    *,
    timeout_seconds: float,
    idempotency_key: str | None = None,
) -> int:
    """A signed notice (approval reminders, pipeline ends) to the tenant's webhook; its 2xx status, else a
    `PublishError`. Any 2xx will do: a notice needs no id back."""
    answer = await post_signed(url, secret, event, data, timeout_seconds=timeout_seconds, idempotency_key=idempotency_key)
    raise_for_answer(answer, _where(url))
    return answer.status_code


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookAnswer",
    "WebhookPublisher",
    "post_signed",
    "receipt_from",
    "send_notification",
    "sign",
    "verify",
]
