"""The one interface every publisher implements, what it delivers and receives, and its error taxonomy.

The error classes answer the question that matters for "never post twice": could the receiver have taken
the post? What the publish activity then does depends on whether the publisher is `repeatable` (its
receiver de-duplicates on the delivery id, so the same delivery may be sent again):

- `PublishNotSent`: the receiver never got it, or said it did not process it (refused connection, DNS, TLS,
  connect timeout; 408, 429). Sent again after a backoff, by any publisher.
- `PublishRejected`: the receiver said no for good (4xx but 408, 409, 429; a redirect), or the destination
  cannot be used (an unusable URL or secret, a non-public address). FAILED.
- `PublishOutcomeUnknown`: the receiver may have it (read timeout after sending, connection lost mid-request,
  5xx, 409). A repeatable publisher's delivery is sent again with the same id after a backoff; any other
  publisher's post is UNCONFIRMED and never re-sent.

5xx is "unknown" rather than "not sent" on purpose: a gateway's 502/504 or an app that crashed after
posting both answer 5xx after the work may have been done; only 408 and 429 say "not processed".
409 is "unknown" because a receiver may answer it for a delivery id it is processing already.
A 2xx is the receipt, with or without an id for the post.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from models.enums import MediaKind, Platform

PUBLISH_EVENT = "post.publish"
# A receiver's id for a post is stored (and shown to the tenant) only when it looks like an id: a short string
# of safe characters. Anything else, say an internal service's answer, is not kept.
EXTERNAL_ID_MAX_LENGTH = 128
EXTERNAL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=~-]*")


class Wire(BaseModel):
    """camelCase on the wire, like the HTTP API."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class MediaRef(Wire):
    """A media file of the post, by URL: the receiver downloads it (the bytes never travel in the body)."""

    id: uuid.UUID
    url: str
    kind: MediaKind
    mime_type: str
    alt_text: str = ""
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


class Delivery(Wire):
    """One social post as a publisher sends it."""

    social_post_id: uuid.UUID
    tenant_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    blog_post_id: uuid.UUID
    platform: Platform
    text: str
    hashtags: list[str] = Field(default_factory=list)
    publish_at: datetime | None = None
    media: list[MediaRef] = Field(default_factory=list)
    is_sample: bool = Field(
        default=False, description="made by the offline provider: sample content, not for a real audience"
    )
    blog_title: str = Field(default="", description="the blog post's title: a platform's link card shows it")
    blog_summary: str = Field(default="", description="the blog post's first lines, for a link card")


class Receipt(BaseModel):
    """The receiver took the post (a 2xx), and its id for it when it gave a usable one."""

    external_id: str | None = None
    url: str | None = Field(default=None, description="the post's address at the receiver, when it gave one")
    status_code: int | None = None
    note: str = Field(default="", description="for the log: why the receiver's id was not kept")


def usable_external_id(value: object) -> str | None:
    """`value` as a post id when it is a short string (or integer) of safe characters; else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if len(text) > EXTERNAL_ID_MAX_LENGTH or not EXTERNAL_ID_PATTERN.fullmatch(text):
        return None
    return text


# ---- Errors ----------------------------------------------------------------------------------------------


class PublishError(Exception):
    """A delivery did not end with a receipt. The subclass says whether the receiver may hold the post."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.reason = message
        self.status_code = status_code

    @property
    def type_name(self) -> str:
        """For `ApplicationError(type=...)`."""
        return type(self).__name__


class PublishNotSent(PublishError):
    """The receiver did not take the post: nothing reached it, or it answered 408/429. Safe to send again."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:g} s)"
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class PublishRejected(PublishError):
    """The receiver refused the post for good, or the destination is unusable: sending again cannot help."""


class PublishOutcomeUnknown(PublishError):
    """The request may have been processed: only a receiver that de-duplicates may be sent it again."""


# ---- The interface ---------------------------------------------------------------------------------------


class Publisher(ABC):
    """Delivers one social post. Sends at most once per call and never retries by itself: the caller
    owns retries, because only the caller knows whether an earlier attempt may already have delivered it."""

    name: ClassVar[str] = "base"
    # True when the receiver de-duplicates on the delivery id, so that a delivery whose outcome is unknown may
    # be sent again with the same id (the webhook: Standard Webhooks receivers de-duplicate on `webhook-id`).
    # False for a platform API that would post twice: an unknown outcome is then UNCONFIRMED, never re-sent.
    repeatable: ClassVar[bool] = False
    # True when the receiver can be asked whether it holds the post of a delivery (`find`): an unknown outcome
    # is then resolved by asking, not marked UNCONFIRMED (Bluesky: the record key is derived from the post).
    checkable: ClassVar[bool] = False

    async def find(self, delivery: Delivery, delivery_id: str) -> Receipt | None:
        """The receipt of the post when the receiver holds it under this delivery, None when it does not.
        Raises `PublishNotSent` (or `PublishOutcomeUnknown`) when the receiver cannot be asked now. Only a
        `checkable` publisher is asked."""
        raise NotImplementedError(f"the {self.name} publisher cannot be asked whether it holds a post")

    @abstractmethod
    async def publish(self, delivery: Delivery, delivery_id: str) -> Receipt:
        """The receiver's receipt, or a `PublishNotSent`, `PublishRejected` or `PublishOutcomeUnknown`.
        `delivery_id` is the same for every send of one post: the receiver's key for de-duplicating."""
