"""Scheduling and publishing social posts, and the tenant's notices; a post is delivered, never posted twice.

How publish_post delivers a post (the states are social_post.publish_state; every write is a conditional update
committed on its own, and only one attempt at a time works on a post: it holds a lock for the post in
PostgreSQL, released when it ends or its worker dies, and a second attempt finds it held and comes back later):

    DRAFT/SCHEDULED --claim--> PUBLISHING --send--> 2xx: PUBLISHED, with the receiver's id when it gave a
    usable one (external_id, else NULL), in one update

The claim is committed before anything is sent. The first claim fixes the delivery id (social_post.delivery_id,
the Standard Webhooks `webhook-id`) and every claim counts a send (social_post.delivery_attempts). A send that
was not acknowledged:

- outcome unknown (timeout after sending, dropped connection, 5xx, 409): a repeatable publisher's post stays
  PUBLISHING and is sent again with the same id after a backoff; after MAX_SENDS sends it is UNCONFIRMED.
  Any other publisher's post is UNCONFIRMED at once and never re-sent.
- nothing sent (refused connection, DNS, TLS, 408, 429): back to SCHEDULED (or still PUBLISHING when an earlier
  send may have arrived), sent again after a backoff; after MAX_SENDS sends FAILED "not sent after N attempts"
  (UNCONFIRMED when an earlier send may have arrived).
- rejected (4xx but 408/409/429, a redirect, an unusable URL or secret, a non-public address): FAILED.

A post found PUBLISHING at the start of an attempt was being sent when its worker died: a repeatable
publisher sends it again with its stored delivery id (the receiver de-duplicates); any other publisher's post,
and one claimed before posts had delivery ids, becomes UNCONFIRMED. UNCONFIRMED and FAILED are final for the
workflow: a person looks at the receiver.

Budgets are counted here, in the database, never with Temporal's attempt number: the workflow retries
publish_post as often as it takes, so that lost workers never use up a budget. publish_post answers a
`PublishOutcome` for a final state and raises a retryable ApplicationError whose next_retry_delay is the
backoff (5 s x 2^(sends - 1), at most 5 min, longer when the receiver's Retry-After says so) otherwise.

A tenant without a webhook gets FAILED with a message telling an admin to set one: nothing was sent, so
the post is safe to publish later, and FAILED keeps the pipeline from waiting on a configuration change.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import sqlalchemy as sa
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import ChannelStore, Trouble, trouble_of
from activities.deps import StageDeps
from activities.jobs import heartbeating
from activities.schedule import plan_publish_times
from models.channels import ChannelInputError, ChannelState
from models.credentials import CredentialsUnreadable
from models.db import Database
from models.enums import MediaKind, Platform, PublishState
from models.media_store import signed_media_url
from models.names import ErrorType
from models.pipeline import (
    PublishAgain,
    PublishOutcome,
    PublishPost,
    Rescheduled,
    ReschedulePost,
    Schedule,
    ScheduledPost,
    ScheduleRequest,
    TenantNotice,
)
from models.settings import Settings
from models.tables import BlogPost, Channel, Company, MediaAsset, SocialPost, Tenant
from publishers import platforms
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
from publishers.channel import ChannelCredentialsRejected, ChannelUnavailable
from publishers.webhook import WebhookPublisher, derived_webhook_id, new_webhook_id, send_notification

EARLIER_ATTEMPT_MESSAGE = "an earlier attempt may have delivered it; check the receiver before re-sending"
CHECK_RECEIVER = "check the receiver before re-sending"
NO_PUBLISHER_MESSAGE = (
    "connect a {platform} channel: the company has no {label} channel and the tenant has no webhook "
    "(POST /api/v1/companies/{company}/channels, or the studio's Channels page; or an admin sets a webhook with "
    "PUT /api/v1/tenant/webhook). The post was not sent."
)
# Sends of one post in all (the first and the re-sends), then it is UNCONFIRMED (or FAILED if none can have
# arrived). With the backoff below the last one goes about ten minutes after the first.
MAX_SENDS = 8
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(minutes=5)
# A receiver's Retry-After is honoured up to this.
MAX_RETRY_AFTER = timedelta(hours=1)
# When another attempt holds the post (it is sending it now), look again after this.
HELD_ELSEWHERE_DELAY = timedelta(seconds=5)
# A post whose channel needs reconnecting looks again this often (a reconnect is seen within it).
CHANNEL_WAIT_DELAY = timedelta(minutes=1)
# The link card's description: the blog post's first words.
SUMMARY_CHARS = 300
# A notice is a courtesy: one short attempt, never long enough to hold up the pipeline.
NOTICE_TIMEOUT_SECONDS = 5.0

# What the attempt that sent a post may overwrite with what it learnt: its own claim, or an UNCONFIRMED written
# meanwhile (a receipt beats a guess).
HELD_BY_SENDER = (PublishState.PUBLISHING, PublishState.UNCONFIRMED)


def media_file_url(settings: Settings, asset_id: uuid.UUID, secret: str | None = None) -> str:
    """The asset's download URL; signed with the tenant's webhook secret so the receiver needs no API key."""
    if secret:
        return signed_media_url(settings.public_base_url, asset_id, secret)
    return f"{settings.public_base_url.rstrip('/')}/api/v1/media/{asset_id}/file"


def backoff(sends: int, retry_after: float | None = None) -> timedelta:
    """How long to wait after the `sends`-th send before the next: 5 s x 2^(sends - 1), at most 5 min, or the
    receiver's Retry-After when that is longer (up to an hour)."""
    delay = min(BACKOFF_BASE * 2 ** max(sends - 1, 0), BACKOFF_CAP)
    if retry_after is not None:
        delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return delay


