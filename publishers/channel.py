"""What a platform publisher needs from a company's connected channel, and what it tells about the account.

A channel is one connected account on one platform for one company. Its credentials are a small dict of
strings (an app password and a session on Bluesky, an access token on Mastodon) that the channel layer keeps
encrypted in PostgreSQL (`models.credentials`); a publisher sees them only in memory, through a
`ChannelSession`, and hands back renewed ones through `ChannelSession.save` (a refreshed Bluesky session), never
through a return value that could reach a log or a Temporal payload.

Errors a platform module raises besides the publish taxonomy of `publishers.base`:

- `ChannelCredentialsRejected`: the platform refused the credentials (wrong app password, revoked or expired
  token that cannot be refreshed). The channel needs reconnecting by a person; nothing was posted. It is a
  `PublishNotSent`, so the publish activity keeps the post waiting instead of failing it.
- `ChannelUnavailable`: the platform could not be asked now (connection refused, timeout, 5xx, rate limited).
  Says nothing about the credentials: the channel keeps its state and is checked again later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from publishers.base import MediaRef, PublishNotSent, Wire

# The credentials of one channel: names and values are the platform module's own, e.g. Bluesky
# {"service", "handle", "appPassword", "did", "session"}, Mastodon {"instance", "accessToken"}.
Credentials = dict[str, str]
SaveCredentials = Callable[[Credentials], Awaitable[None]]
ReadMedia = Callable[[MediaRef], Awaitable[bytes]]


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


@dataclass
class ChannelSession:
    """One channel's credentials in memory, for one publish or check, and how to keep what changed."""

    credentials: Credentials
    save: SaveCredentials
    read_media: ReadMedia
    # The channel's own rules (Mastodon reads them from the instance at connect time); None: the platform's.
    rules: PlatformRules | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ChannelCredentialsRejected(PublishNotSent):
    """The platform refused the channel's credentials: a person reconnects it. Nothing was posted."""


class ChannelUnavailable(Exception):
    """The platform could not be asked now; the credentials may be fine. Checked again later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = message
        self.retry_after = retry_after


__all__ = [
    "ChannelAccount",
    "ChannelCredentialsRejected",
    "ChannelSession",
    "ChannelUnavailable",
    "Credentials",
    "PlatformRules",
    "ReadMedia",
    "SaveCredentials",
]
