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

from models.channels import ChannelAccount, PlatformRules
from publishers.base import MediaRef, PublishNotSent

# The credentials of one channel: names and values are the platform module's own, e.g. Bluesky
# {"service", "handle", "appPassword", "did", "session"}, Mastodon {"instance", "accessToken"}.
Credentials = dict[str, str]
SaveCredentials = Callable[[Credentials], Awaitable[None]]
ReadMedia = Callable[[MediaRef], Awaitable[bytes]]


@dataclass
class ChannelSession:
    """One channel's credentials in memory, for one publish or check, and how to keep what changed."""

    credentials: Credentials = field(repr=False)  # never printed: it holds tokens
    save: SaveCredentials
    read_media: ReadMedia
    # The channel's own rules (Mastodon reads them from the instance at connect time); None: the platform's.
    rules: PlatformRules | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ChannelCredentialsRejected(PublishNotSent):
    """The platform refused the channel's credentials: a person reconnects it. Nothing was posted.
    `revoked` when the platform said the access itself was revoked (not merely expired or changed)."""

    def __init__(self, message: str, *, status_code: int | None = None, revoked: bool = False) -> None:
        super().__init__(message, status_code=status_code)
        self.revoked = revoked


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
