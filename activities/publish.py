"""Scheduling and publishing social posts, and the tenant's notices; a post is delivered at most once.

How publish_post keeps "never twice" (the states are social_post.publish_state):

    DRAFT/SCHEDULED --claim (committed before sending)--> PUBLISHING --send--> receipt: external_id stored
    (own commit), then PUBLISHED; nothing sent (refused, DNS, 408, 429): back to where it was and a
    retryable error (FAILED "not sent after N attempts" on the retry policy's last attempt); rejected
    (4xx): FAILED; outcome unknown (timeout after sending, broken connection, 5xx, 409, 2xx without an
    id): UNCONFIRMED.

An attempt that finds PUBLISHING left behind (a crash or timeout while sending) cannot know whether the
receiver got the post, so it marks it UNCONFIRMED instead of sending again; one that finds an external id
(a crash between storing it and marking PUBLISHED) only finishes the bookkeeping. UNCONFIRMED and FAILED
are final for the workflow: a person looks at the receiver and decides.

A tenant without a webhook gets FAILED with a message telling an admin to set one: nothing was sent, so
the post is safe to publish later, and FAILED keeps the pipeline from waiting on a configuration change.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import StageDeps
from activities.schedule import plan_publish_times
from models.db import Database
from models.enums import MediaKind, PublishState
from models.media_store import signed_media_url
from models.pipeline import (
    PublishOutcome,
    PublishPost,
    Schedule,
    ScheduledPost,
    ScheduleRequest,
    TenantNotice,
)
from models.settings import Settings
from models.tables import Company, MediaAsset, SocialPost, Tenant
from publishers.base import (
    Delivery,
    MediaRef,
    Publisher,
    PublishError,
    PublishNotSent,
    PublishOutcomeUnknown,
    PublishRejected,
)
from publishers.webhook import WebhookPublisher, send_notification

EARLIER_ATTEMPT_MESSAGE = "an earlier attempt may have delivered it; check the receiver before re-sending"
CHECK_RECEIVER = "check the receiver before re-sending"
NO_PUBLISHER_MESSAGE = (
    "no publisher is configured for this tenant; an admin sets a webhook with PUT /api/v1/tenant/webhook. "
    "The post was not sent."
)
# A receiver's Retry-After is honoured up to this; longer waits are the retry policy's business.
MAX_RETRY_AFTER = timedelta(hours=1)
# A notice is a courtesy: one short attempt, never long enough to hold up the pipeline.
NOTICE_TIMEOUT_SECONDS = 5.0

# What the attempt that sent a post may overwrite with what it learnt: its own claim, or the UNCONFIRMED a
# parallel attempt wrote on seeing that claim (only one claim can send, so the sender knows best).
HELD_BY_SENDER = (PublishState.PUBLISHING, PublishState.UNCONFIRMED)


def media_file_url(settings: Settings, asset_id: uuid.UUID, secret: str | None = None) -> str:
    """The asset's download URL; signed with the tenant's webhook secret so the receiver needs no API key."""
    if secret:
        return signed_media_url(settings.public_base_url, asset_id, secret)
    return f"{settings.public_base_url.rstrip('/')}/api/v1/media/{asset_id}/file"


def is_last_attempt() -> bool:
    """True when the retry policy allows no attempt after this one."""
    info = activity.info()
    limit = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return limit > 0 and info.attempt >= limit


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


class PostStore:
    """Conditional updates of a post's publish state, each committed on its own: a write names the states
    it may leave, so a stale attempt can never undo what a newer one recorded."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, post_id: uuid.UUID) -> SocialPost | None:
        async with self.db.session() as session:
            return await session.get(SocialPost, post_id)

    async def _update(self, post_id: uuid.UUID, conditions: list[Any], **values: Any) -> bool:
        statement = sa.update(SocialPost).where(col(SocialPost.id) == post_id, *conditions).values(**values)
        async with self.db.session() as session:
            result = await session.exec(statement)  # type: ignore[call-overload]
            await session.commit()
        return bool(result.rowcount)

    @staticmethod
    def _in(states: tuple[PublishState, ...]) -> Any:
        return col(SocialPost.publish_state).in_([s.value for s in states])

    async def claim(self, post_id: uuid.UUID, seen: PublishState) -> bool:
        """PUBLISHING, committed before anything is sent; false when another attempt moved the post first."""
        return await self._update(
            post_id,
            [col(SocialPost.publish_state) == seen.value, col(SocialPost.external_id).is_(None)],
            publish_state=PublishState.PUBLISHING.value,
            publish_error=None,
        )

    async def release(self, post_id: uuid.UUID, back_to: PublishState, reason: str) -> bool:
        """Undoes a claim when nothing reached the receiver."""
        return await self._update(
            post_id,
            [self._in((PublishState.PUBLISHING,)), col(SocialPost.external_id).is_(None)],
            publish_state=back_to.value,
            publish_error=reason,
        )

    async def record_receipt(self, post_id: uuid.UUID, external_id: str) -> bool:
        """The receiver's id, stored before anything else: from here on the post is never sent again.
        UNCONFIRMED may take it too (a parallel attempt gave up on this one): a receipt beats a guess."""
        return await self._update(
            post_id,
            [self._in((PublishState.PUBLISHING, PublishState.UNCONFIRMED)), col(SocialPost.external_id).is_(None)],
            external_id=external_id,
        )

    async def mark_published(self, post_id: uuid.UUID) -> bool:
        return await self._update(
            post_id,
            [col(SocialPost.external_id).is_not(None), col(SocialPost.publish_state) != PublishState.PUBLISHED.value],
            publish_state=PublishState.PUBLISHED.value,
            published_at=sa.func.coalesce(SocialPost.published_at, datetime.now(UTC)),
            publish_error=None,
        )

    async def mark(self, post_id: uuid.UUID, state: PublishState, reason: str, leaving: tuple[PublishState, ...]) -> bool:
        """FAILED or UNCONFIRMED with the reason, for a post without a receipt."""
        return await self._update(
            post_id,
            [self._in(leaving), col(SocialPost.external_id).is_(None)],
            publish_state=state.value,
            publish_error=reason,
        )


