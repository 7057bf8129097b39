"""Connected channels in the worker: connecting accounts, checking them daily and before a post is due, and
choosing the channel a post goes out through.

Credentials live only in PostgreSQL, encrypted (models/credentials.py): the API writes what a person typed into
a `ChannelAttempt` row and starts a ChannelTaskWorkflow with the row's id; `run_channel_task` reads it, talks to
the platform, writes the channel and deletes the attempt. Nothing secret crosses Temporal or reaches a log.

A channel's state follows what the platform last said of its credentials: CONNECTED; NEEDS_RECONNECT when it
refused them; REVOKED when it said the access was revoked. A platform that could not be asked changes nothing
but `last_error`. On the first refusal of a trouble the tenant's webhook gets `channel.needs_reconnect` (once:
`notified_at` records it until the channel is connected again).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from temporalio import activity

from activities.deps import StageDeps
from activities.jobs import heartbeating
from models.channels import (
    ChannelAccount,
    ChannelHealthReport,
    ChannelHealthRequest,
    ChannelInputError,
    ChannelOutcome,
    ChannelState,
    ChannelTask,
    ChannelTaskKind,
    ChannelTaskResult,
    PlatformRules,
    callback_uri,
)
from models.credentials import CredentialsUnreadable, Vault, vault_for
from models.enums import Platform
from models.media_store import media_file
from models.names import Activity
from models.tables import Channel, ChannelAttempt, MediaAsset, OAuthClient, SocialPost, Tenant
from publishers import platforms
from publishers.base import MediaRef, PublishError, PublishRejected
from publishers.channel import ChannelCredentialsRejected, ChannelSession, ChannelUnavailable, Credentials
from publishers.platforms import PlatformOptions
from publishers.webhook import derived_webhook_id, send_notification

NEEDS_RECONNECT_EVENT = "channel.needs_reconnect"
NOTICE_TIMEOUT_SECONDS = 5.0
# The daily check asks this many platforms at once.
CHECK_CONCURRENCY = 4


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Trouble:
    """What a platform said of a channel's credentials, for its row and the tenant's notice."""

    state: ChannelState
    reason: str


def trouble_of(error: ChannelCredentialsRejected) -> Trouble:
    state = ChannelState.REVOKED if error.revoked else ChannelState.NEEDS_RECONNECT
    return Trouble(state, error.reason)


class ChannelStore:
    """The channel rows: every write is one statement, committed on its own."""

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps
        self._vault: Vault | None = None

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = vault_for(self.deps.settings)
        return self._vault

    @property
    def options(self) -> PlatformOptions:
        settings = self.deps.settings
        return PlatformOptions(
            timeout_seconds=settings.channel_timeout_seconds,
            allow_private_networks=settings.channels_allow_private_networks,
        )

    async def get(self, channel_id: uuid.UUID) -> Channel | None:
        async with self.deps.db.session() as session:
            return await session.get(Channel, channel_id)

    async def for_company(self, company_id: uuid.UUID, platform: Platform) -> Channel | None:
        async with self.deps.db.session() as session:
            rows = await session.exec(
                select(Channel).where(col(Channel.company_id) == company_id, col(Channel.platform) == platform.value)
            )
            return rows.first()

    async def _update(self, channel_id: uuid.UUID, *conditions: Any, **values: Any) -> bool:
        statement = sa.update(Channel).where(col(Channel.id) == channel_id, *conditions).values(**values)
        async with self.deps.db.session() as session:
            result = await session.exec(statement)  # type: ignore[call-overload]
            await session.commit()
        return bool(result.rowcount)

    def session_for(self, channel: Channel) -> ChannelSession:
        """The channel's credentials in memory; a renewed session (Bluesky) is written back encrypted at once."""
        credentials = self.vault.open(channel.credentials)
        channel_id = channel.id

        async def save(renewed: Credentials) -> None:
            await self._update(channel_id, credentials=self.vault.seal(renewed), updated_at=now())

        rules = PlatformRules.model_validate(channel.rules) if channel.rules else None
        return ChannelSession(credentials=credentials, save=save, read_media=self.read_media, rules=rules)

    async def read_media(self, ref: MediaRef) -> bytes:
        """The file of a post's media; PublishRejected when it is gone (nothing was posted, and waiting will not
        bring it back: a person regenerates the image or publishes without it)."""
        async with self.deps.db.session() as session:
            asset = await session.get(MediaAsset, ref.id)
        if asset is None:
            raise PublishRejected(f"the post's media {ref.id} no longer exists; nothing was posted")
        try:
            path = media_file(self.deps.settings, asset)
            return await asyncio.to_thread(path.read_bytes)
        except (OSError, ValueError) as exc:
            raise PublishRejected(
                f"the post's {asset.kind} file cannot be read ({type(exc).__name__}); nothing was posted"
            ) from None

    async def record_ok(self, channel: Channel, account: ChannelAccount) -> None:
        await self._update(
            channel.id,
            state=ChannelState.CONNECTED.value,
            account_id=account.id,
            handle=account.handle,
            display_name=account.display_name,
            account_url=account.url,
            last_checked_at=now(),
            last_error=None,
            notified_at=None,
            updated_at=now(),
        )

    async def record_trouble(self, channel: Channel, trouble: Trouble) -> None:
        """The channel needs a person; the tenant hears of it once a trouble."""
        await self._update(
            channel.id, state=trouble.state.value, last_checked_at=now(), last_error=trouble.reason, updated_at=now()
        )
        await self.notify(channel, trouble)

    async def record_unavailable(self, channel: Channel, reason: str) -> None:
        await self._update(channel.id, last_error=f"could not be checked: {reason}", updated_at=now())

    async def notify(self, channel: Channel, trouble: Trouble) -> bool:
        """`channel.needs_reconnect` to the tenant's webhook, once a trouble (the first writer of notified_at)."""
        statement = (
            sa.update(Channel)
            .where(col(Channel.id) == channel.id, col(Channel.notified_at).is_(None))
            .values(notified_at=now())
            .returning(col(Channel.notified_at))
        )
        async with self.deps.db.session() as session:
            first = (await session.exec(statement)).first()  # type: ignore[call-overload]
            await session.commit()
            tenant = await session.get(Tenant, channel.tenant_id)
        if first is None or tenant is None or not tenant.webhook_url or not tenant.webhook_secret:
            return False
        settings = self.deps.settings
        studio = f"{settings.public_base_url.rstrip('/')}/studio/companies/{channel.company_id}/channels"
        data = {
            "tenantId": str(channel.tenant_id),
            "companyId": str(channel.company_id),
            "channelId": str(channel.id),
            "platform": channel.platform,
            "account": channel.handle,
            "state": trouble.state.value,
            "reason": trouble.reason,
            "reconnectUrl": studio,
        }
        try:
            await send_notification(
                tenant.webhook_url,
                tenant.webhook_secret,
                NEEDS_RECONNECT_EVENT,
                data,
                timeout_seconds=min(settings.webhook_timeout_seconds, NOTICE_TIMEOUT_SECONDS),
                webhook_id=derived_webhook_id(f"{NEEDS_RECONNECT_EVENT}/{channel.id}/{first[0].isoformat()}"),
                allow_private_networks=settings.webhook_allow_private_networks,
            )
        except PublishError as error:
            activity.logger.warning("channel %s: %s not delivered: %s", channel.id, NEEDS_RECONNECT_EVENT, error)
            return False
        return True

    async def check(self, channel: Channel) -> ChannelTaskResult:
        """Asks the platform whether the credentials still work; posts nothing."""
        try:
            session = self.session_for(channel)
            account = await platforms.check(Platform(channel.platform), channel.service, session, self.options)
        except CredentialsUnreadable as exc:
            await self.record_trouble(channel, Trouble(ChannelState.NEEDS_RECONNECT, str(exc)))
            return ChannelTaskResult(outcome=ChannelOutcome.REJECTED, message=str(exc), channel_id=channel.id)
        except ChannelCredentialsRejected as exc:
            trouble = trouble_of(exc)
            await self.record_trouble(channel, trouble)
            return ChannelTaskResult(
                outcome=ChannelOutcome.REJECTED, message=exc.reason, channel_id=channel.id, state=trouble.state
            )
        except ChannelUnavailable as exc:
            await self.record_unavailable(channel, exc.reason)
            return ChannelTaskResult(
                outcome=ChannelOutcome.UNAVAILABLE,
                message=exc.reason,
                channel_id=channel.id,
                state=ChannelState(channel.state),
                retry_after=exc.retry_after,
            )
        except ChannelInputError as exc:
            await self.record_unavailable(channel, str(exc))
            return ChannelTaskResult(
                outcome=ChannelOutcome.INVALID,
                message=str(exc),
                channel_id=channel.id,
                state=ChannelState(channel.state),
            )
        await self.record_ok(channel, account)
        return ChannelTaskResult(outcome=ChannelOutcome.OK, channel_id=channel.id, state=ChannelState.CONNECTED)


