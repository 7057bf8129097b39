"""Connected channels: what crosses Temporal and the API about them, and the checks of what a person types in.

A channel is one connected account on one platform for one company. Its credentials never cross Temporal and
never reach an answer: the API writes them encrypted (`models.credentials`) into a `ChannelAttempt` row, and a
workflow carries only that row's id to the activity that connects the account.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from models.enums import Platform

BLUESKY_DEFAULT_SERVICE = "https://bsky.social"
# Platforms that connect with a password made for apps (POST .../channels) and those that connect through OAuth
# (POST .../channels/connect, then the platform calls back).
PASSWORD_PLATFORMS = frozenset({Platform.BLUESKY})
OAUTH_PLATFORMS = frozenset({Platform.MASTODON})
MASTODON_SCOPES = "read:accounts write:statuses write:media"
# An OAuth sign-in at the platform must come back within this.
AUTHORIZATION_MINUTES = 15

# A Bluesky handle: labels of letters, digits and hyphens, at least two, the last not starting with a digit.
_HANDLE = re.compile(r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# Bluesky app passwords look like xxxx-xxxx-xxxx-xxxx; an account password also works with a PDS, so any
# printable secret of a sensible length is taken and the server decides.
APP_PASSWORD_LENGTH = (4, 200)


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ChannelState(StrEnum):
    CONNECTED = "CONNECTED"
    # The platform refused the stored credentials (a changed password, an expired session that cannot be renewed):
    # a person connects it again. Its posts wait.
    NEEDS_RECONNECT = "NEEDS_RECONNECT"
    # The platform says the access was revoked (the account owner removed the app). Its posts wait too.
    REVOKED = "REVOKED"

    @property
    def label(self) -> str:
        return {"CONNECTED": "connected", "NEEDS_RECONNECT": "needs reconnect", "REVOKED": "revoked"}[self.value]


class ChannelAccount(Wire):
    """The account a channel posts as, as the platform reported it when it was last checked."""

    id: str = Field(description="the platform's id for the account: a DID on Bluesky, the account id on Mastodon")
    handle: str = Field(description="as people write it: alice.bsky.social, @alice@mastodon.social")
    display_name: str = ""
    url: str | None = Field(default=None, description="the account's profile page, when the platform has one")


class PlatformRules(Wire):
    """How long a post may be on this channel, as its platform (or its instance) counts."""

    max_chars: int
    unit: Literal["graphemes", "characters"] = "characters"
    url_length: int | None = Field(
        default=None, description="every link counts this many characters (Mastodon: 23); None: counted as written"
    )
    max_images: int = 4
    image_max_bytes: int | None = Field(default=None, description="the largest image file the platform takes")


class ChannelTaskKind(StrEnum):
    CONNECT = "connect"  # a ChannelAttempt's credentials become the company's channel for the platform
    AUTHORIZE = "authorize"  # an OAuth attempt gets the instance's client id (the app is registered once)
    CHECK = "check"  # verify a channel's credentials, post nothing
    DISCONNECT = "disconnect"  # revoke what the platform allows, then remove the channel


class ChannelTask(Wire):
    """One channel operation the API waits for: ids only, never a credential."""

    kind: ChannelTaskKind
    tenant_id: uuid.UUID
    attempt_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None


class ChannelOutcome(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # the platform refused the credentials
    UNAVAILABLE = "unavailable"  # the platform could not be asked
    INVALID = "invalid"  # what was typed in cannot be used (the message says why)
    GONE = "gone"  # the attempt or channel does not exist (expired, deleted meanwhile)


class ChannelTaskResult(Wire):
    outcome: ChannelOutcome
    message: str = ""
    channel_id: uuid.UUID | None = None
    state: ChannelState | None = None
    client_id: str | None = Field(default=None, description="AUTHORIZE: the instance's client id for this app")
    retry_after: float | None = None


class ChannelHealthRequest(Wire):
    """The daily check (no channel: every channel), or the check before a post is due (its channel only)."""

    social_post_id: uuid.UUID | None = None


class ChannelHealthReport(Wire):
    checked: int = 0
    connected: int = 0
    needs_reconnect: int = 0
    unavailable: int = 0


class ChannelPublic(Wire):
    id: uuid.UUID
    company_id: uuid.UUID
    platform: Platform
    state: ChannelState
    account: ChannelAccount
    service: str = Field(description="the PDS address (Bluesky) or the instance (Mastodon)")
    rules: PlatformRules | None = None
    last_checked_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime


class ChannelsPublic(Wire):
    data: list[ChannelPublic]
    count: int


# ---- what a person types in -----------------------------------------------------------------------------------


class ChannelInputError(ValueError):
    """Input that cannot be used; the message says why and is safe to show (it never holds a secret)."""


def normalize_service(value: str, *, allow_private_networks: bool, what: str, example: str = "mastodon.social") -> str:
    """The server's base URL, `https://host[:port]`, from what a person typed for `what` (a PDS, an instance):
    "mastodon.social" and "https://Mastodon.Social/" are both "https://mastodon.social". ChannelInputError, in words
    for that person, for anything else: a path, a query, credentials, an account handle, a scheme other than https
    (http only with `allow_private_networks`, for a server on this machine or network)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ChannelInputError(f"name {what}, for example {example}")
    if any(char.isspace() for char in text):
        raise ChannelInputError(f"{what}'s address cannot contain spaces")
    if "://" not in text:
        if "@" in text:
            raise ChannelInputError(f"name {what}, not the account: for @alice@{example} that is {example}")
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ChannelInputError(f"{what}'s address is not valid: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ChannelInputError(f"{what} must be an https address (https://{example})")
    if scheme == "http" and not allow_private_networks:
        raise ChannelInputError(f"{what} must be reached over https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ChannelInputError(f"{what}'s address cannot carry a user name or password")
    if parts.path not in ("", "/"):
        raise ChannelInputError(f"give {what}'s address without a path, for example https://{example}")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ChannelInputError(f"give {what}'s address without a query or fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ChannelInputError(f"{what}'s address must name a host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ChannelInputError(f"the host name {host!r} is not valid") from None
    shown = f"[{host}]" if ":" in host else host
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{shown}" + (f":{port}" if port is not None and port != default_port else "")


def normalize_handle(value: str) -> str:
    """A Bluesky handle as the server knows it: no leading @, lower case; ChannelInputError when it cannot be one."""
    handle = (value or "").strip().removeprefix("@").lower()
    if not _HANDLE.fullmatch(handle):
        raise ChannelInputError(
            f"{value.strip()[:100]!r} is not a Bluesky handle (a domain name like alice.bsky.social, without @)"
        )
    return handle


def check_app_password(value: str) -> str:
    password = value or ""
    if not APP_PASSWORD_LENGTH[0] <= len(password) <= APP_PASSWORD_LENGTH[1] or not password.isprintable():
        raise ChannelInputError(
            "the app password must be the one Bluesky shows under Settings > Privacy and security > App passwords"
        )
    return password


# ---- OAuth ----------------------------------------------------------------------------------------------------


def new_oauth_state() -> str:
    return secrets.token_urlsafe(32)


def state_hash(state: str) -> str:
    """What is stored of an OAuth state: the callback's `state` is its only credential, so only its hash is kept."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) for RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def callback_uri(public_base_url: str, platform: Platform) -> str:
    return f"{public_base_url.rstrip('/')}/api/v1/channels/callback/{platform.value}"


def mastodon_authorization_url(instance: str, client_id: str, redirect_uri: str, state: str, challenge: str) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": MASTODON_SCOPES,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{instance.rstrip('/')}/oauth/authorize?{query}"
