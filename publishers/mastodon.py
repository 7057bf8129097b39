"""The Mastodon publisher and channel: connecting an account by OAuth, reading its instance's rules, posting a status.

Every call is Mastodon's documented client API (docs.joinmastodon.org):

- Connect: `POST /api/v1/apps` registers the app on the instance (`register_app`); the person authorizes it at
  `GET /oauth/authorize` with PKCE (models.channels: `mastodon_authorization_url`, `pkce_pair`); the code comes
  back to our redirect URI and `POST /oauth/token` exchanges it for an access token (`exchange_code`), which does
  not expire. The account comes from `GET /api/v1/accounts/verify_credentials`, the instance's limits from
  `GET /api/v2/instance` (`instance_rules`; `/api/v1/instance` on an older server). `POST /oauth/revoke` on
  disconnect (`revoke`).
- Post: each image goes to `POST /api/v2/media` (multipart, the alt text as `description`); the instance answers
  202 with `url: null` while it processes the file, and `GET /api/v1/media/:id` answers 206 until it is done.
  Then `POST /api/v1/statuses` with `Idempotency-Key: <delivery id>`: Mastodon keeps the key for an hour and
  answers the status it already made for a repeat, so a delivery whose outcome is unknown may be sent again.

Errors say whether the status may exist: nothing connected or a 429 before the status POST is `PublishNotSent`
(so is any failure while uploading media, since no status was posted yet); a 5xx, a read timeout or a broken
connection on the status POST is `PublishOutcomeUnknown`; 401/403 is `ChannelCredentialsRejected`; 422 and other
4xx are `PublishRejected` with the instance's own `error` text. A rate limit's wait comes from
`X-RateLimit-Reset` (an ISO 8601 time) or `Retry-After`.

Like the webhook publisher, every request goes to an address checked by `models.destinations` (public internet
only, unless `allow_private_networks`), resolved once per operation and connected to directly with the instance's
Host header (and its name for TLS), no redirects followed and no proxy from the environment. The access token and
the client secret are sent only in headers and request bodies: never in a URL, a log line, an exception message
or a repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from models.channels import MASTODON_SCOPES, normalize_service
from models.destinations import Destination, DestinationError, NonPublicAddress, UnresolvedHost, check_url
from models.enums import MediaKind
from models.text_limits import mastodon_length
from publishers.base import (
    Delivery,
    MediaRef,
    Publisher,
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
from publishers.webhook import json_or_none, read_limited, retry_after_seconds

# Only what posting needs: the account (to show who the channel posts as), statuses and media.
SCOPES = MASTODON_SCOPES
CLIENT_NAME = "content-pipeline"
USER_AGENT = "content-pipeline-mastodon/1"

# Mastodon's defaults (a vanilla instance's /api/v2/instance configuration).
DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_LENGTH = 23
DEFAULT_MAX_MEDIA = 4
DEFAULT_RULES = PlatformRules(max_chars=DEFAULT_MAX_CHARACTERS, url_length=DEFAULT_URL_LENGTH, max_images=4)

# The names under which a channel's credentials are kept (`publishers.channel.Credentials`).
INSTANCE = "instance"
ACCESS_TOKEN = "accessToken"
CLIENT_ID = "clientId"
CLIENT_SECRET = "clientSecret"

# An instance's answers are read up to this size: /api/v2/instance, the largest, is a few kilobytes.
MAX_RESPONSE_BYTES = 1024 * 1024
EXCERPT_CHARS = 300
MAX_RECEIPT_URL_LENGTH = 2000
# A host with several addresses: the next one is tried when a connection cannot be made (nothing was sent).
MAX_ADDRESSES_TRIED = 3
# Polling a media attachment that is still processing: the first wait, and how long a wait may grow.
MEDIA_POLL_FIRST_SECONDS = 0.25
MEDIA_POLL_MAX_SECONDS = 2.0


class InstanceRefused(ValueError):
    """The instance refused a connect step for good (a 4xx other than 401/403/429): the message says why."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.reason = message
        self.status_code = status_code


