"""The Bluesky publisher: a channel's account (handle and app password) posts through the AT Protocol SDK.

A post is one `app.bsky.feed.post` record, created with `com.atproto.repo.createRecord` at a record key derived
from the social post's id (`record_key`). The key makes a send checkable and repeatable: `find` asks for the
record at that key, and a second create at the same key cannot make a second post (the PDS refuses it; this
publisher then answers with the existing record's receipt).

What a record holds:
- the text as written, refused (never cut) above 300 graphemes;
- facets at UTF-8 byte offsets: links (http/https, as `models.text_limits.url_spans` finds them), hashtags
  (`#tag`, stored without the `#`) and mentions (`@handle`, resolved to a DID with
  `com.atproto.identity.resolveHandle`; a handle that does not resolve stays plain text);
- up to 4 images, each recompressed to a JPEG under `IMAGE_MAX_BYTES`, with its alt text and aspect ratio; with no
  image and a link in the text, a link card (`app.bsky.embed.external`) for the first link. Videos are not posted
  (Bluesky takes them through a separate video service and job queue, not supported here).

Sessions: the channel keeps the SDK's exported session string. It is resumed (refreshed when its access token is
about to expire); when it cannot be (the refresh token expired or was revoked), the publisher logs in again with
the app password. A renewed session is handed to `ChannelSession.save` at once, because a refresh retires the
refresh token it used. Neither the app password nor a token ever appears in a message, a log line or a repr.

Errors, as `publishers.base` sorts them: anything before the createRecord request (sign-in, media, blob
uploads, mention lookups) is `PublishNotSent` (nothing was posted), except a refusal of the content itself
(`PublishRejected`); for createRecord, a connection that could not be made and 408/429 are `PublishNotSent`, a
4xx is `PublishRejected`, and a timeout or broken connection after the request was sent or a 5xx is
`PublishOutcomeUnknown` unless the record is found at its key. The SDK does not retry and neither does this
module: the publish activity owns retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
from atproto_client import AsyncClient, models
from atproto_client.client.session import Session, SessionEvent
from atproto_client.exceptions import (
    BadRequestError,
    LoginRequiredError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.models.common import XrpcError
from atproto_client.models.string_formats import is_valid_handle
from atproto_client.models.utils import get_response_model
from atproto_client.request import AsyncRequest
from atproto_client.utils.facet_detection import detect_mentions
from atproto_core.exceptions import AtProtocolError
from atproto_server.exceptions import TokenDecodeError
from PIL import Image, ImageOps, UnidentifiedImageError

from models.enums import MediaKind
from models.text_limits import HASHTAG, grapheme_count, url_spans
from publishers.base import (
    Delivery,
    MediaRef,
    Publisher,
    PublishError,
    PublishNotSent,
    PublishOutcomeUnknown,
    PublishRejected,
    Receipt,
    usable_external_id,
)
from publishers.channel import (
    ChannelAccount,
    ChannelCredentialsRejected,
    ChannelSession,
    ChannelUnavailable,
    Credentials,
    PlatformRules,
)

logger = logging.getLogger(__name__)

DEFAULT_SERVICE = "https://bsky.social"
POST_COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_IMAGES = 4
# The app.bsky.embed.images lexicon took images of up to 1,000,000 bytes; it now says 2,000,000, but a PDS or an
# app built before the change refuses more than 1,000,000, so images are made to fit the older limit.
IMAGE_MAX_BYTES = 1_000_000
RULES = PlatformRules(
    max_chars=MAX_GRAPHEMES, unit="graphemes", url_length=None, max_images=MAX_IMAGES, image_max_bytes=IMAGE_MAX_BYTES
)
PROFILE_URL = "https://bsky.app/profile/{handle}"
POST_URL = "https://bsky.app/profile/{handle}/post/{rkey}"

# Images: at most this many pixels on the longer side (what the Bluesky app uploads), then JPEG at falling
# qualities, then smaller by this factor, until the file fits.
IMAGE_MAX_SIDE = 2000
JPEG_QUALITIES = (90, 82, 74, 66, 58)
IMAGE_SHRINK = 0.75
IMAGE_MIN_SIDE = 64
# app.bsky.richtext.facet#tag: at most 64 graphemes and 640 bytes.
TAG_MAX_GRAPHEMES = 64
TAG_MAX_BYTES = 640
LINK_CARD_TITLE_MAX_CHARS = 300
LINK_CARD_DESCRIPTION_MAX_CHARS = 1000
# A session whose access token expires sooner than this is refreshed when it is resumed: the SDK would otherwise
# refresh it by itself, inside a later call, 15 minutes before expiry, where a failed refresh would look like a
# failed post.
SESSION_RENEW_MARGIN_SECONDS = 20 * 60

# ---- Record keys -----------------------------------------------------------------------------------------

# app.bsky.feed.post records take TID keys (the PDS refuses any other key when it validates the record): 13
# characters of base32-sortable, a 64-bit number whose top bit is 0, 53 bits of microseconds since 1970 and 10
# bits of clock id. Derived from the social post id, the timestamp falls in a fixed window of the past (2023-2024)
# so that no key claims a future time; window and clock id hold 55 bits of the hash.
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_LENGTH = 13
TID_WINDOW_START_MICROS = 1_672_531_200 * 1_000_000  # 2023-01-01T00:00:00Z
TID_WINDOW_BITS = 45  # about 407 days
TID_CLOCK_BITS = 10
RECORD_KEY_SALT = b"content-pipeline/bluesky/app.bsky.feed.post/"
# The PDS refuses a record key that contains one of its slur patterns; of those, only this one can occur inside a
# key of TID characters. A derived key that matches it is derived again with a counter (about 1 in 10^9).
REFUSED_KEY_PATTERN = re.compile(r"n[ilao4][gq]{2}(?:l[e3]t|[e3]r)")


def record_key(social_post_id: uuid.UUID) -> str:
    """The record key of a social post's Bluesky record: a valid TID, the same on every call and process."""
    for attempt in range(100):
        suffix = b"" if attempt == 0 else attempt.to_bytes(2, "big")
        digest = hashlib.sha256(RECORD_KEY_SALT + social_post_id.bytes + suffix).digest()
        bits = int.from_bytes(digest[:8], "big")
        micros = TID_WINDOW_START_MICROS + (bits >> TID_CLOCK_BITS) % (1 << TID_WINDOW_BITS)
        value = (micros << TID_CLOCK_BITS) | (bits & ((1 << TID_CLOCK_BITS) - 1))
        key = "".join(TID_ALPHABET[(value >> (5 * place)) & 31] for place in reversed(range(TID_LENGTH)))
        if not REFUSED_KEY_PATTERN.search(key):
            return key
    raise AssertionError("unreachable: no acceptable record key in 100 derivations")


