"""The one interface every publisher implements, what it delivers and receives, and its error taxonomy.

The error classes answer the only question that matters for "never post twice": could the receiver
have taken the post?

| error | the receiver... | the post becomes | retry? |
| --- | --- | --- | --- |
| `PublishNotSent` | never got it, or said it did not process it (refused connection, DNS, TLS, connect timeout; 408, 429) | back to SCHEDULED | yes, safe |
| `PublishRejected` | said no for good (4xx but 408, 409, 429; a redirect; an unusable URL) | FAILED | no: it would say no again |
| `PublishOutcomeUnknown` | may have it (read timeout after sending, connection lost mid-request, 5xx, 409, a 2xx without an id) | UNCONFIRMED | no: a person checks the receiver first |

5xx is "unknown" rather than "not sent" on purpose: a gateway's 502/504 or an app that crashed after
posting both answer 5xx after the work may have been done; only 408 and 429 say "not processed".
409 is "unknown" because a receiver that dedupes on our `Idempotency-Key` answers it for a post it
already holds.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from models.enums import MediaKind, Platform

PUBLISH_EVENT = "post.publish"


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

    social_post_id: uuid.UUID = Field(description="also the idempotency key: one post, one delivery")
    tenant_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    blog_post_id: uuid.UUID
    platform: Platform
    text: str
    hashtags: list[str] = Field(default_factory=list)
    publish_at: datetime | None = None
    media: list[MediaRef] = Field(default_factory=list)
    is_sample: bool = Field(default=False, description="made by the offline provider: sample content, not for a real audience")


class Receipt(BaseModel):
    """The receiver took the post and told us its id for it."""

    external_id: str
    url: str | None = Field(default=None, description="the post's address at the receiver, when it gave one")
    status_code: int | None = None


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
    """The request may have been processed: a person must check the receiver before anything is re-sent."""


# ---- The interface ---------------------------------------------------------------------------------------


class Publisher(ABC):
    """Delivers one social post. Sends at most once per call and never retries by itself: the caller
    owns retries, because only the caller knows whether an earlier attempt may already have delivered it."""

    name: ClassVar[str] = "base"

    @abstractmethod
    async def publish(self, delivery: Delivery) -> Receipt:
        """The receiver's receipt, or a `PublishNotSent`, `PublishRejected` or `PublishOutcomeUnknown`."""