# ---- Instance addresses, OAuth helpers, counting -----------------------------------------------------------


def normalize_instance(value: str, *, allow_private_networks: bool = False) -> str:
    """The instance's base URL from what a person typed (models.channels.normalize_service); ValueError in words."""
    return normalize_service(value, allow_private_networks=allow_private_networks, what="the Mastodon instance")


def counted_length(text: str, rules: PlatformRules) -> int:
    """The length of `text` as a Mastodon instance counts it (models.text_limits.mastodon_length)."""
    return mastodon_length(text, rules)


def handle_of(acct: str, instance: str) -> str:
    """`@user@host` from an account's `acct` (the bare user name for a local account) and its instance URL."""
    if "@" in acct:
        return f"@{acct.lstrip('@')}"
    return f"@{acct}@{urlsplit(instance).netloc}"


# ---- Talking to an instance --------------------------------------------------------------------------------


@dataclass
class InstanceAnswer:
    """What the instance answered: status, headers, the body as JSON when it was JSON, and its start as text."""

    status_code: int
    headers: httpx.Headers
    payload: Any
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def error_text(self) -> str:
        """The instance's own explanation: `error` (and `error_description`) of its JSON, else the body's start."""
        if isinstance(self.payload, dict):
            said = [str(self.payload[k]) for k in ("error", "error_description") if self.payload.get(k)]
            if said:
                return _excerpt(": ".join(said))
        return _excerpt(self.text)

    def said(self, where: str) -> str:
        detail = self.error_text
        return f"{where} answered {self.status_code}" + (f": {detail}" if detail else "")


class NothingSent(Exception):
    """No connection could be made: the instance cannot have seen the request."""


class NoAnswer(Exception):
    """The request was sent (or partly sent) but no complete answer came: the instance may have processed it."""


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


class InstanceApi:
    """Requests to one instance for the length of one operation, all to the address checked when it opened."""

    def __init__(self, instance: str, destination: Destination, client: httpx.AsyncClient, timeout: float) -> None:
        self.instance = instance
        self.destination = destination
        self.client = client
        self.timeout_seconds = timeout

    def __repr__(self) -> str:
        return f"InstanceApi({self.instance!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InstanceAnswer:
        """One request, never retried here: `NothingSent` when no connection could be made, `NoAnswer` when the
        request went out and no whole answer came back."""
        destination = self.destination
        sent_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Host": destination.host_header}
        if token:
            sent_headers["Authorization"] = f"Bearer {token}"
        sent_headers.update(headers or {})
        # TLS is verified against the instance's name although the connection goes to a checked address.
        named = destination.scheme == "https" and not destination.host_is_address
        extensions = {"sni_hostname": destination.host} if named else {}
        addresses = destination.addresses[:MAX_ADDRESSES_TRIED]
        where = f"{self.instance}{path}"
        for number, address in enumerate(addresses, start=1):
            url = httpx.URL(scheme=destination.scheme, host=address, port=destination.port, path=path)
            try:
                request = self.client.build_request(
                    method,
                    url,
                    params=params,
                    data=data,
                    json=json_body,
                    files=files,
                    headers=sent_headers,
                    extensions=extensions,
                )
                response = await self.client.send(request, stream=True)
                try:
                    raw = await read_limited(response, MAX_RESPONSE_BYTES)
                finally:
                    await response.aclose()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
                # Nothing reached the instance: refused, unreachable, TLS handshake.
                if number < len(addresses):
                    continue
                raise NothingSent(f"could not connect to {self.instance}: {_describe(exc)}") from exc
            except httpx.TimeoutException as exc:
                raise NoAnswer(
                    f"{where} did not answer within {self.timeout_seconds:g} s after the request was sent "
                    f"({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                raise NoAnswer(f"the connection to {where} broke after the request was sent: {_describe(exc)}") from exc
            return InstanceAnswer(
                response.status_code, response.headers, json_or_none(raw), raw.decode("utf-8", "replace")
            )
        raise NothingSent(f"could not connect to {self.instance}: no address to connect to")


@contextlib.asynccontextmanager
async def open_instance(
    instance: str, *, timeout_seconds: float, allow_private_networks: bool = False
) -> AsyncIterator[InstanceApi]:
    """An `InstanceApi` for `instance` (a URL `normalize_instance` accepts). Raises what `check_url` raises: a
    `NonPublicAddress` when the instance is not on the public internet (and that is not allowed), an
    `UnresolvedHost` when its name does not resolve, a `DestinationError` for an unusable URL."""
    base = normalize_instance(instance, allow_private_networks=allow_private_networks)
    destination = await check_url(base, allow_private_networks=allow_private_networks)
    # No proxy from the environment (it would choose the destination) and no redirects (they would too).
    client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False, trust_env=False)
    async with client:
        yield InstanceApi(base, destination, client, timeout_seconds)