class PublishActivities:
    """schedule_posts is quick DB work (pipeline queue); publish_post and notify_tenant call out over HTTP (publish queue)."""

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps
        self.posts = PostStore(deps.db)

    # ---- scheduling ----------------------------------------------------------------------------------

    @activity.defn(name="schedule_posts")
    async def schedule_posts(self, request: ScheduleRequest) -> Schedule:
        """Gives each post without a publish time its planned one and SCHEDULED; a post that has a time keeps it."""
        post_ids = list(dict.fromkeys(request.social_post_ids))
        if not post_ids:
            return Schedule(posts=[])
        async with self.deps.db.session() as session:
            rows = await session.exec(
                select(SocialPost).where(col(SocialPost.id).in_(post_ids)).order_by(col(SocialPost.id)).with_for_update()
            )
            by_id = {post.id: post for post in rows.all()}
            missing = [str(i) for i in post_ids if i not in by_id]
            if missing:
                raise ApplicationError(f"social posts not found: {', '.join(missing)}", type="SocialPostNotFound", non_retryable=True)
            posts = [by_id[i] for i in post_ids]
            companies = {post.company_id for post in posts}
            if len(companies) != 1:
                raise ApplicationError("the posts of one schedule belong to one company", type="InvalidSchedule", non_retryable=True)
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
                raise ApplicationError(str(exc), type="InvalidSchedule", non_retryable=True) from exc
            for post, at in zip(posts, planned, strict=True):
                if post.publish_at is None:
                    post.publish_at = at
                if post.publish_state == PublishState.DRAFT:
                    post.publish_state = PublishState.SCHEDULED
                session.add(post)
            await session.commit()
        scheduled = [ScheduledPost(social_post_id=p.id, platform=p.platform, publish_at=_aware(p.publish_at)) for p in posts]
        activity.logger.info(
            "pipeline %s topic %d of %d: %s",
            request.pipeline_id,
            request.slot + 1,
            request.slots,
            ", ".join(f"{s.platform.value} at {s.publish_at.astimezone(zone):%Y-%m-%d %H:%M %Z}" for s in scheduled),
        )
        return Schedule(posts=scheduled)

    # ---- publishing ----------------------------------------------------------------------------------

    @activity.defn(name="publish_post")
    async def publish_post(self, request: PublishPost) -> PublishOutcome:
        """Delivers the post at most once; retryable only when nothing can have reached the receiver."""
        post = await self._load(request.social_post_id)
        settled = await self._settled(post)
        if settled is not None:
            return settled
        seen = PublishState(post.publish_state)

        async with self.deps.db.session() as session:
            tenant = await session.get(Tenant, post.tenant_id)
        publisher = self.publisher_for(tenant, post)
        if publisher is None:
            activity.logger.warning("post %s not published: tenant %s has no webhook", post.id, post.tenant_id)
            await self.posts.mark(post.id, PublishState.FAILED, NO_PUBLISHER_MESSAGE, (seen,))
            return outcome_of(await self._load(post.id))
        delivery = await self._delivery(post)

        if not await self.posts.claim(post.id, seen):
            # Another attempt moved the post between our read and our claim: report what it did.
            post = await self._load(post.id)
            settled = await self._settled(post)
            if settled is not None:
                return settled
            raise ApplicationError(f"post {post.id} changed while being claimed; trying again", type="PublishClaimLost")
        activity.logger.info("publishing post %s (%s) through %s", post.id, post.platform, publisher.name)

        try:
            receipt = await publisher.publish(delivery)
        except PublishNotSent as error:
            attempt = activity.info().attempt
            if is_last_attempt():
                # Nothing was ever sent: FAILED says so, and the post stays safe to publish later.
                reason = f"not sent after {attempt} attempts: {error.reason}"
                activity.logger.warning("post %s %s", post.id, reason)
                await self.posts.mark(post.id, PublishState.FAILED, reason, HELD_BY_SENDER)
                return outcome_of(await self._load(post.id))
            await self.posts.release(post.id, seen, f"not sent yet, will retry: {error.reason}")
            activity.logger.warning("post %s not sent (attempt %d), will retry: %s", post.id, attempt, error.reason)
            delay = None if error.retry_after is None else min(timedelta(seconds=error.retry_after), MAX_RETRY_AFTER)
            raise ApplicationError(error.reason, type=error.type_name, next_retry_delay=delay) from error
        except PublishRejected as error:
            activity.logger.warning("post %s rejected: %s", post.id, error.reason)
            await self.posts.mark(post.id, PublishState.FAILED, error.reason, HELD_BY_SENDER)
            return outcome_of(await self._load(post.id))
        except PublishOutcomeUnknown as error:
            activity.logger.warning("post %s may or may not have been published: %s", post.id, error.reason)
            await self.posts.mark(post.id, PublishState.UNCONFIRMED, f"{error.reason}; {CHECK_RECEIVER}", HELD_BY_SENDER)
            return outcome_of(await self._load(post.id))
        except Exception as error:
            # A fault inside a publisher: whether it sent anything cannot be known, so it is not sent again.
            activity.logger.exception("post %s: the %s publisher failed unexpectedly", post.id, publisher.name)
            reason = f"the {publisher.name} publisher failed unexpectedly ({type(error).__name__}); {CHECK_RECEIVER}"
            await self.posts.mark(post.id, PublishState.UNCONFIRMED, reason, HELD_BY_SENDER)
            return outcome_of(await self._load(post.id))

        # Logged first: if the database is unreachable now, the log still tells where the post went.
        activity.logger.info("post %s delivered: the receiver's id is %s", post.id, receipt.external_id)
        await self.posts.record_receipt(post.id, receipt.external_id)
        await self.posts.mark_published(post.id)
        return outcome_of(await self._load(post.id))

    def publisher_for(self, tenant: Tenant | None, post: SocialPost) -> Publisher | None:
        """The tenant's webhook for every platform, for now; platform APIs will be chosen here by `post.platform`."""
        if tenant is None or not tenant.webhook_url or not tenant.webhook_secret:
            return None
        return WebhookPublisher(tenant.webhook_url, tenant.webhook_secret, timeout_seconds=self.deps.settings.webhook_timeout_seconds)

    async def _load(self, post_id: uuid.UUID) -> SocialPost:
        post = await self.posts.load(post_id)
        if post is None:
            raise ApplicationError(f"social post {post_id} does not exist", type="SocialPostNotFound", non_retryable=True)
        return post

    async def _settled(self, post: SocialPost) -> PublishOutcome | None:
        """The outcome of a post that must not be sent (again), or None when it may be sent now."""
        state = PublishState(post.publish_state)
        if state == PublishState.PUBLISHED:
            return outcome_of(post)
        if post.external_id:
            # An earlier attempt stored the receipt and stopped before marking it: finish its bookkeeping.
            activity.logger.info("post %s already has the receiver's id %s; marking it published", post.id, post.external_id)
            await self.posts.mark_published(post.id)
            return outcome_of(await self._load(post.id))
        if state == PublishState.PUBLISHING:
            activity.logger.warning("post %s was left PUBLISHING by an earlier attempt; not sending it again", post.id)
            await self.posts.mark(post.id, PublishState.UNCONFIRMED, EARLIER_ATTEMPT_MESSAGE, (PublishState.PUBLISHING,))
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
                    alt_text=asset.alt_text,
                    width=asset.width,
                    height=asset.height,
                    duration_seconds=asset.duration_seconds,
                )
                for asset in assets
            ],
            is_sample=post.is_sample,
        )

    # ---- notices -------------------------------------------------------------------------------------

    @activity.defn(name="notify_tenant")
    async def notify_tenant(self, notice: TenantNotice) -> bool:
        """Logs the event and POSTs it signed to the tenant's webhook when one is set; true when delivered.
        A failed delivery is logged and answered with false, never raised: a notice must not stop a pipeline."""
        activity.logger.info("tenant %s: %s for pipeline %s: %s", notice.tenant_id, notice.event, notice.pipeline_id, notice.data)
        async with self.deps.db.session() as session:
            tenant = await session.get(Tenant, notice.tenant_id)
        if tenant is None:
            activity.logger.warning("tenant %s no longer exists; %s not delivered", notice.tenant_id, notice.event)
            return False
        if not tenant.webhook_url or not tenant.webhook_secret:
            return False
        info = activity.info()
        data = {**notice.data, "tenantId": str(notice.tenant_id), "pipelineId": str(notice.pipeline_id)}
        try:
            await send_notification(
                tenant.webhook_url,
                tenant.webhook_secret,
                notice.event,
                data,
                timeout_seconds=min(self.deps.settings.webhook_timeout_seconds, NOTICE_TIMEOUT_SECONDS),
                # The same for every attempt of this activity: a receiver can drop a repeated notice.
                idempotency_key=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}",
            )
        except PublishError as error:
            activity.logger.warning("tenant %s: %s not delivered to the webhook: %s", notice.tenant_id, notice.event, error)
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
