"""Channels for the API and the studio: connect (an app password, or an OAuth sign-in that the platform calls back),
list, test, disconnect. The API never talks to a platform: what a person typed is written encrypted into a
ChannelAttempt row and a ChannelTaskWorkflow (ids only) does the talking on the publish queue, while the request
waits for its answer."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from pydantic import Field, SecretStr
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from api.deps import Principal
from api.errors import Problem
from models.channels import (
    AUTHORIZATION_MINUTES,
    BLUESKY_DEFAULT_SERVICE,
    OAUTH_PLATFORMS,
    PASSWORD_PLATFORMS,
    ChannelAccount,
    ChannelInputError,
    ChannelOutcome,
    ChannelPublic,
    ChannelsPublic,
    ChannelTask,
    ChannelTaskKind,
    ChannelTaskResult,
    PlatformRules,
    Wire,
    callback_uri,
    check_app_password,
    mastodon_authorization_url,
    new_oauth_state,
    normalize_handle,
    normalize_service,
    pkce_pair,
    state_hash,
)
from models.credentials import Vault, vault_for
from models.enums import Platform
from models.names import TENANT_ID
from models.settings import Settings
from models.tables import Channel, ChannelAttempt, Company
from workflows.channels import ChannelTaskWorkflow
from workflows.policies import CHANNEL_TASK_EXECUTION_TIMEOUT, PIPELINE_QUEUE

logger = logging.getLogger(__name__)

# How long a request waits for the platform's answer (a worker's request times out sooner).
TASK_WAIT_SECONDS = 40.0
START_WAIT_SECONDS = 5.0
RETRY_AFTER = {"Retry-After": "5"}
# Passwords an attempt keeps until a worker has used them (a crash in between leaves it until the daily sweep).
PASSWORD_ATTEMPT_MINUTES = 5


# ---- what the API takes and answers -----------------------------------------------------------------------------


class ChannelCreate(Wire):
    """Connect an account that logs in with an app password (Bluesky)."""

    platform: Platform = Field(description="bluesky (OAuth platforms start at POST .../channels/connect)")
    handle: str = Field(min_length=1, max_length=253, examples=["alice.bsky.social"])
    app_password: SecretStr = Field(
        min_length=1, max_length=200, description="an app password made in Bluesky's settings (never shown again)"
    )
    service: str | None = Field(
        default=None, max_length=500, description=f"the PDS address; {BLUESKY_DEFAULT_SERVICE} when left out"
    )


class ChannelConnect(Wire):
    """Start an OAuth sign-in (Mastodon: on which instance)."""

    platform: Platform
    instance: str | None = Field(default=None, max_length=500, examples=["mastodon.social"])


class ChannelAuthorization(Wire):
    authorization_url: str = Field(description="send the person here; the platform calls back when they agree")
    expires_at: datetime


class ChannelTestResult(Wire):
    ok: bool
    message: str = ""
    channel: ChannelPublic


def get_vault(request: Request) -> Vault:
    """The deployment's credential vault, made once per process."""
    vault: Vault | None = getattr(request.app.state, "vault", None)
    if vault is None:
        vault = vault_for(request.app.state.settings)
        request.app.state.vault = vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


# ---- reading ----------------------------------------------------------------------------------------------------