def rate_limit_wait(headers: httpx.Headers) -> float | None:
    """Seconds until the rate limit resets: `X-RateLimit-Reset` (Mastodon's, an ISO 8601 time), else
    `Retry-After` (seconds or an HTTP date); None when neither says."""
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            when = datetime.fromisoformat(reset.strip())
        except ValueError:
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, round((when - datetime.now(UTC)).total_seconds(), 3))
    return retry_after_seconds(headers.get("retry-after"))


# ---- Connecting a channel ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _channel_call(
    instance: str, *, timeout_seconds: float, allow_private_networks: bool, refuse_destination: bool
) -> AsyncIterator[InstanceApi]:
    """An `InstanceApi` for a connect or check step, with transport failures as `ChannelUnavailable`. An instance
    that is not on the public internet is a `ValueError` when `refuse_destination` (a person is connecting it and
    can fix the address), else `ChannelUnavailable` (a connected channel's name now resolves elsewhere)."""
    try:
        base = normalize_instance(instance, allow_private_networks=allow_private_networks)
    except ValueError as exc:
        if refuse_destination:
            raise
        raise ChannelUnavailable(f"the channel's instance address cannot be used now: {exc}") from exc
    try:
        async with open_instance(
            base, timeout_seconds=timeout_seconds, allow_private_networks=allow_private_networks
        ) as api:
            yield api
    except UnresolvedHost as exc:
        raise ChannelUnavailable(f"could not reach {instance}: {exc}") from exc
    except NonPublicAddress as exc:
        if refuse_destination:
            raise ValueError(f"the instance is not on the public internet: {exc}") from exc
        raise ChannelUnavailable(f"{instance} is not on the public internet now: {exc}") from exc
    except DestinationError as exc:
        raise ValueError(f"the instance's address cannot be used: {exc}") from exc
    except (NothingSent, NoAnswer) as exc:
        raise ChannelUnavailable(str(exc)) from exc


def _raise_unavailable(answer: InstanceAnswer, where: str) -> None:
    """`ChannelUnavailable` for answers that say "not now" (429, 5xx, 408); nothing for any other."""
    if answer.status_code == 429:
        raise ChannelUnavailable(f"{where} is rate limited (429)", retry_after=rate_limit_wait(answer.headers))
    if answer.status_code >= 500 or answer.status_code == 408:
        raise ChannelUnavailable(answer.said(where), retry_after=retry_after_seconds(answer.headers.get("retry-after")))


async def register_app(
    instance: str,
    redirect_uri: str,
    *,
    timeout_seconds: float,
    allow_private_networks: bool = False,
    website: str | None = None,
) -> Credentials:
    """Registers the app on the instance (`POST /api/v1/apps`): `{"clientId", "clientSecret"}`. Raises
    `ChannelUnavailable` (unreachable, 5xx, 429), `InstanceRefused` (a 4xx, or not a Mastodon answer) and
    `ValueError` (an unusable or non-public address)."""
    async with _channel_call(
        instance,
        timeout_seconds=timeout_seconds,
        allow_private_networks=allow_private_networks,
        refuse_destination=True,
    ) as api:
        body = {"client_name": CLIENT_NAME, "redirect_uris": redirect_uri, "scopes": SCOPES}
        if website:
            body["website"] = website  # shown to the person on the instance's authorization page
        answer = await api.request("POST", "/api/v1/apps", json_body=body)
    where = f"{api.instance}/api/v1/apps"
    _raise_unavailable(answer, where)
    if not answer.ok:
        raise InstanceRefused(
            f"the instance refused to register the app: {answer.said(where)}", status_code=answer.status_code
        )
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    client_id, client_secret = payload.get("client_id"), payload.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str) or not client_id or not client_secret:
        raise InstanceRefused(f"{api.instance} did not answer like a Mastodon instance (no client id and secret)")
    return {CLIENT_ID: client_id, CLIENT_SECRET: client_secret}