def outcome_of(post: SocialPost) -> PublishOutcome:
    return PublishOutcome(
        social_post_id=post.id,
        state=PublishState(post.publish_state),
        external_id=post.external_id,
        message=post.publish_error or "",
    )


def company_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        activity.logger.warning("company time zone %r is unknown; scheduling in UTC", name)
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class Claim:
    """What a claim fixed: the delivery id every send of the post carries, and which send this is."""

    delivery_id: str
    sends: int


class PostStore:
    """Conditional updates of a post's publish state, each committed on its own: a write names the states
    it may leave, so a stale attempt can never undo what a newer one recorded."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, post_id: uuid.UUID) -> SocialPost | None:
        async with self.db.session() as session:
            return await session.get(SocialPost, post_id)

    @contextlib.asynccontextmanager
    async def held(self, post_id: uuid.UUID) -> AsyncIterator[bool]:
        """True while this attempt alone works on the post; False when another attempt is at it now.

        A session-level advisory lock on a connection of its own (outside the pool, which it must not starve
        during a send): PostgreSQL releases it when the connection closes, also when the worker dies, so a
        post found PUBLISHING by the holder was left by an attempt that is gone, not one still sending."""
        key = (f"publish_post:{post_id}",)
        async with await psycopg.AsyncConnection.connect(self._conninfo(), autocommit=True, connect_timeout=10) as conn:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key)).fetchone()
            held = bool(row and row[0])
            try:
                yield held
            finally:
                if held:
                    # At once: the server frees a closed connection's locks a moment later, and a retry may be
                    # quicker than that. If this fails the closing connection frees it all the same.
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)

    def _conninfo(self) -> str:
        """The engine's database as a libpq connection string (a socket directory with spaces included)."""
        url = self.db.engine.url
        parts: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "dbname": url.database,
            **{name: value if isinstance(value, str) else value[-1] for name, value in url.query.items()},
        }
        return psycopg.conninfo.make_conninfo(**{name: value for name, value in parts.items() if value is not None})

    async def _update(self, post_id: uuid.UUID, conditions: list[Any], **values: Any) -> bool:
        statement = sa.update(SocialPost).where(col(SocialPost.id) == post_id, *conditions).values(**values)
        async with self.db.session() as session:
            result = await session.exec(statement)  # type: ignore[call-overload]
            await session.commit()
        return bool(result.rowcount)

    @staticmethod
    def _in(states: tuple[PublishState, ...]) -> Any:
        return col(SocialPost.publish_state).in_([s.value for s in states])

    async def move(self, post_id: uuid.UUID, publish_at: datetime) -> bool:
        """A waiting post's new time."""
        return await self._update(
            post_id, [self._in((PublishState.DRAFT, PublishState.SCHEDULED))], publish_at=publish_at
        )

    async def reopen(self, post_id: uuid.UUID) -> bool:
        """UNCONFIRMED or FAILED back to SCHEDULED with a fresh send budget, keeping the delivery id."""
        return await self._update(
            post_id,
            [self._in((PublishState.UNCONFIRMED, PublishState.FAILED))],
            publish_state=PublishState.SCHEDULED.value,
            delivery_attempts=0,
            publish_error=None,
        )

    async def claim(self, post: SocialPost, delivery_id: str) -> Claim | None:
        """PUBLISHING and one more send, committed before anything is sent; the post's delivery id is
        `delivery_id` unless an earlier claim fixed one. None when the post changed since it was read."""
        statement = (
            sa.update(SocialPost)
            .where(
                col(SocialPost.id) == post.id,
                col(SocialPost.publish_state) == PublishState(post.publish_state).value,
                col(SocialPost.delivery_attempts) == post.delivery_attempts,
                col(SocialPost.external_id).is_(None),
            )
            .values(
                publish_state=PublishState.PUBLISHING.value,
                delivery_id=sa.func.coalesce(SocialPost.delivery_id, delivery_id),
                delivery_attempts=SocialPost.delivery_attempts + 1,
            )
            .returning(col(SocialPost.delivery_id), col(SocialPost.delivery_attempts))
        )
        async with self.db.session() as session:
            row = (await session.exec(statement)).first()  # type: ignore[call-overload]
            await session.commit()
        return None if row is None else Claim(delivery_id=str(row[0]), sends=int(row[1]))

    async def release(self, post_id: uuid.UUID, back_to: PublishState, reason: str) -> bool:
        """Undoes a claim when nothing can have reached the receiver (the delivery id and the count stay)."""
        return await self._update(
            post_id,
            [self._in((PublishState.PUBLISHING,)), col(SocialPost.external_id).is_(None)],
            publish_state=back_to.value,
            publish_error=reason,
        )

    async def note(self, post_id: uuid.UUID, reason: str) -> bool:
        """Why a post that has not gone yet waits (its state unchanged), for the studio and the API."""
        waiting = (PublishState.DRAFT, PublishState.SCHEDULED, PublishState.PUBLISHING)
        return await self._update(
            post_id, [self._in(waiting), col(SocialPost.external_id).is_(None)], publish_error=reason
        )

    async def pending(self, post_id: uuid.UUID, reason: str) -> bool:
        """Still PUBLISHING (the receiver may hold it) and to be sent again; the reason says why and when."""
        return await self._update(
            post_id,
            [self._in((PublishState.PUBLISHING,)), col(SocialPost.external_id).is_(None)],
            publish_error=reason,
        )

    async def mark_published(self, post_id: uuid.UUID, external_id: str | None) -> bool:
        """PUBLISHED, the receiver's id (an id stored earlier is kept) and published_at, in one update."""
        return await self._update(
            post_id,
            [self._in(HELD_BY_SENDER)],
            publish_state=PublishState.PUBLISHED.value,
            external_id=sa.func.coalesce(SocialPost.external_id, external_id),
            published_at=sa.func.coalesce(SocialPost.published_at, datetime.now(UTC)),
            publish_error=None,
        )

    async def mark(
        self, post_id: uuid.UUID, state: PublishState, reason: str, leaving: tuple[PublishState, ...]
    ) -> bool:
        """FAILED or UNCONFIRMED with the reason, for a post without a receipt."""
        return await self._update(
            post_id,
            [self._in(leaving), col(SocialPost.external_id).is_(None)],
            publish_state=state.value,
            publish_error=reason,
        )


