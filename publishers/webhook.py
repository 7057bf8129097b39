"""The webhook publisher: Standard Webhooks (https://www.standardwebhooks.com) POSTs to the tenant's URL, for
posts and for notices.

Wire format (every request):

    POST <tenant webhook URL>
    Content-Type: application/json
    webhook-id: msg_...            the same for every send of one post (or one notice): receivers de-duplicate on it
    webhook-timestamp: <unix seconds of this send>
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")>

    {"type": "post.publish" | "approval.reminder" | ..., "timestamp": "<ISO 8601 UTC>", "data": {...}}

The secret is `whsec_<base64 of random bytes>` and the HMAC key is those bytes, so a receiver verifies with
any Standard Webhooks library: `standardwebhooks.Webhook(secret).verify(body, headers)`, which also refuses
timestamps more than five minutes away (replays). A secret that is not valid base64 (the format before
Standard Webhooks: `whsec_` and a URL-safe token, when it holds `-` or `_`) cannot sign: the delivery is
refused before anything is sent, and an admin sets the webhook again to get a new secret.

For `post.publish`, `data` is the `Delivery` in camelCase (post id, platform, text, hashtags, publishAt,
company, media with signed URLs). The receiver acknowledges with any 2xx; its id for the post, in `id`,
`postId` or `externalId` of a JSON answer, is kept when it is a short string of safe characters.

Every send is checked against models.destinations first and then goes to the address that was checked, with
the URL's Host header (and, for https, the host name as TLS server name, so the certificate is verified
against the name): a DNS answer that changes after the check cannot redirect it. Redirects are not followed,
and no proxy from the environment is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from models.destinations import DestinationError, NonPublicAddress, UnresolvedHost, check_url
from publishers.base import (
    PUBLISH_EVENT,
    Delivery,
    Publisher,
    PublishNotSent,
    PublishOutcomeUnknown,
    PublishRejected,
    Receipt,
    usable_external_id,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
USER_AGENT = "content-pipeline-webhook/2"
# Standard Webhooks asks for keys of 24 to 64 bytes; the API mints 32.
SECRET_BYTES = (24, 64)
OLD_SECRET_MESSAGE = (
    "the webhook's signing secret is not a Standard Webhooks secret (whsec_ and base64; secrets made before "
    "deliveries followed Standard Webhooks mostly are not) and cannot sign; an admin sets the webhook again with "
    "PUT /api/v1/tenant/webhook to get a new secret. Nothing was sent."
)

# Where the receiver's id for the post may be, in order; the first one present is taken (when usable).
EXTERNAL_ID_FIELDS = ("id", "postId", "externalId")
MAX_RECEIPT_URL_LENGTH = 2000
# A receiver's answer is read up to this size: an id and a short message fit easily.
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 300
# A host with several addresses: the next one is tried when a connection cannot be made (nothing was sent).
MAX_ADDRESSES_TRIED = 3


# ---- Signing ---------------------------------------------------------------------------------------------


def signing_key(secret: str) -> bytes:
    """The HMAC key a Standard Webhooks secret stands for; `PublishRejected` when it is not one."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PublishRejected(OLD_SECRET_MESSAGE) from None
    if not SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]:
        raise PublishRejected(OLD_SECRET_MESSAGE)
    return key


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def derived_webhook_id(key: str) -> str:
    """The same id for the same key: a retried notice is recognisable as a repeat."""
    return f"msg_{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}"


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes | str) -> str:
    """`v1,<base64>`: HMAC-SHA256 with the secret's key over `f"{webhook_id}.{timestamp}.{body}"`."""
    return _sign(signing_key(secret), webhook_id, timestamp, body)


def _sign(key: bytes, webhook_id: str, timestamp: int, body: bytes | str) -> str:
    text = body if isinstance(body, str) else body.decode("utf-8")
    return Webhook(key).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), text)