async def exchange_code(
    instance: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    code: str,
    code_verifier: str,
    *,
    timeout_seconds: float,
    allow_private_networks: bool = False,
) -> tuple[ChannelAccount, Credentials, PlatformRules]:
    """The account, the channel's credentials (`{"instance", "accessToken", "clientId", "clientSecret"}`) and the
    instance's rules for an authorization code. `ChannelCredentialsRejected` when the instance refuses the code (or
    the client, or grants too little), `ChannelUnavailable` when it cannot be asked now."""
    base = normalize_instance(instance, allow_private_networks=allow_private_networks)
    # The rules first: a failure there leaves the code unused and no token behind.
    rules = await instance_rules(base, timeout_seconds=timeout_seconds, allow_private_networks=allow_private_networks)
    async with _channel_call(
        base, timeout_seconds=timeout_seconds, allow_private_networks=allow_private_networks, refuse_destination=True
    ) as api:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "scope": SCOPES,
        }
        answer = await api.request("POST", "/oauth/token", data=form)
        where = f"{base}/oauth/token"
        _raise_unavailable(answer, where)
        if not answer.ok:
            raise ChannelCredentialsRejected(
                f"the instance refused the authorization: {answer.said(where)}", status_code=answer.status_code
            )
        payload = answer.payload if isinstance(answer.payload, dict) else {}
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise ChannelUnavailable(f"{where} answered without an access token")
        granted = set(str(payload.get("scope") or SCOPES).split())
        missing = sorted(set(SCOPES.split()) - granted - _implied_by(granted))
        if missing:
            await _revoke(api, token, client_id, client_secret)
            raise ChannelCredentialsRejected(f"the instance granted too little: {' '.join(missing)} is missing")
        account = await _verify_credentials(api, token)
    credentials = {INSTANCE: base, ACCESS_TOKEN: token, CLIENT_ID: client_id, CLIENT_SECRET: client_secret}
    return account, credentials, rules


def _implied_by(granted: set[str]) -> set[str]:
    """The fine scopes a broad one grants: `write` holds `write:statuses`, `read` holds `read:accounts`."""
    return {scope for scope in SCOPES.split() if scope.split(":")[0] in granted}


async def instance_rules(
    instance: str, *, timeout_seconds: float, allow_private_networks: bool = False
) -> PlatformRules:
    """How long a status may be on this instance, and how many images of what size it takes: its
    `/api/v2/instance` configuration (`/api/v1/instance` on servers older than Mastodon 4.0), Mastodon's defaults
    for what it does not say."""
    async with _channel_call(
        instance,
        timeout_seconds=timeout_seconds,
        allow_private_networks=allow_private_networks,
        refuse_destination=True,
    ) as api:
        answer = await api.request("GET", "/api/v2/instance")
        if answer.status_code in (404, 410):
            answer = await api.request("GET", "/api/v1/instance")
    where = f"{api.instance}/api/v2/instance"
    _raise_unavailable(answer, where)
    if not answer.ok or not isinstance(answer.payload, dict):
        raise ChannelUnavailable(f"could not read the instance's rules: {answer.said(where)}")
    return rules_from(answer.payload)