def channel_public(channel: Channel) -> ChannelPublic:
    return ChannelPublic(
        id=channel.id,
        company_id=channel.company_id,
        platform=Platform(channel.platform),
        state=channel.state,
        account=ChannelAccount(
            id=channel.account_id, handle=channel.handle, display_name=channel.display_name, url=channel.account_url
        ),
        service=channel.service,
        rules=PlatformRules.model_validate(channel.rules) if channel.rules else None,
        last_checked_at=channel.last_checked_at,
        last_error=channel.last_error,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


async def company_channels(session: AsyncSession, company_id: uuid.UUID) -> list[Channel]:
    rows = await session.exec(
        select(Channel).where(col(Channel.company_id) == company_id).order_by(col(Channel.platform))
    )
    return list(rows.all())


async def list_channels(session: AsyncSession, company_id: uuid.UUID) -> ChannelsPublic:
    channels = [channel_public(channel) for channel in await company_channels(session, company_id)]
    return ChannelsPublic(data=channels, count=len(channels))


async def channel_rules(session: AsyncSession, company_id: uuid.UUID, platform: Platform) -> PlatformRules | None:
    """How the company's channel for the platform counts a post, when it has its own rules (a Mastodon instance's
    limit); None: the platform's."""
    if platform != Platform.MASTODON:
        return None
    rows = await session.exec(
        select(Channel.rules).where(col(Channel.company_id) == company_id, col(Channel.platform) == platform.value)
    )
    found = rows.first()
    try:
        return PlatformRules.model_validate(found) if found else None
    except ValueError:
        return None  # rules this version cannot read: the platform's


async def channel_of_tenant(session: AsyncSession, tenant_id: uuid.UUID, channel_id: uuid.UUID) -> Channel:
    channel = await session.get(Channel, channel_id)
    # Another tenant's channel is a 404, like one that does not exist.
    if channel is None or channel.tenant_id != tenant_id:
        raise Problem(404, "the channel was not found")
    await session.refresh(channel)
    return channel


# ---- connecting -------------------------------------------------------------------------------------------------


def unprocessable(field: str, message: str) -> Problem:
    return Problem(
        422,
        f"the request is not valid: {field}",
        title="Unprocessable Content",
        errors=[{"field": field, "message": message, "type": "value_error"}],
    )


async def new_password_attempt(
    session: AsyncSession, settings: Settings, vault: Vault, principal: Principal, company: Company, body: ChannelCreate
) -> ChannelAttempt:
    """The app password, encrypted, for a worker to log in with; 422 for input that cannot be used."""
    if body.platform not in PASSWORD_PLATFORMS:
        if body.platform in OAUTH_PLATFORMS:
            raise unprocessable(
                "body.platform",
                f"{body.platform.label} connects through its own sign-in: POST "
                f'/api/v1/companies/{company.id}/channels/connect with {{"platform": "{body.platform.value}"}}',
            )
        raise unprocessable("body.platform", f"{body.platform.label} channels are not supported yet")
    try:
        handle = normalize_handle(body.handle)
        password = check_app_password(body.app_password.get_secret_value())
    except ChannelInputError as exc:
        field = "body.handle" if "handle" in str(exc) else "body.appPassword"
        raise unprocessable(field, str(exc)) from None
    try:
        service = normalize_service(
            body.service or BLUESKY_DEFAULT_SERVICE,
            allow_private_networks=settings.channels_allow_private_networks,
            what="the PDS address",
        )
    except ChannelInputError as exc:
        raise unprocessable("body.service", str(exc)) from None
    attempt = ChannelAttempt(
        tenant_id=principal.tenant_id,
        company_id=company.id,
        platform=body.platform,
        service=service,
        secrets=vault.seal({"handle": handle, "appPassword": password}),
        created_by_key_id=principal.key_id,
        expires_at=datetime.now(UTC) + timedelta(minutes=PASSWORD_ATTEMPT_MINUTES),
    )
    session.add(attempt)
    await session.commit()
    return attempt


async def new_oauth_attempt(
    session: AsyncSession,
    settings: Settings,
    vault: Vault,
    principal: Principal,
    company: Company,
    body: ChannelConnect,
) -> tuple[ChannelAttempt, str, str]:
    """The sign-in's attempt, its `state` (shown once, stored hashed) and its PKCE challenge."""
    if body.platform not in OAUTH_PLATFORMS:
        if body.platform in PASSWORD_PLATFORMS:
            raise unprocessable(
                "body.platform",
                f"{body.platform.label} connects with a handle and an app password: POST "
                f"/api/v1/companies/{company.id}/channels",
            )
        raise unprocessable("body.platform", f"{body.platform.label} channels are not supported yet")
    if not body.instance:
        raise unprocessable("body.instance", "the Mastodon instance is missing (like mastodon.social)")
    try:
        instance = normalize_service(
            body.instance, allow_private_networks=settings.channels_allow_private_networks, what="the instance"
        )
    except ChannelInputError as exc:
        raise unprocessable("body.instance", str(exc)) from None
    state = new_oauth_state()
    verifier, challenge = pkce_pair()
    attempt = ChannelAttempt(
        tenant_id=principal.tenant_id,
        company_id=company.id,
        platform=body.platform,
        service=instance,
        state_hash=state_hash(state),
        secrets=vault.seal({"codeVerifier": verifier}),
        created_by_key_id=principal.key_id,
        expires_at=datetime.now(UTC) + timedelta(minutes=AUTHORIZATION_MINUTES),
    )
    session.add(attempt)
    await session.commit()
    return attempt, state, challenge


def authorization_url(settings: Settings, attempt: ChannelAttempt, client_id: str, state: str, challenge: str) -> str:
    platform = Platform(attempt.platform)
    redirect = callback_uri(settings.public_base_url, platform)
    return mastodon_authorization_url(attempt.service, client_id, redirect, state, challenge)


async def attempt_for_callback(
    session: AsyncSession, vault: Vault, platform: Platform, state: str, code: str
) -> ChannelAttempt:
    """The sign-in the platform calls back for, its code kept (encrypted) and its state used up; 400 when the
    state matches no sign-in in progress (expired, used, forged)."""
    expired = Problem(
        400, f"this {platform.label} sign-in expired or was already used; connect the channel again from the start"
    )
    if not state or len(state) > 200:
        raise expired
    # The state is used up by this one statement: a second callback with it finds nothing.
    statement = (
        sa.update(ChannelAttempt)
        .where(
            col(ChannelAttempt.state_hash) == state_hash(state),
            col(ChannelAttempt.platform) == platform.value,
            col(ChannelAttempt.expires_at) > datetime.now(UTC),
        )
        .values(state_hash=None)
        .returning(col(ChannelAttempt.id))
    )
    row = (await session.exec(statement)).first()  # type: ignore[call-overload]
    if row is None:
        await session.rollback()
        raise expired
    attempt = await session.get(ChannelAttempt, row[0])
    if attempt is None:
        raise expired
    if code:
        secrets = vault.open(attempt.secrets)
        attempt.secrets = vault.seal({**secrets, "code": code})
        session.add(attempt)
    await session.commit()
    return attempt


async def forget_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> None:
    await session.exec(sa.delete(ChannelAttempt).where(col(ChannelAttempt.id) == attempt_id))  # type: ignore[call-overload]
    await session.commit()


# ---- the worker's answer ------------------------------------------------------------------------------------------


async def run_channel_task(temporal: Client, settings: Settings, task: ChannelTask) -> ChannelTaskResult:
    """Starts the ChannelTaskWorkflow and waits for its answer; 503 engine away, 504 no worker in time."""
    try:
        handle: WorkflowHandle[ChannelTaskWorkflow, ChannelTaskResult] = await asyncio.wait_for(
            temporal.start_workflow(
                ChannelTaskWorkflow.run,
                task,
                id=f"channel-{task.kind.value}-{uuid.uuid4()}",
                task_queue=PIPELINE_QUEUE + settings.task_queue_suffix,
                execution_timeout=CHANNEL_TASK_EXECUTION_TIMEOUT,
                search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, str(task.tenant_id))]),
            ),
            timeout=START_WAIT_SECONDS,
        )
    except (RPCError, TimeoutError) as exc:
        logger.warning("channel %s not started: the workflow engine is not reachable (%s)", task.kind.value, exc)
        raise Problem(503, "the workflow engine is not reachable; try again shortly", headers=RETRY_AFTER) from None
    try:
        return await asyncio.wait_for(handle.result(), timeout=TASK_WAIT_SECONDS)
    except TimeoutError:
        raise Problem(
            504, f"no worker answered within {TASK_WAIT_SECONDS:g} s; try again shortly", headers=RETRY_AFTER
        ) from None
    except WorkflowFailureError as failure:
        logger.warning("channel %s failed: %s", task.kind.value, failure.cause or failure)
        raise Problem(
            502, "the channel operation failed in the worker; try again shortly", title="Bad Gateway"
        ) from None
    except RPCError:
        raise Problem(503, "the workflow engine is not reachable; try again shortly", headers=RETRY_AFTER) from None