def verify(secret: str, body: bytes | str, headers: Mapping[str, str]) -> bool:
    """True when the Standard Webhooks headers sign `body` with `secret` and the timestamp is within five
    minutes of now (the reference implementation's check, as a receiver runs it)."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, EmptyWebhookSecretError, ValueError):
        return False
    return True


def signed_headers(secret: str, webhook_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    return _signed_headers(signing_key(secret), webhook_id, body, timestamp=timestamp)


def _signed_headers(key: bytes, webhook_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    sent_at = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(sent_at),
        SIGNATURE_HEADER: _sign(key, webhook_id, sent_at, body),
    }


def encode_event(event_type: str, data: dict[str, Any], *, at: datetime | None = None) -> bytes:
    """The body: the Standard Webhooks envelope as compact UTF-8 JSON; the exact bytes are what is signed."""
    envelope = {
        "type": event_type,
        "timestamp": (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
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
    event_type: str,
    data: dict[str, Any],
    *,
    webhook_id: str,
    timeout_seconds: float,
    allow_private_networks: bool = False,
) -> WebhookAnswer:
    """One signed POST, never retried here. Transport failures become `PublishNotSent` when nothing
    can have reached the receiver and `PublishOutcomeUnknown` when the request may have been processed."""
    where = _where(url)
    key = signing_key(secret)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise PublishRejected(f"the webhook URL cannot be used: {exc}") from exc
    try:
        destination = await check_url(url, allow_private_networks=allow_private_networks)
    except NonPublicAddress as exc:
        raise PublishRejected(f"the webhook points at a non-public address: {exc}") from exc
    except UnresolvedHost as exc:
        raise PublishNotSent(f"could not connect to {where}: {exc}") from exc
    except DestinationError as exc:
        raise PublishRejected(f"the webhook URL cannot be used: {exc}") from exc

    sent_at = datetime.now(UTC).replace(microsecond=0)
    body = encode_event(event_type, data, at=sent_at)
    headers = _signed_headers(key, webhook_id, body, timestamp=int(sent_at.timestamp()))
    headers["Host"] = destination.host_header
    # TLS is verified against the name in the URL although the connection goes to an address.
    named = destination.scheme == "https" and not destination.host_is_address
    tls_name = {"sni_hostname": destination.host} if named else {}
    addresses = destination.addresses[:MAX_ADDRESSES_TRIED]
    # No proxy from the environment (it would choose the destination) and no redirects (they would too).
    client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False, trust_env=False)
    async with client:
        for number, address in enumerate(addresses, start=1):
            try:
                target = parsed.copy_with(scheme=destination.scheme, host=address, port=destination.port)
                request = client.stream("POST", target, content=body, headers=headers, extensions=tls_name)
                async with request as response:
                    raw = await read_limited(response)
                    text = raw.decode("utf-8", "replace")
                    return WebhookAnswer(response.status_code, response.headers, text, json_or_none(raw))
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise PublishRejected(f"the webhook URL cannot be used: {exc}") from exc
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
                # Nothing reached the receiver's application: refused, unreachable, TLS handshake.
                if number < len(addresses):
                    continue
                raise PublishNotSent(f"could not connect to {where}: {_describe(exc)}") from exc
            except httpx.TimeoutException as exc:
                raise PublishOutcomeUnknown(
                    f"{where} did not answer within {timeout_seconds:g} s after the request was sent "
                    f"({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                raise PublishOutcomeUnknown(
                    f"the connection to {where} broke after the request was sent: {_describe(exc)}"
                ) from exc
    raise PublishNotSent(f"could not connect to {where}: no address to connect to")


async def read_limited(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The answer's body up to `limit` bytes: a receiver cannot make a publisher read without end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def json_or_none(raw: bytes) -> Any:
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
        retry_after = retry_after_seconds(answer.headers.get("retry-after"))
        raise PublishNotSent(said, status_code=status, retry_after=retry_after)
    if status == 409:
        raise PublishOutcomeUnknown(f"{said} (a conflict: the receiver may already hold this post)", status_code=status)
    if 300 <= status < 400:
        location = answer.headers.get("location", "")
        raise PublishRejected(
            f"{where} answered a redirect ({status}) to {location or 'elsewhere'}; configure the final URL",
            status_code=status,
        )
    if 400 <= status < 500:
        raise PublishRejected(said, status_code=status)
    # 5xx (and anything unexpected): the receiver or a gateway in front of it may have done the work.
    raise PublishOutcomeUnknown(said, status_code=status)


def receipt_from(answer: WebhookAnswer, where: str) -> Receipt:
    """The receipt of a 2xx: the receiver's id for the post when it gave a usable one."""
    raise_for_answer(answer, where)
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    given = next((payload[name] for name in EXTERNAL_ID_FIELDS if payload.get(name) not in (None, "")), None)
    external_id = usable_external_id(given)
    note = ""
    if given is None:
        note = f"{where} gave no id for the post"
    elif external_id is None:
        shown = str(given)
        note = f"{where} gave an id that is not kept ({len(shown)} characters; ids are at most 128 safe characters)"
    url = payload.get("url")
    usable_url = url if isinstance(url, str) and len(url) <= MAX_RECEIPT_URL_LENGTH else None
    return Receipt(external_id=external_id, url=usable_url, status_code=answer.status_code, note=note)


class WebhookPublisher(Publisher):
    """Delivers a post as a signed `post.publish` event; the delivery id is its `webhook-id`."""

    name: ClassVar[str] = "webhook"
    repeatable: ClassVar[bool] = True  # Standard Webhooks receivers de-duplicate on webhook-id

    def __init__(self, url: str, secret: str, *, timeout_seconds: float, allow_private_networks: bool = False) -> None:
        if not secret:
            raise ValueError("a webhook needs its signing secret")
        self.url = url
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.allow_private_networks = allow_private_networks

    async def publish(self, delivery: Delivery, delivery_id: str) -> Receipt:
        answer = await post_signed(
            self.url,
            self.secret,
            PUBLISH_EVENT,
            delivery.model_dump(mode="json", by_alias=True),
            webhook_id=delivery_id,
            timeout_seconds=self.timeout_seconds,
            allow_private_networks=self.allow_private_networks,
        )
        return receipt_from(answer, _where(self.url))


async def send_notification(
    url: str,
    secret: str,
    event_type: str,
    data: dict[str, Any],
    *,
    timeout_seconds: float,
    webhook_id: str | None = None,
    allow_private_networks: bool = False,
) -> int:
    """A signed notice (approval reminders, pipeline ends) to the tenant's webhook; its 2xx status, else a
    `PublishError`. Any 2xx will do: a notice needs no id back. Pass the same `webhook_id` for a repeat."""
    answer = await post_signed(
        url,
        secret,
        event_type,
        data,
        webhook_id=webhook_id or new_webhook_id(),
        timeout_seconds=timeout_seconds,
        allow_private_networks=allow_private_networks,
    )
    raise_for_answer(answer, _where(url))
    return answer.status_code


__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookAnswer",
    "WebhookPublisher",
    "derived_webhook_id",
    "json_or_none",
    "new_webhook_id",
    "post_signed",
    "read_limited",
    "receipt_from",
    "send_notification",
    "sign",
    "signed_headers",
    "signing_key",
    "verify",
]