def rules_from(payload: Mapping[str, Any]) -> PlatformRules:
    """`PlatformRules` from an instance's v2 (or v1) description."""
    configuration = _section(payload, "configuration")
    statuses, media = _section(configuration, "statuses"), _section(configuration, "media_attachments")
    max_chars = _positive(statuses.get("max_characters")) or _positive(payload.get("max_toot_chars"))
    return PlatformRules(
        max_chars=max_chars or DEFAULT_MAX_CHARACTERS,
        url_length=_positive(statuses.get("characters_reserved_per_url")) or DEFAULT_URL_LENGTH,
        max_images=_positive(statuses.get("max_media_attachments")) or DEFAULT_MAX_MEDIA,
        image_max_bytes=_positive(media.get("image_size_limit")),
    )


def _section(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def _positive(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None


async def _verify_credentials(api: InstanceApi, token: str) -> ChannelAccount:
    answer = await api.request("GET", "/api/v1/accounts/verify_credentials", token=token)
    where = f"{api.instance}/api/v1/accounts/verify_credentials"
    if answer.status_code in (401, 403):
        raise ChannelCredentialsRejected(
            f"the instance refused the channel's access token: {answer.said(where)}", status_code=answer.status_code
        )
    _raise_unavailable(answer, where)
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    account_id, acct = payload.get("id"), payload.get("acct") or payload.get("username")
    if not answer.ok or account_id in (None, "") or not isinstance(acct, str) or not acct:
        raise ChannelUnavailable(f"could not read the account: {answer.said(where)}")
    url = payload.get("url")
    return ChannelAccount(
        id=str(account_id),
        handle=handle_of(acct, api.instance),
        display_name=str(payload.get("display_name") or ""),
        url=url if isinstance(url, str) and len(url) <= MAX_RECEIPT_URL_LENGTH else None,
    )


async def check(
    session: ChannelSession, *, timeout_seconds: float, allow_private_networks: bool = False
) -> ChannelAccount:
    """The account the channel posts as, asked without posting anything. `ChannelCredentialsRejected` when the
    instance refuses the token (401/403), `ChannelUnavailable` when it cannot be asked now."""
    instance, token = _instance_and_token(session)
    async with _channel_call(
        instance,
        timeout_seconds=timeout_seconds,
        allow_private_networks=allow_private_networks,
        refuse_destination=False,
    ) as api:
        return await _verify_credentials(api, token)


async def revoke(session: ChannelSession, *, timeout_seconds: float, allow_private_networks: bool = False) -> bool:
    """Revokes the channel's token at the instance (`POST /oauth/revoke`), for a disconnect. Best effort: True
    when the instance took it, False for any failure (the channel is disconnected here all the same)."""
    credentials = session.credentials
    instance, token = credentials.get(INSTANCE, ""), credentials.get(ACCESS_TOKEN, "")
    if not instance or not token:
        return False
    try:
        async with open_instance(
            instance, timeout_seconds=timeout_seconds, allow_private_networks=allow_private_networks
        ) as api:
            return await _revoke(api, token, credentials.get(CLIENT_ID, ""), credentials.get(CLIENT_SECRET, ""))
    except (ValueError, NothingSent, NoAnswer):
        return False


async def _revoke(api: InstanceApi, token: str, client_id: str, client_secret: str) -> bool:
    form = {"client_id": client_id, "client_secret": client_secret, "token": token}
    try:
        answer = await api.request("POST", "/oauth/revoke", data=form)
    except (NothingSent, NoAnswer):
        return False
    return answer.ok


def _instance_and_token(session: ChannelSession) -> tuple[str, str]:
    instance = session.credentials.get(INSTANCE, "")
    token = session.credentials.get(ACCESS_TOKEN, "")
    if not instance or not token:
        raise ChannelCredentialsRejected("the channel has no Mastodon instance or access token; reconnect it")
    return instance, token


# ---- Posting -----------------------------------------------------------------------------------------------


class MastodonPublisher(Publisher):
    """Posts a delivery as a public status, with its images, on the channel's instance."""

    name: ClassVar[str] = "mastodon"
    # Statuses are posted with `Idempotency-Key: <delivery id>`: for an hour, Mastodon answers a repeat with the
    # status it already made, so a delivery whose outcome is unknown may be sent again.
    repeatable: ClassVar[bool] = True

    def __init__(
        self,
        session: ChannelSession,
        *,
        timeout_seconds: float,
        allow_private_networks: bool = False,
        media_wait_seconds: float = 60,
    ) -> None:
        self.session = session
        self.timeout_seconds = timeout_seconds
        self.allow_private_networks = allow_private_networks
        self.media_wait_seconds = media_wait_seconds

    def __repr__(self) -> str:
        return f"MastodonPublisher(instance={self.session.credentials.get(INSTANCE, '')!r})"

    @property
    def rules(self) -> PlatformRules:
        return self.session.rules or DEFAULT_RULES

    async def publish(self, delivery: Delivery, delivery_id: str) -> Receipt:
        instance, token = _instance_and_token(self.session)
        rules = self.rules
        length = counted_length(delivery.text, rules)
        if length > rules.max_chars:
            raise PublishRejected(
                f"the text is {length} characters as Mastodon counts them (links as {rules.url_length}); "
                f"this instance allows {rules.max_chars}. Nothing was sent."
            )
        images = [ref for ref in delivery.media if ref.kind == MediaKind.IMAGE][: rules.max_images]
        files = [await self.session.read_media(ref) for ref in images]
        for ref, data in zip(images, files, strict=True):
            if rules.image_max_bytes is not None and len(data) > rules.image_max_bytes:
                raise PublishRejected(
                    f"the image {ref.id} is {len(data)} bytes; the instance takes images of at most "
                    f"{rules.image_max_bytes} bytes. Nothing was sent."
                )
        try:
            base = normalize_instance(instance, allow_private_networks=self.allow_private_networks)
        except ValueError as exc:
            raise PublishRejected(f"the channel's instance address cannot be used: {exc}") from exc
        try:
            async with open_instance(
                base, timeout_seconds=self.timeout_seconds, allow_private_networks=self.allow_private_networks
            ) as api:
                # All files first, then the waits: the instance processes them side by side.
                uploaded = [await self._upload(api, token, ref, data) for ref, data in zip(images, files, strict=True)]
                deadline = time.monotonic() + self.media_wait_seconds
                for media_id, processed in uploaded:
                    if not processed:
                        await self._wait_for_media(api, token, media_id, deadline)
                media_ids = [media_id for media_id, _ in uploaded]
                return await self._post_status(api, token, delivery.text, media_ids, delivery_id)
        except UnresolvedHost as exc:
            raise PublishNotSent(f"could not connect to {base}: {exc}") from exc
        except NonPublicAddress as exc:
            raise PublishRejected(f"the channel's instance is not on the public internet: {exc}") from exc
        except DestinationError as exc:
            raise PublishRejected(f"the channel's instance address cannot be used: {exc}") from exc

    async def _upload(self, api: InstanceApi, token: str, ref: MediaRef, data: bytes) -> tuple[str, bool]:
        """The media attachment's id, and whether the instance has processed the file already. Any failure is
        `PublishNotSent` (or rejected, or refused credentials): no status exists yet, and the instance deletes an
        attachment that no status uses."""
        where = f"{api.instance}/api/v2/media"
        extension = ref.mime_type.rsplit("/", 1)[-1].split("+")[0] or "bin"
        try:
            answer = await api.request(
                "POST",
                "/api/v2/media",
                token=token,
                data={"description": ref.alt_text} if ref.alt_text else None,
                files={"file": (f"{ref.id}.{extension}", data, ref.mime_type)},
            )
        except (NothingSent, NoAnswer) as exc:
            raise PublishNotSent(f"the image was not uploaded: {exc}") from exc
        _raise_before_status(answer, where)
        payload = answer.payload if isinstance(answer.payload, dict) else {}
        media_id = payload.get("id")
        if media_id in (None, ""):
            raise PublishNotSent(f"{where} answered {answer.status_code} without a media id")
        return str(media_id), answer.status_code == 200 and bool(payload.get("url"))

    async def _wait_for_media(self, api: InstanceApi, token: str, media_id: str, deadline: float) -> None:
        """Returns once the instance answers 200 with a URL for the attachment; `PublishNotSent` past `deadline`."""
        path = f"/api/v1/media/{quote(media_id, safe='')}"
        where = f"{api.instance}{path}"
        pause = MEDIA_POLL_FIRST_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotSent(
                    f"the instance is still processing the media after {self.media_wait_seconds:g} s; no status "
                    "was posted"
                )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, MEDIA_POLL_MAX_SECONDS)
            try:
                answer = await api.request("GET", path, token=token)
            except (NothingSent, NoAnswer) as exc:
                raise PublishNotSent(f"could not ask whether the image is processed: {exc}") from exc
            if answer.status_code == 206:
                continue
            if answer.status_code in (401, 403, 429):
                _raise_before_status(answer, where)
            if not answer.ok:
                raise PublishNotSent(f"could not ask whether the image is processed: {answer.said(where)}")
            payload = answer.payload if isinstance(answer.payload, dict) else {}
            if payload.get("url"):
                return

    async def _post_status(
        self, api: InstanceApi, token: str, text: str, media_ids: list[str], delivery_id: str
    ) -> Receipt:
        where = f"{api.instance}/api/v1/statuses"
        body: dict[str, Any] = {"status": text, "visibility": "public"}
        if media_ids:
            body["media_ids"] = media_ids
        try:
            answer = await api.request(
                "POST", "/api/v1/statuses", token=token, json_body=body, headers={"Idempotency-Key": delivery_id}
            )
        except NothingSent as exc:
            raise PublishNotSent(str(exc)) from exc
        except NoAnswer as exc:
            raise PublishOutcomeUnknown(f"{exc}; a repeat with the same Idempotency-Key gets the same status") from exc
        status = answer.status_code
        if status >= 500 or status == 409:
            # The instance (or a proxy in front of it) may have made the status before failing.
            raise PublishOutcomeUnknown(answer.said(where), status_code=status)
        _raise_before_status(answer, where)
        payload = answer.payload if isinstance(answer.payload, dict) else {}
        external_id = usable_external_id(payload.get("id"))
        url = payload.get("url") or payload.get("uri")
        note = "" if external_id else f"{where} gave no usable id for the status"
        return Receipt(
            external_id=external_id,
            url=url if isinstance(url, str) and len(url) <= MAX_RECEIPT_URL_LENGTH else None,
            status_code=status,
            note=note,
        )


def _raise_before_status(answer: InstanceAnswer, where: str) -> None:
    """Nothing for a 2xx; else the error for an answer that says the request was not carried out: 401/403 the
    token, 408/429/5xx not now, a redirect or another 4xx for good (with the instance's own words)."""
    status = answer.status_code
    if 200 <= status < 300:
        return
    if status in (401, 403):
        raise ChannelCredentialsRejected(
            f"the instance refused the channel's access token: {answer.said(where)}; reconnect the channel",
            status_code=status,
        )
    if status == 429:
        raise PublishNotSent(
            f"{where} is rate limited (429)", status_code=status, retry_after=rate_limit_wait(answer.headers)
        )
    if status == 408 or status >= 500:
        raise PublishNotSent(
            answer.said(where), status_code=status, retry_after=retry_after_seconds(answer.headers.get("retry-after"))
        )
    if 300 <= status < 400:
        location = answer.headers.get("location", "")
        raise PublishRejected(
            f"{where} answered a redirect ({status}) to {location or 'elsewhere'}; reconnect with the instance's own "
            "address",
            status_code=status,
        )
    raise PublishRejected(answer.said(where), status_code=status)


__all__ = [
    "ACCESS_TOKEN",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DEFAULT_RULES",
    "INSTANCE",
    "SCOPES",
    "InstanceRefused",
    "MastodonPublisher",
    "check",
    "counted_length",
    "exchange_code",
    "instance_rules",
    "normalize_instance",
    "register_app",
    "revoke",
]