def post_url(handle: str, rkey: str) -> str:
    return POST_URL.format(handle=handle, rkey=rkey)


def profile_url(handle: str) -> str:
    return PROFILE_URL.format(handle=handle)


# ---- Validating what a person typed ----------------------------------------------------------------------


def service_url(service: str) -> str:
    """The PDS (or entryway) address as the SDK takes it; `ValueError` when it is not an http(s) URL."""
    text = (service or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"the Bluesky service must be an https URL such as {DEFAULT_SERVICE}, not {service!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("the Bluesky service URL must have no user name, password, query or fragment")
    return text


def normalized_handle(handle: str) -> str:
    """The handle as the PDS takes it (no `@`, lower case); `ValueError` when it cannot be one."""
    text = (handle or "").strip().removeprefix("@").lower()
    if not text.isascii() or not is_valid_handle(text):
        raise ValueError(f"a Bluesky handle is a domain name such as alice.bsky.social, not {handle!r}")
    return text


# ---- Sessions --------------------------------------------------------------------------------------------


class Stage(Enum):
    """Where a request failed: before the post's createRecord nothing can have been posted."""

    BEFORE_POSTING = "before posting"
    POSTING = "posting"


@dataclass
class SignedIn:
    """An SDK client with a working session, and the account it acts for."""

    client: AsyncClient
    did: str
    handle: str
    service: str


@dataclass
class SessionRenewals:
    """The SDK's session changes (a login, a refresh), as they happen; imports of a stored session are not."""

    latest: Session | None = None
    imported: Session | None = None
    saved: Session | None = field(default=None, repr=False)  # the SDK hands a new copy for every change

    def record(self, event: SessionEvent, session: Session) -> None:
        if event is SessionEvent.IMPORT:
            self.imported = session
        else:
            self.latest = session


def _new_client(service: str, timeout_seconds: float) -> AsyncClient:
    # One timeout per request (connect, read, write, pool); httpx makes no retries and neither does the SDK.
    return AsyncClient(base_url=service, request=AsyncRequest(timeout=httpx.Timeout(timeout_seconds)))


async def _close(client: AsyncClient) -> None:
    try:
        await client.request.close()
    except (httpx.HTTPError, RuntimeError):
        logger.debug("closing a Bluesky client failed", exc_info=True)


# A stored session that these say no to is dead (revoked, expired refresh token, unreadable): log in again.
SESSION_DEAD = (UnauthorizedError, BadRequestError, LoginRequiredError, TokenDecodeError, ValueError)


async def _resume(client: AsyncClient, stored: str, renewals: SessionRenewals) -> tuple[str, str]:
    """The stored session, refreshed when its access token expires soon; (did, handle). Raises SESSION_DEAD."""
    await client.login(session_string=stored, fetch_bsky_profile=False)
    # getSession refreshes an expired access token first (the SDK does, with the refresh token).
    answer = await client.com.atproto.server.get_session()
    current = renewals.latest or renewals.imported
    expires_at = current.access_jwt_payload.exp if current is not None else None
    if expires_at is not None and expires_at - time.time() < SESSION_RENEW_MARGIN_SECONDS:
        # atproto 0.0.73 offers no public call for this; it is the refresh the SDK makes by itself.
        await client._refresh_and_set_session()
    return answer.did, answer.handle


async def _log_in(client: AsyncClient, handle: str, app_password: str, renewals: SessionRenewals) -> tuple[str, str]:
    """A new session from the app password; `ChannelCredentialsRejected` when Bluesky refuses it."""
    if not handle or not app_password:
        raise ChannelCredentialsRejected("the Bluesky channel has no handle and app password to log in with")
    try:
        await client.login(handle, app_password, fetch_bsky_profile=False)
    except (UnauthorizedError, BadRequestError) as exc:
        # 401 for a wrong password or handle; 400 for an account taken down, deactivated or needing 2FA.
        raise ChannelCredentialsRejected(f"Bluesky refused the handle and app password: {_said(exc)}") from None
    if renewals.latest is None:
        raise ChannelCredentialsRejected("Bluesky gave no session for the handle and app password")
    return renewals.latest.did, renewals.latest.handle


@asynccontextmanager
async def signed_in(channel: ChannelSession, *, timeout_seconds: float) -> AsyncIterator[SignedIn]:
    """A client with a working session for the channel: the stored one, else a login with the app password.
    A renewed session is saved before anything else is done with it. SDK and transport errors of the sign-in
    itself come out as they are (the caller sorts them); a refused login as `ChannelCredentialsRejected`."""
    credentials = channel.credentials
    try:
        service = service_url(credentials.get("service") or DEFAULT_SERVICE)
    except ValueError as exc:
        raise ChannelCredentialsRejected(f"the Bluesky channel cannot be used: {exc}") from None
    handle = credentials.get("handle", "")
    app_password = credentials.get("appPassword", "")
    renewals = SessionRenewals()
    client: AsyncClient | None = None
    try:
        account: tuple[str, str] | None = None
        stored = credentials.get("session", "")
        if stored:
            client = _new_client(service, timeout_seconds)
            client.on_session_change(renewals.record)
            try:
                account = await _resume(client, stored, renewals)
            except SESSION_DEAD:
                logger.info("the stored Bluesky session of %s no longer works: logging in again", handle)
                await _close(client)
                client = None
                renewals.latest = None
        if account is None:
            # A fresh client: a stored session may have pointed the old one at another host.
            client = _new_client(service, timeout_seconds)
            client.on_session_change(renewals.record)
            account = await _log_in(client, handle, app_password, renewals)
        await _save_renewed(channel, renewals, service, app_password)
        yield SignedIn(client=client, did=account[0], handle=account[1], service=service)
        # A refresh inside a later call (it should not happen after the margin above) is kept as well.
        await _save_renewed(channel, renewals, service, app_password)
    finally:
        if renewals.latest is not None and renewals.latest is not renewals.saved:
            # The work failed after a refresh: the new session is kept all the same (the old one is retired).
            await _save_renewed(channel, renewals, service, app_password)
        if client is not None:
            await _close(client)


async def _save_renewed(channel: ChannelSession, renewals: SessionRenewals, service: str, app_password: str) -> None:
    latest = renewals.latest
    if latest is None or latest is renewals.saved:
        return
    renewals.saved = latest
    credentials: Credentials = {
        **channel.credentials,
        "service": service,
        "handle": latest.handle,
        "appPassword": app_password,
        "did": latest.did,
        "session": latest.export(),
    }
    await channel.save(credentials)
    channel.credentials = credentials


# ---- Sorting errors ----------------------------------------------------------------------------------------


def _said(exc: BaseException) -> str:
    """What went wrong, for a message: the server's status and error (never a header or a token)."""
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        return str(exc)
    cause = _transport_error(exc)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    return str(exc) or type(exc).__name__


def _transport_error(exc: BaseException) -> httpx.HTTPError | None:
    """The httpx error under an SDK error without an answer (the SDK wraps timeouts and network errors)."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    if isinstance(exc, RequestErrorBase) and exc.response is None and isinstance(exc.__cause__, httpx.HTTPError):
        return exc.__cause__
    return None


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        return exc.response.status_code
    return None


def _error_name(exc: BaseException) -> str:
    """The XRPC error name of an answer (`RecordNotFound`, `InvalidRequest`), empty when it has none."""
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        content = exc.response.content
        if isinstance(content, XrpcError):
            return content.error
    return ""


def retry_after_seconds(exc: BaseException) -> float | None:
    """From a 429: seconds until `RateLimit-Reset` (unix seconds), else `Retry-After`."""
    if not isinstance(exc, RateLimitExceededError):
        return None
    if exc.reset_at is not None:
        return max(0.0, exc.reset_at.timestamp() - time.time())
    return exc.retry_after


# Transport errors that mean the request never left: no connection was made.
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def publish_error(exc: BaseException, *, stage: Stage, what: str) -> PublishError:
    """The publish taxonomy's class for an SDK or transport error of one request (`what`, for the message)."""
    status = _status(exc)
    said = f"{what}: {_said(exc)}"
    transport = _transport_error(exc)
    if status is None:
        if isinstance(transport, NOT_CONNECTED):
            return PublishNotSent(f"could not connect to Bluesky ({said})")
        if stage is Stage.BEFORE_POSTING:
            return PublishNotSent(f"Bluesky could not be asked ({said})")
        if isinstance(transport, httpx.TimeoutException):
            return PublishOutcomeUnknown(f"Bluesky did not answer in time after the post was sent ({said})")
        if transport is not None:
            return PublishOutcomeUnknown(f"the connection to Bluesky broke after the post was sent ({said})")
        # An answer the SDK could not read, after the request was sent.
        return PublishOutcomeUnknown(f"Bluesky's answer to the post could not be read ({said})")
    if status == 429:
        return PublishNotSent(
            f"Bluesky is rate limiting ({said})", status_code=status, retry_after=retry_after_seconds(exc)
        )
    if status in (401, 408):
        # 401 after a working sign-in: the session went bad in between; the next attempt signs in again.
        return PublishNotSent(f"Bluesky did not take the request ({said})", status_code=status)
    if 400 <= status < 500 and status != 409:
        return PublishRejected(f"Bluesky refused the post ({said})", status_code=status)
    if stage is Stage.BEFORE_POSTING:
        return PublishNotSent(f"Bluesky failed before the post was sent ({said})", status_code=status)
    return PublishOutcomeUnknown(f"Bluesky answered {status} to the post ({said})", status_code=status)


def channel_error(exc: BaseException) -> ChannelUnavailable:
    """For connect and check: Bluesky could not be asked now."""
    return ChannelUnavailable(f"Bluesky could not be asked now: {_said(exc)}", retry_after=retry_after_seconds(exc))


# The errors a request through the SDK can end with (besides the ones this module raises).
REQUEST_ERRORS = (AtProtocolError, httpx.HTTPError)

# ---- Connecting and checking a channel -----------------------------------------------------------------------


async def connect(
    service: str, handle: str, app_password: str, *, timeout_seconds: float
) -> tuple[ChannelAccount, Credentials]:
    """Logs in with the handle and app password: the account and the credentials a channel keeps
    (`service`, `handle`, `appPassword`, `did`, `session`). `ValueError` for a malformed service or handle,
    `ChannelCredentialsRejected` when Bluesky refuses them, `ChannelUnavailable` when it cannot be asked."""
    url = service_url(service)
    name = normalized_handle(handle)
    if not app_password or not app_password.strip():
        raise ValueError("a Bluesky channel needs an app password (Settings > Privacy and security > App passwords)")
    renewals = SessionRenewals()
    client = _new_client(url, timeout_seconds)
    client.on_session_change(renewals.record)
    try:
        did, current_handle = await _log_in(client, name, app_password.strip(), renewals)
    except ChannelCredentialsRejected:
        raise
    except REQUEST_ERRORS as exc:
        raise channel_error(exc) from None
    finally:
        await _close(client)
    assert renewals.latest is not None  # _log_in made sure
    account = ChannelAccount(id=did, handle=current_handle, url=profile_url(current_handle))
    credentials: Credentials = {
        "service": url,
        "handle": current_handle,
        "appPassword": app_password.strip(),
        "did": did,
        "session": renewals.latest.export(),
    }
    return account, credentials


async def check(session: ChannelSession, *, timeout_seconds: float) -> ChannelAccount:
    """The channel's account, verified without posting: the stored session resumed (refreshed, or a new login
    with the app password; a renewed session is saved). `ChannelCredentialsRejected`, `ChannelUnavailable`."""
    try:
        async with signed_in(session, timeout_seconds=timeout_seconds) as signed:
            return ChannelAccount(id=signed.did, handle=signed.handle, url=profile_url(signed.handle))
    except ChannelCredentialsRejected:
        raise
    except REQUEST_ERRORS as exc:
        raise channel_error(exc) from None


# ---- Facets ----------------------------------------------------------------------------------------------------


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _facet(
    text: str, start: int, end: int, feature: models.AppBskyRichtextFacet.Link | models.AppBskyRichtextFacet.Tag
) -> models.AppBskyRichtextFacet.Main:
    index = models.AppBskyRichtextFacet.ByteSlice(
        byte_start=_byte_offset(text, start), byte_end=_byte_offset(text, end)
    )
    return models.AppBskyRichtextFacet.Main(features=[feature], index=index)


def link_and_tag_facets(text: str) -> list[models.AppBskyRichtextFacet.Main]:
    """Links (http/https) and hashtags of `text`, at their UTF-8 byte offsets."""
    facets = [
        _facet(text, start, end, models.AppBskyRichtextFacet.Link(uri=text[start:end]))
        for start, end in url_spans(text)
    ]
    for match in HASHTAG.finditer(text):
        tag = match.group()[1:]
        # As the Bluesky app: a number is not a tag (#1), and a tag has at most 64 graphemes and 640 bytes.
        if tag.isdigit() or grapheme_count(tag) > TAG_MAX_GRAPHEMES or len(tag.encode("utf-8")) > TAG_MAX_BYTES:
            continue
        facets.append(_facet(text, match.start(), match.end(), models.AppBskyRichtextFacet.Tag(tag=tag)))
    return facets


def without_overlaps(facets: list[models.AppBskyRichtextFacet.Main]) -> list[models.AppBskyRichtextFacet.Main]:
    """Sorted by position; a facet that overlaps an earlier one is dropped (facets may not overlap)."""
    kept: list[models.AppBskyRichtextFacet.Main] = []
    for facet in sorted(facets, key=lambda item: (item.index.byte_start, item.index.byte_end)):
        if kept and facet.index.byte_start < kept[-1].index.byte_end:
            continue
        kept.append(facet)
    return kept


async def mention_facets(client: AsyncClient, text: str) -> list[models.AppBskyRichtextFacet.Main]:
    """`@handle` mentions resolved to DIDs; a handle that does not resolve (400) stays plain text. Any other
    failure of a lookup comes out (the post is not sent without its mentions)."""
    facets = []
    dids: dict[str, str | None] = {}
    for mention in detect_mentions(text):
        handle = mention.handle.lower()
        if handle not in dids:
            try:
                params = models.ComAtprotoIdentityResolveHandle.Params(handle=handle)
                dids[handle] = (await client.com.atproto.identity.resolve_handle(params)).did
            except BadRequestError:
                dids[handle] = None
        did = dids[handle]
        if did is None:
            continue
        index = models.AppBskyRichtextFacet.ByteSlice(byte_start=mention.byte_start, byte_end=mention.byte_end)
        facets.append(
            models.AppBskyRichtextFacet.Main(features=[models.AppBskyRichtextFacet.Mention(did=did)], index=index)
        )
    return facets


# ---- Images --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedImage:
    """An image as it is uploaded: JPEG bytes under the limit and its size in pixels."""

    data: bytes
    width: int
    height: int


def jpeg_under_limit(data: bytes, *, max_bytes: int = IMAGE_MAX_BYTES, name: str = "an image") -> PreparedImage:
    """The image as a JPEG of at most `max_bytes`: turned upright, transparency on white, at most 2000 px on its
    longer side, then lower qualities and smaller sizes (aspect ratio kept) until it fits. The JPEG carries no
    metadata from the original (no location). `PublishRejected` when it is not an image Pillow can read."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise PublishRejected(f"{name} cannot be read as an image: {exc}") from None
    if image.mode not in ("RGB", "L"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE), Image.Resampling.LANCZOS)
    while True:
        for quality in JPEG_QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
            if buffer.tell() <= max_bytes:
                return PreparedImage(buffer.getvalue(), image.width, image.height)
        if min(image.size) <= IMAGE_MIN_SIDE:
            raise PublishRejected(f"{name} does not fit in {max_bytes} bytes as a JPEG")
        smaller = (max(1, round(image.width * IMAGE_SHRINK)), max(1, round(image.height * IMAGE_SHRINK)))
        image = image.resize(smaller, Image.Resampling.LANCZOS)


# ---- The publisher -------------------------------------------------------------------------------------------------


class BlueskyPublisher(Publisher):
    """Posts a delivery as the channel's account: one record per social post, at a key derived from its id."""

    name: ClassVar[str] = "bluesky"
    # The record key is derived from the social post: a resend cannot create a second post, and `find` can tell.
    repeatable: ClassVar[bool] = True
    checkable: ClassVar[bool] = True

    def __init__(self, session: ChannelSession, *, timeout_seconds: float) -> None:
        self.session = session
        self.timeout_seconds = timeout_seconds

    def __repr__(self) -> str:
        return f"BlueskyPublisher(handle={self.session.credentials.get('handle', '')!r})"

    @asynccontextmanager
    async def _signed_in(self) -> AsyncIterator[SignedIn]:
        """Sign-in failures as `PublishNotSent` (a refused login as `ChannelCredentialsRejected`); errors of the
        work done inside are not touched here."""
        async with AsyncExitStack() as stack:
            try:
                signed = await stack.enter_async_context(signed_in(self.session, timeout_seconds=self.timeout_seconds))
            except REQUEST_ERRORS as exc:
                raise publish_error(exc, stage=Stage.BEFORE_POSTING, what="signing in") from None
            yield signed

    async def find(self, delivery: Delivery, delivery_id: str) -> Receipt | None:
        rkey = record_key(delivery.social_post_id)
        async with self._signed_in() as signed:
            try:
                return await self._existing(signed, rkey)
            except REQUEST_ERRORS as exc:
                raise PublishNotSent(f"Bluesky could not be asked for the post: {_said(exc)}") from None

    async def publish(self, delivery: Delivery, delivery_id: str) -> Receipt:
        text = delivery.text
        length = grapheme_count(text)
        if length > MAX_GRAPHEMES:
            raise PublishRejected(f"the post has {length} graphemes; Bluesky takes at most {MAX_GRAPHEMES}")
        # Videos are not posted: Bluesky takes them through its video service (upload, then a processing job).
        images = [media for media in delivery.media if media.kind == MediaKind.IMAGE]
        if len(images) > MAX_IMAGES:
            raise PublishRejected(f"the post has {len(images)} images; Bluesky takes at most {MAX_IMAGES}")
        rkey = record_key(delivery.social_post_id)
        async with self._signed_in() as signed:
            try:
                # A repeat of a post that was created: its receipt, before any upload.
                existing = await self._existing(signed, rkey)
                if existing is not None:
                    return existing
                embed = await self._embed(signed, delivery, images)
                facets = without_overlaps(link_and_tag_facets(text) + await mention_facets(signed.client, text))
            except REQUEST_ERRORS as exc:
                raise publish_error(exc, stage=Stage.BEFORE_POSTING, what="preparing the post") from None
            record = models.AppBskyFeedPost.Record(
                text=text,
                created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                facets=facets or None,
                embed=embed,
                # No `langs`: the post's language is not known here, and a wrong one hides it from feeds.
            )
            return await self._create(signed, rkey, record)

    async def _create(self, signed: SignedIn, rkey: str, record: models.AppBskyFeedPost.Record) -> Receipt:
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=signed.did, collection=POST_COLLECTION, rkey=rkey, record=record, validate_=True
        )
        try:
            created = await signed.client.com.atproto.repo.create_record(data)
        except REQUEST_ERRORS as exc:
            error = publish_error(exc, stage=Stage.POSTING, what="createRecord")
            if isinstance(error, PublishOutcomeUnknown):
                # A create at a key that holds a record fails (the PDS answers 500): a repeat that raced an
                # earlier send, or an earlier send whose answer was lost. The record at the key tells.
                try:
                    existing = await self._existing(signed, rkey)
                except REQUEST_ERRORS:
                    existing = None
                if existing is not None:
                    return existing
            raise error from None
        return self._receipt(signed, created.uri, rkey)

    async def _existing(self, signed: SignedIn, rkey: str) -> Receipt | None:
        """The receipt of the record at `rkey`, None when there is none. Request errors come out as they are."""
        params = models.ComAtprotoRepoGetRecord.Params(repo=signed.did, collection=POST_COLLECTION, rkey=rkey)
        try:
            found = await signed.client.com.atproto.repo.get_record(params)
        except BadRequestError as exc:
            if _error_name(exc) == "RecordNotFound":
                return None
            raise
        return self._receipt(signed, found.uri, rkey)

    @staticmethod
    def _receipt(signed: SignedIn, uri: str, rkey: str) -> Receipt:
        return Receipt(external_id=usable_external_id(uri), url=post_url(signed.handle, rkey), status_code=200)

    async def _embed(
        self, signed: SignedIn, delivery: Delivery, images: list[MediaRef]
    ) -> models.AppBskyEmbedImages.Main | models.AppBskyEmbedExternal.Main | None:
        if images:
            return models.AppBskyEmbedImages.Main(images=[await self._image(signed, ref) for ref in images])
        links = url_spans(delivery.text)
        if not links:
            return None
        start, end = links[0]
        uri = delivery.text[start:end]
        external = models.AppBskyEmbedExternal.External(
            uri=uri,
            title=(delivery.blog_title or uri)[:LINK_CARD_TITLE_MAX_CHARS],
            description=delivery.blog_summary[:LINK_CARD_DESCRIPTION_MAX_CHARS],
        )
        return models.AppBskyEmbedExternal.Main(external=external)

    async def _image(self, signed: SignedIn, ref: MediaRef) -> models.AppBskyEmbedImages.Image:
        # A failure to read the media file comes out as it is: it is the media store's, not Bluesky's.
        original = await self.session.read_media(ref)
        prepared = await asyncio.to_thread(jpeg_under_limit, original, name=f"image {ref.id}")
        # As the SDK's upload_blob, but with the bytes as `content`: httpx deprecates raw bytes passed as `data`.
        response = await signed.client.invoke_procedure(
            "com.atproto.repo.uploadBlob",
            content=prepared.data,
            headers={"Content-Type": "image/jpeg"},
            output_encoding="application/json",
        )
        uploaded = get_response_model(response, models.ComAtprotoRepoUploadBlob.Response)
        return models.AppBskyEmbedImages.Image(
            alt=ref.alt_text,
            image=uploaded.blob,
            aspect_ratio=models.AppBskyEmbedDefs.AspectRatio(width=prepared.width, height=prepared.height),
        )


__all__ = [
    "DEFAULT_SERVICE",
    "IMAGE_MAX_BYTES",
    "RULES",
    "BlueskyPublisher",
    "check",
    "connect",
    "jpeg_under_limit",
    "record_key",
]
