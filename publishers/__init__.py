"""Delivering scheduled social posts: one publisher interface, the signed webhook first, platform APIs later."""

from publishers.base import (
    PUBLISH_EVENT,
    Delivery,
    MediaRef,
    Publisher,
    PublishError,
    PublishNotSent,
    PublishOutcomeUnknown,
    PublishRejected,
    Receipt,
)
from publishers.webhook import WebhookPublisher, send_notification, sign, verify

__all__ = [
    "PUBLISH_EVENT",
    "Delivery",
    "MediaRef",
    "PublishError",
    "PublishNotSent",
    "PublishOutcomeUnknown",
    "PublishRejected",
    "Publisher",
    "Receipt",
    "WebhookPublisher",
    "send_notification",
    "sign",
    "verify",
]