async def connect_password_channel(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    vault: Vault,
    principal: Principal,
    company: Company,
    body: ChannelCreate,
) -> Channel:
    """The company's channel, connected with an app password by a worker; a Problem otherwise (422 with `errors`
    for input, 422 for refused credentials, 5xx for a platform or engine away). The password is not kept past
    this call, whatever happened to the worker."""
    attempt = await new_password_attempt(session, settings, vault, principal, company, body)
    try:
        task = ChannelTask(kind=ChannelTaskKind.CONNECT, tenant_id=principal.tenant_id, attempt_id=attempt.id)
        result = await run_channel_task(temporal, settings, task)
    finally:
        await forget_attempt(session, attempt.id)
    if result.outcome != ChannelOutcome.OK or result.channel_id is None:
        raise problem_for(result, body.platform)
    return await channel_of_tenant(session, principal.tenant_id, result.channel_id)


async def start_sign_in(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    vault: Vault,
    principal: Principal,
    company: Company,
    body: ChannelConnect,
) -> ChannelAuthorization:
    """Where to send the person to sign in at the platform (its app registered first when needed); a Problem
    otherwise, leaving no attempt behind."""
    attempt, state, challenge = await new_oauth_attempt(session, settings, vault, principal, company, body)
    try:
        task = ChannelTask(kind=ChannelTaskKind.AUTHORIZE, tenant_id=principal.tenant_id, attempt_id=attempt.id)
        result = await run_channel_task(temporal, settings, task)
    except Problem:
        await forget_attempt(session, attempt.id)  # no sign-in to come back to
        raise
    if result.outcome != ChannelOutcome.OK or not result.client_id:
        await forget_attempt(session, attempt.id)
        raise problem_for(result, body.platform)
    return ChannelAuthorization(
        authorization_url=authorization_url(settings, attempt, result.client_id, state, challenge),
        expires_at=attempt.expires_at,
    )