class ChannelActivities:
    """run_channel_task (the API waits for it) and check_channels (daily, and before a post is due); both on the
    publish queue, beside the publishers."""

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps
        self.channels = ChannelStore(deps)

    @activity.defn(name=Activity.RUN_CHANNEL_TASK)
    async def run_channel_task(self, task: ChannelTask) -> ChannelTaskResult:
        async with heartbeating():
            if task.kind == ChannelTaskKind.CONNECT:
                return await self._connect(task)
            if task.kind == ChannelTaskKind.AUTHORIZE:
                return await self._authorize(task)
            channel = await self.channels.get(task.channel_id) if task.channel_id else None
            if channel is None or channel.tenant_id != task.tenant_id:
                return ChannelTaskResult(outcome=ChannelOutcome.GONE, message="the channel does not exist")
            if task.kind == ChannelTaskKind.CHECK:
                return await self.channels.check(channel)
            return await self._disconnect(channel)

    # ---- connecting ----------------------------------------------------------------------------------

    async def _attempt(self, task: ChannelTask) -> ChannelAttempt | None:
        if task.attempt_id is None:
            return None
        async with self.deps.db.session() as session:
            attempt = await session.get(ChannelAttempt, task.attempt_id)
        if attempt is None or attempt.tenant_id != task.tenant_id or attempt.expires_at <= now():
            return None
        return attempt

    async def _forget(self, attempt_id: uuid.UUID) -> None:
        async with self.deps.db.session() as session:
            await session.exec(sa.delete(ChannelAttempt).where(col(ChannelAttempt.id) == attempt_id))  # type: ignore[call-overload]
            await session.commit()

    async def _connect(self, task: ChannelTask) -> ChannelTaskResult:
        attempt = await self._attempt(task)
        if attempt is None:
            return ChannelTaskResult(
                outcome=ChannelOutcome.GONE, message="the connection attempt expired or was already used; start again"
            )
        platform = Platform(attempt.platform)
        store = self.channels
        try:
            secrets = store.vault.open(attempt.secrets)
            if platform == Platform.MASTODON:
                client = await self._oauth_client(platform, attempt.service)
                if client is None or not secrets.get("code"):
                    return ChannelTaskResult(outcome=ChannelOutcome.GONE, message="the sign-in was not finished")
                account, credentials, rules = await platforms.finish_oauth(
                    platform,
                    attempt.service,
                    client,
                    callback_uri(self.deps.settings.public_base_url, platform),
                    secrets["code"],
                    secrets["codeVerifier"],
                    store.options,
                )
            else:
                account, credentials, rules = await platforms.connect_with_password(
                    platform, attempt.service, secrets["handle"], secrets["appPassword"], store.options
                )
        except CredentialsUnreadable as exc:
            await self._forget(attempt.id)
            return ChannelTaskResult(outcome=ChannelOutcome.GONE, message=str(exc))
        except ChannelCredentialsRejected as exc:
            await self._forget(attempt.id)
            return ChannelTaskResult(outcome=ChannelOutcome.REJECTED, message=exc.reason)
        except ChannelUnavailable as exc:
            await self._forget(attempt.id)
            return ChannelTaskResult(
                outcome=ChannelOutcome.UNAVAILABLE, message=exc.reason, retry_after=exc.retry_after
            )
        except ValueError as exc:  # ChannelInputError, or a handle or address a publisher refused
            await self._forget(attempt.id)
            return ChannelTaskResult(outcome=ChannelOutcome.INVALID, message=str(exc))
        channel_id = await self._keep(attempt, account, credentials, rules)
        await self._forget(attempt.id)
        activity.logger.info(
            "company %s: %s channel %s connected as %s", attempt.company_id, platform.value, channel_id, account.handle
        )
        return ChannelTaskResult(outcome=ChannelOutcome.OK, channel_id=channel_id, state=ChannelState.CONNECTED)

    async def _keep(
        self, attempt: ChannelAttempt, account: ChannelAccount, credentials: Credentials, rules: PlatformRules
    ) -> uuid.UUID:
        """The company's channel for the platform, new or connected again (one per company and platform)."""
        values = {
            "tenant_id": attempt.tenant_id,
            "company_id": attempt.company_id,
            "platform": attempt.platform,
            "state": ChannelState.CONNECTED.value,
            "service": attempt.service,
            "account_id": account.id,
            "handle": account.handle,
            "display_name": account.display_name,
            "account_url": account.url,
            "credentials": self.channels.vault.seal(credentials),
            "rules": rules.model_dump(mode="json", by_alias=True),
            "last_checked_at": now(),
            "last_error": None,
            "notified_at": None,
            "connected_by_key_id": attempt.created_by_key_id,
            "updated_at": now(),
        }
        statement = (
            insert(Channel)
            .values(id=uuid.uuid4(), created_at=now(), **values)
            .on_conflict_do_update(
                constraint="uq_channel_company_platform",
                set_={name: value for name, value in values.items() if name not in ("tenant_id", "company_id")},
            )
            .returning(col(Channel.id))
        )
        async with self.deps.db.session() as session:
            row = (await session.exec(statement)).one()  # type: ignore[call-overload]
            await session.commit()
        return uuid.UUID(str(row[0]))

    async def _oauth_client(self, platform: Platform, service: str) -> Credentials | None:
        redirect = callback_uri(self.deps.settings.public_base_url, platform)
        async with self.deps.db.session() as session:
            rows = await session.exec(
                select(OAuthClient).where(
                    col(OAuthClient.platform) == platform.value,
                    col(OAuthClient.service) == service,
                    col(OAuthClient.redirect_uri) == redirect,
                )
            )
            client = rows.first()
        if client is None:
            return None
        return {"clientId": client.client_id, **self.channels.vault.open(client.secrets)}

    async def _authorize(self, task: ChannelTask) -> ChannelTaskResult:
        """The instance's client id for this deployment's app, registering the app on first use."""
        attempt = await self._attempt(task)
        if attempt is None:
            return ChannelTaskResult(outcome=ChannelOutcome.GONE, message="the connection attempt expired; start again")
        platform = Platform(attempt.platform)
        try:
            known = await self._oauth_client(platform, attempt.service)
            if known is not None:
                return ChannelTaskResult(outcome=ChannelOutcome.OK, client_id=known["clientId"])
            redirect = callback_uri(self.deps.settings.public_base_url, platform)
            registered = await platforms.register_oauth_client(
                platform, attempt.service, redirect, self.channels.options
            )
        except ChannelUnavailable as exc:
            await self._forget(attempt.id)
            return ChannelTaskResult(
                outcome=ChannelOutcome.UNAVAILABLE, message=exc.reason, retry_after=exc.retry_after
            )
        except (ValueError, CredentialsUnreadable) as exc:  # ChannelInputError and InstanceRefused are ValueErrors
            await self._forget(attempt.id)
            return ChannelTaskResult(outcome=ChannelOutcome.INVALID, message=str(exc))
        statement = (
            insert(OAuthClient)
            .values(
                id=uuid.uuid4(),
                platform=platform.value,
                service=attempt.service,
                redirect_uri=redirect,
                client_id=registered["clientId"],
                secrets=self.channels.vault.seal({"clientSecret": registered["clientSecret"]}),
                created_at=now(),
            )
            .on_conflict_do_nothing(constraint="uq_oauth_client")
        )
        async with self.deps.db.session() as session:
            await session.exec(statement)  # type: ignore[call-overload]
            await session.commit()
        # Two sign-ins at once register twice; both use the app that was stored first.
        kept = await self._oauth_client(platform, attempt.service)
        client_id = kept["clientId"] if kept else registered["clientId"]
        return ChannelTaskResult(outcome=ChannelOutcome.OK, client_id=client_id)

    async def _disconnect(self, channel: Channel) -> ChannelTaskResult:
        revoked = False
        try:
            session = self.channels.session_for(channel)
            revoked = await platforms.disconnect(
                Platform(channel.platform), channel.service, session, self.channels.options
            )
        except CredentialsUnreadable:
            pass  # nothing to give back that this deployment can read
        async with self.deps.db.session() as db_session:
            await db_session.exec(sa.delete(Channel).where(col(Channel.id) == channel.id))  # type: ignore[call-overload]
            await db_session.commit()
        activity.logger.info("channel %s (%s) disconnected; token revoked: %s", channel.id, channel.platform, revoked)
        return ChannelTaskResult(
            outcome=ChannelOutcome.OK,
            channel_id=channel.id,
            message="the access token was revoked" if revoked else "",
        )

    # ---- health --------------------------------------------------------------------------------------

    @activity.defn(name=Activity.CHECK_CHANNELS)
    async def check_channels(self, request: ChannelHealthRequest) -> ChannelHealthReport:
        """Every channel (the daily check, which also clears expired attempts), or the channel of one post that is
        soon due. A platform that cannot be asked is counted, never raised: the next check comes anyway."""
        async with heartbeating():
            if request.social_post_id is not None:
                channels = await self._channel_of_post(request.social_post_id)
            else:
                await self._clear_expired_attempts()
                async with self.deps.db.session() as session:
                    rows = await session.exec(
                        select(Channel).order_by(col(Channel.last_checked_at).asc().nulls_first(), col(Channel.id))
                    )
                    channels = list(rows.all())
            report = ChannelHealthReport()
            gate = asyncio.Semaphore(CHECK_CONCURRENCY)

            async def one(channel: Channel) -> None:
                async with gate:
                    result = await self.channels.check(channel)
                report.checked += 1
                if result.outcome == ChannelOutcome.OK:
                    report.connected += 1
                elif result.outcome == ChannelOutcome.REJECTED:
                    report.needs_reconnect += 1
                else:
                    report.unavailable += 1

            await asyncio.gather(*(one(channel) for channel in channels))
        activity.logger.info("channel check: %s", report.model_dump())
        return report

    async def _channel_of_post(self, post_id: uuid.UUID) -> list[Channel]:
        async with self.deps.db.session() as session:
            post = await session.get(SocialPost, post_id)
        if post is None:
            return []
        channel = await self.channels.for_company(post.company_id, Platform(post.platform))
        return [channel] if channel is not None else []

    async def _clear_expired_attempts(self) -> None:
        cutoff = now() - timedelta(minutes=1)
        async with self.deps.db.session() as session:
            await session.exec(sa.delete(ChannelAttempt).where(col(ChannelAttempt.expires_at) < cutoff))  # type: ignore[call-overload]
            await session.commit()