class PublishActivities:
    """schedule_posts is quick DB work (pipeline queue); publish_post and notify_tenant call out over HTTP
    (publish queue)."""

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps
        self.posts = PostStore(deps.db)
        self.channels = ChannelStore(deps)

    # ---- scheduling ----------------------------------------------------------------------------------

    @activity.defn(name="schedule_posts")
    async def schedule_posts(self, request: ScheduleRequest) -> Schedule:
        """Gives each post without a publish time its planned one and SCHEDULED; a post that has a time keeps it."""
        post_ids = list(dict.fromkeys(request.social_post_ids))
        if not post_ids:
            return Schedule(posts=[])
        async with self.deps.db.session() as session:
            rows = await session.exec(
                select(SocialPost)
                .where(col(SocialPost.id).in_(post_ids))
                .order_by(col(SocialPost.id))
                .with_for_update()
            )
            by_id = {post.id: post for post in rows.all()}
            missing = [str(i) for i in post_ids if i not in by_id]
            if missing:
                raise ApplicationError(
                    f"social posts not found: {', '.join(missing)}",
                    type=ErrorType.SOCIAL_POST_NOT_FOUND,
                    non_retryable=True,
                )
            posts = [by_id[i] for i in post_ids]
            companies = {post.company_id for post in posts}
            if len(companies) != 1:
                raise ApplicationError(
                    "the posts of one schedule belong to one company",
                    type=ErrorType.INVALID_SCHEDULE,
                    non_retryable=True,
                )
            company = await session.get(Company, companies.pop())
            zone = company_zone(company.timezone if company else None)
            try:
                planned = plan_publish_times(
                    [post.platform for post in posts],
                    slot=request.slot,
                    slots=request.slots,
                    month=request.month,
                    tz=zone,
                    not_before=request.not_before,
                )
            except ValueError as exc:
                raise ApplicationError(str(exc), type=ErrorType.INVALID_SCHEDULE, non_retryable=True) from exc
            for post, at in zip(posts, planned, strict=True):
                if post.publish_at is None:
                    post.publish_at = at
                if post.publish_state == PublishState.DRAFT:
                    post.publish_state = PublishState.SCHEDULED
                session.add(post)
            await session.commit()
        scheduled = [
            ScheduledPost(
                social_post_id=p.id,
                platform=p.platform,
                publish_at=_aware(p.publish_at),
                local_time=f"{_aware(p.publish_at).astimezone(zone):%Y-%m-%d %H:%M} {zone.key}",
            )
            for p in posts
        ]
        activity.logger.info(
            "pipeline %s topic %d of %d: %s",
            request.pipeline_id,
            request.slot + 1,
            request.slots,
            ", ".join(f"{s.platform.value} at {s.publish_at.astimezone(zone):%Y-%m-%d %H:%M %Z}" for s in scheduled),
        )
        return Schedule(posts=scheduled)

    @activity.defn(name="reschedule_post")
    async def reschedule_post(self, request: ReschedulePost) -> Rescheduled:
        """Records the time a person moved a waiting post to (its branch's timer already follows it). A post
        that is no longer waiting keeps its time: the workflow refuses moving a post once it is being sent."""
        post = await self._load(request.social_post_id)
        await self.posts.move(post.id, request.publish_at)
        async with self.deps.db.session() as session:
            company = await session.get(Company, post.company_id)
        zone = company_zone(company.timezone if company else None)
        local = f"{_aware(request.publish_at).astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"
        return Rescheduled(social_post_id=post.id, publish_at=request.publish_at, local_time=local)

    @activity.defn(name="reopen_post")
    async def reopen_post(self, request: PublishAgain) -> None:
        """A post that ended UNCONFIRMED or FAILED, checked by a person, becomes SCHEDULED again with a fresh
        send budget (its delivery id stays: a receiver that has it after all de-duplicates it). Any other state
        is left alone, so that a retried attempt after the post was sent changes nothing."""
        await self.posts.reopen(request.social_post_id)

    # ---- publishing ----------------------------------------------------------------------------------

    @activity.defn(name="publish_post")
    async def publish_post(self, request: PublishPost) -> PublishOutcome:
        """Delivers the post: a final outcome, or a retryable error to be called again after the backoff."""
        async with heartbeating(), self.posts.held(request.social_post_id) as held:
            if not held:
                raise ApplicationError(
                    f"post {request.social_post_id} is being sent by another attempt; looking again shortly",
                    type=ErrorType.PUBLISH_IN_PROGRESS,
                    next_retry_delay=HELD_ELSEWHERE_DELAY,
                )
            return await self._publish(request.social_post_id)

    async def _publish(self, post_id: uuid.UUID) -> PublishOutcome:
        post = await self._load(post_id)
        settled = await self._settled(post)
        if settled is not None:
            return settled
        seen = PublishState(post.publish_state)
        # PUBLISHING now means an attempt died while sending: the receiver may hold the post.
        maybe_received = seen == PublishState.PUBLISHING

        async with self.deps.db.session() as session:
            tenant = await session.get(Tenant, post.tenant_id)
        channel = await self.channels.for_company(post.company_id, Platform(post.platform))
        publisher = await self._channel_publisher(channel, post) if channel else self.publisher_for(tenant, post)
        if publisher is None:
            activity.logger.warning(
                "post %s not published: no %s channel and no webhook for tenant %s",
                post.id,
                post.platform,
                post.tenant_id,
            )
            if maybe_received:
                reason = f"the tenant's webhook was removed while the post was being sent; {EARLIER_ATTEMPT_MESSAGE}"
                return await self._final(post.id, PublishState.UNCONFIRMED, reason, (seen,))
            platform = Platform(post.platform)
            reason = NO_PUBLISHER_MESSAGE.format(platform=platform.value, label=platform.label, company=post.company_id)
            return await self._final(post.id, PublishState.FAILED, reason, (seen,))
        if maybe_received and publisher.checkable and post.delivery_id:
            # The receiver can say whether the earlier attempt's post arrived: asked, not guessed.
            found = await self._ask(publisher, await self._delivery(post), post.delivery_id)
            if found is not None:
                return await self._published(post.id, found, post.delivery_attempts)
        # Without a delivery id it was claimed by the version before Standard Webhooks, whose send a receiver
        # cannot recognise again: that one is not repeated either.
        if maybe_received and (not publisher.repeatable or not post.delivery_id):
            activity.logger.warning("post %s was left PUBLISHING by an earlier attempt; not sending it again", post.id)
            return await self._final(post.id, PublishState.UNCONFIRMED, EARLIER_ATTEMPT_MESSAGE, (seen,))
        if post.delivery_attempts >= MAX_SENDS:
            # The last send's outcome was never recorded (its worker died): the budget is spent all the same.
            if maybe_received:
                reason = f"no acknowledgement after {post.delivery_attempts} sends; {CHECK_RECEIVER}"
                return await self._final(post.id, PublishState.UNCONFIRMED, reason, (seen,))
            reason = f"not sent after {post.delivery_attempts} attempts"
            return await self._final(post.id, PublishState.FAILED, reason, (seen,))
        delivery = await self._delivery(post)

        claim = await self.posts.claim(post, new_webhook_id())
        if claim is None:
            # Something else moved the post between our read and our claim: report what it did.
            post = await self._load(post.id)
            settled = await self._settled(post)
            if settled is not None:
                return settled
            raise ApplicationError(
                f"post {post.id} changed while being claimed; trying again", type=ErrorType.PUBLISH_CLAIM_LOST
            )
        activity.logger.info(
            "publishing post %s (%s) through %s: send %d of at most %d, delivery id %s",
            post.id,
            post.platform,
            publisher.name,
            claim.sends,
            MAX_SENDS,
            claim.delivery_id,
        )

        try:
            receipt = await publisher.publish(delivery, claim.delivery_id)
        except ChannelCredentialsRejected as error:
            # Nothing was posted; the channel needs a person. The post waits for it, it does not fail.
            if channel is not None:
                await self.channels.record_trouble(channel, trouble_of(error))
            if maybe_received:
                await self.posts.pending(post.id, self._waiting_reason(channel, error.reason))
            else:
                await self.posts.release(post.id, seen, self._waiting_reason(channel, error.reason))
            raise self._wait_for(channel, error.reason) from None
        except PublishNotSent as error:
            return await self._not_acknowledged(post.id, seen, claim, error, maybe_received=maybe_received)
        except PublishRejected as error:
            activity.logger.warning("post %s rejected: %s", post.id, error.reason)
            return await self._final(post.id, PublishState.FAILED, error.reason, HELD_BY_SENDER)
        except PublishOutcomeUnknown as error:
            if publisher.checkable:
                found = await self._ask(publisher, delivery, claim.delivery_id)
                if found is not None:
                    return await self._published(post.id, found, claim.sends)
            if not publisher.repeatable:
                activity.logger.warning("post %s may or may not have been published: %s", post.id, error.reason)
                reason = f"{error.reason}; {CHECK_RECEIVER}"
                return await self._final(post.id, PublishState.UNCONFIRMED, reason, HELD_BY_SENDER)
            return await self._not_acknowledged(post.id, seen, claim, error, maybe_received=True)
        except Exception as error:
            # A fault inside a publisher, not an answer: whether it sent anything cannot be known, and sending
            # again through the same fault would not tell either.
            activity.logger.exception("post %s: the %s publisher failed unexpectedly", post.id, publisher.name)
            reason = f"the {publisher.name} publisher failed unexpectedly ({type(error).__name__}); {CHECK_RECEIVER}"
            return await self._final(post.id, PublishState.UNCONFIRMED, reason, HELD_BY_SENDER)

        return await self._published(post.id, receipt, claim.sends)

    async def _published(self, post_id: uuid.UUID, receipt: Receipt, sends: int) -> PublishOutcome:
        external_id = usable_external_id(receipt.external_id)
        # Logged first: if the database is unreachable now, the log still tells where the post went.
        activity.logger.info(
            "post %s delivered (send %d, %s): the receiver's id is %s%s",
            post_id,
            sends,
            receipt.status_code,
            external_id,
            f"; {receipt.note}" if receipt.note else "",
        )
        await self.posts.mark_published(post_id, external_id)
        return outcome_of(await self._load(post_id))

    async def _ask(self, publisher: Publisher, delivery: Delivery, delivery_id: str) -> Receipt | None:
        """The receiver's receipt when it holds the post; None when it does not or cannot say now."""
        try:
            return await publisher.find(delivery, delivery_id)
        except PublishError as error:
            activity.logger.warning("post %s: could not ask %s: %s", delivery.social_post_id, publisher.name, error)
            return None

    # ---- channels ------------------------------------------------------------------------------------

    def _waiting_reason(self, channel: Channel | None, why: str) -> str:
        if channel is None:
            return f"waiting: {why}"
        label = Platform(channel.platform).label
        return (
            f"waiting for the {label} channel ({channel.handle}) to be connected again: {why}. The post goes out "
            "once it is reconnected (studio: Channels), or a supervisor decides otherwise"
        )

    def _wait_for(self, channel: Channel | None, why: str) -> ApplicationError:
        return ApplicationError(
            self._waiting_reason(channel, why),
            type=ErrorType.CHANNEL_NEEDS_RECONNECT,
            next_retry_delay=CHANNEL_WAIT_DELAY,
        )

    async def _channel_publisher(self, channel: Channel, post: SocialPost) -> Publisher:
        """The channel's publisher; a channel that needs a person makes the post wait (a retryable error), one
        whose address cannot be reached now makes it try again later."""
        state = ChannelState(channel.state)
        if state != ChannelState.CONNECTED:
            reason = channel.last_error or state.label
            await self.posts.note(post.id, self._waiting_reason(channel, reason))
            raise self._wait_for(channel, reason)
        try:
            session = self.channels.session_for(channel)
            return await platforms.publisher_for(
                Platform(channel.platform), channel.service, session, self.channels.options
            )
        except CredentialsUnreadable as exc:
            await self.channels.record_trouble(channel, Trouble(ChannelState.NEEDS_RECONNECT, str(exc)))
            await self.posts.note(post.id, self._waiting_reason(channel, str(exc)))
            raise self._wait_for(channel, str(exc)) from None
        except ChannelUnavailable as exc:
            await self.posts.note(post.id, f"not sent yet, will retry: {exc.reason}")
            raise ApplicationError(
                exc.reason, type=PublishNotSent.__name__, next_retry_delay=backoff(1, exc.retry_after)
            ) from None
        except ChannelInputError as exc:
            # The address is not allowed (any more): the channel needs a person as much as a refused password.
            await self.channels.record_trouble(channel, Trouble(ChannelState.NEEDS_RECONNECT, str(exc)))
            await self.posts.note(post.id, self._waiting_reason(channel, str(exc)))
            raise self._wait_for(channel, str(exc)) from None

    async def _not_acknowledged(
        self, post_id: uuid.UUID, seen: PublishState, claim: Claim, error: PublishError, *, maybe_received: bool
    ) -> PublishOutcome:
        """After a send without an answer that settles it: a final state once the budget is spent, else the
        post waits (PUBLISHING when the receiver may hold it, else where it was) and the activity is retried
        after the backoff."""
        sends = claim.sends
        if sends >= MAX_SENDS:
            if maybe_received:
                reason = f"no acknowledgement after {sends} sends (the last: {error.reason}); {CHECK_RECEIVER}"
                activity.logger.warning("post %s %s", post_id, reason)
                return await self._final(post_id, PublishState.UNCONFIRMED, reason, HELD_BY_SENDER)
            # Nothing was ever sent: FAILED says so, and the post stays safe to publish later.
            reason = f"not sent after {sends} attempts: {error.reason}"
            activity.logger.warning("post %s %s", post_id, reason)
            return await self._final(post_id, PublishState.FAILED, reason, HELD_BY_SENDER)
        delay = backoff(sends, getattr(error, "retry_after", None))
        when = f"again in {delay.total_seconds():g} s (send {sends} of at most {MAX_SENDS})"
        if maybe_received:
            await self.posts.pending(post_id, f"not acknowledged yet, sending {when} with the same id: {error.reason}")
        else:
            await self.posts.release(post_id, seen, f"not sent yet, will retry: {error.reason}; trying {when}")
        activity.logger.warning("post %s not acknowledged, trying %s: %s", post_id, when, error.reason)
        raise ApplicationError(error.reason, type=error.type_name, next_retry_delay=delay)

    async def _final(
        self, post_id: uuid.UUID, state: PublishState, reason: str, leaving: tuple[PublishState, ...]
    ) -> PublishOutcome:
        await self.posts.mark(post_id, state, reason, leaving)
        return outcome_of(await self._load(post_id))

    def publisher_for(self, tenant: Tenant | None, post: SocialPost) -> Publisher | None:
        """The tenant's webhook, for a post whose company has no channel for its platform (None without one)."""
        if tenant is None or not tenant.webhook_url or not tenant.webhook_secret:
            return None
        settings = self.deps.settings
        return WebhookPublisher(
            tenant.webhook_url,
            tenant.webhook_secret,
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private_networks=settings.webhook_allow_private_networks,
        )

    async def _load(self, post_id: uuid.UUID) -> SocialPost:
        post = await self.posts.load(post_id)
        if post is None:
            raise ApplicationError(
                f"social post {post_id} does not exist", type=ErrorType.SOCIAL_POST_NOT_FOUND, non_retryable=True
            )
        return post

    async def _settled(self, post: SocialPost) -> PublishOutcome | None:
        """The outcome of a post that must not be sent (again), or None when it may be sent now."""
        state = PublishState(post.publish_state)
        if state == PublishState.PUBLISHED:
            return outcome_of(post)
        if post.external_id:
            # A receipt stored by an earlier version, which recorded it before marking PUBLISHED: finish that.
            activity.logger.info(
                "post %s already has the receiver's id %s; marking it published", post.id, post.external_id
            )
            await self.posts.mark_published(post.id, None)
            return outcome_of(await self._load(post.id))
        if state in (PublishState.UNCONFIRMED, PublishState.FAILED):
            activity.logger.info("post %s is %s; not sending it: %s", post.id, state.value, post.publish_error)
            return outcome_of(post)
        return None

    async def _delivery(self, post: SocialPost) -> Delivery:
        async with self.deps.db.session() as session:
            company = await session.get(Company, post.company_id)
            tenant = await session.get(Tenant, post.tenant_id)
            own = await session.exec(
                select(MediaAsset).where(col(MediaAsset.social_post_id) == post.id).order_by(col(MediaAsset.created_at))
            )
            # The blog post's video goes with each of its social posts; the receiver picks what a platform takes.
            videos = await session.exec(
                select(MediaAsset)
                .where(
                    col(MediaAsset.blog_post_id) == post.blog_post_id,
                    col(MediaAsset.social_post_id).is_(None),
                    col(MediaAsset.kind) == MediaKind.VIDEO.value,
                )
                .order_by(col(MediaAsset.created_at))
            )
            assets = [*own.all(), *videos.all()]
            blog = await session.get(BlogPost, post.blog_post_id)
        return Delivery(
            social_post_id=post.id,
            tenant_id=post.tenant_id,
            company_id=post.company_id,
            company_name=company.name if company else "",
            blog_post_id=post.blog_post_id,
            platform=post.platform,
            text=post.text,
            hashtags=list(post.hashtags or []),
            publish_at=_aware(post.publish_at) if post.publish_at else None,
            media=[
                MediaRef(
                    id=asset.id,
                    url=media_file_url(self.deps.settings, asset.id, tenant.webhook_secret if tenant else None),
                    kind=asset.kind,
                    mime_type=asset.mime_type,
                    # Alt text as the image model was asked for it when the stage wrote none.
                    alt_text=asset.alt_text or asset.prompt[:1000],
                    width=asset.width,
                    height=asset.height,
                    duration_seconds=asset.duration_seconds,
                )
                for asset in assets
            ],
            is_sample=post.is_sample,
            blog_title=blog.title if blog else "",
            blog_summary=(blog.meta_description if blog else "")[:SUMMARY_CHARS],
        )

    # ---- notices -------------------------------------------------------------------------------------

    @activity.defn(name="notify_tenant")
    async def notify_tenant(self, notice: TenantNotice) -> bool:
        """Logs the event and POSTs it signed to the tenant's webhook when one is set; true when delivered.
        A failed delivery is logged and answered with false, never raised: a notice must not stop a pipeline."""
        activity.logger.info(
            "tenant %s: %s for pipeline %s: %s", notice.tenant_id, notice.event, notice.pipeline_id, notice.data
        )
        async with self.deps.db.session() as session:
            tenant = await session.get(Tenant, notice.tenant_id)
        if tenant is None:
            activity.logger.warning("tenant %s no longer exists; %s not delivered", notice.tenant_id, notice.event)
            return False
        if not tenant.webhook_url or not tenant.webhook_secret:
            return False
        info = activity.info()
        data = {**notice.data, "tenantId": str(notice.tenant_id), "pipelineId": str(notice.pipeline_id)}
        settings = self.deps.settings
        try:
            # Heartbeats while it waits (name resolution, connecting, the answer): a lost worker is noticed soon.
            async with heartbeating():
                await send_notification(
                    tenant.webhook_url,
                    tenant.webhook_secret,
                    notice.event,
                    data,
                    timeout_seconds=min(settings.webhook_timeout_seconds, NOTICE_TIMEOUT_SECONDS),
                    # The same for every attempt of this activity: a receiver drops a repeated notice by its id.
                    webhook_id=derived_webhook_id(f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"),
                    allow_private_networks=settings.webhook_allow_private_networks,
                )
        except PublishError as error:
            activity.logger.warning(
                "tenant %s: %s not delivered to the webhook: %s", notice.tenant_id, notice.event, error
            )
            return False
        except Exception:
            activity.logger.exception("tenant %s: %s not delivered to the webhook", notice.tenant_id, notice.event)
            return False
        activity.logger.info("tenant %s: %s delivered to the webhook", notice.tenant_id, notice.event)
        return True


def _aware(value: datetime | None) -> datetime:
    """A timestamptz read back is aware already; this only guards the type for mypy and odd drivers."""
    if value is None:
        raise ValueError("expected a timestamp")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