async def run_on_channel(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    channel_id: uuid.UUID,
    kind: ChannelTaskKind,
) -> ChannelTaskResult:
    """A test or a disconnect of the tenant's channel by a worker; 404 for a channel that is not (or no longer)
    the tenant's."""
    await channel_of_tenant(session, principal.tenant_id, channel_id)
    task = ChannelTask(kind=kind, tenant_id=principal.tenant_id, channel_id=channel_id)
    result = await run_channel_task(temporal, settings, task)
    if result.outcome == ChannelOutcome.GONE:
        raise Problem(404, "the channel was not found")
    return result


def problem_for(result: ChannelTaskResult, platform: Platform) -> Problem:
    """The answer for a connect that did not end with a channel."""
    label = platform.label
    if result.outcome == ChannelOutcome.REJECTED:
        return Problem(422, f"{label} refused the credentials: {result.message}", errorType="credentials_rejected")
    if result.outcome == ChannelOutcome.INVALID:
        return Problem(422, result.message, errorType="unusable_input")
    if result.outcome == ChannelOutcome.UNAVAILABLE:
        seconds = max(5, int(result.retry_after or 5))
        return Problem(
            502,
            f"{label} could not be reached: {result.message}; nothing was changed, try again shortly",
            title="Bad Gateway",
            headers={"Retry-After": str(seconds)},
            errorType="platform_unavailable",
        )
    return Problem(410, result.message or "the connection attempt expired; start again", errorType="attempt_gone")
