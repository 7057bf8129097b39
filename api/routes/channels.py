"""Channels: a company's connected accounts on Bluesky and Mastodon; connect, list, test, disconnect, and the
platforms' OAuth callback."""

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import MarketerDep, SessionDep, SettingsDep, TemporalDep
from api.errors import PROBLEMS, Problem, problems
from api.routes.companies import OwnCompanyDep
from api.routing import SlashRouter
from api.services.channels import (
    ChannelAuthorization,
    ChannelConnect,
    ChannelCreate,
    ChannelTestResult,
    VaultDep,
    attempt_for_callback,
    channel_of_tenant,
    channel_public,
    connect_password_channel,
    forget_attempt,
    list_channels,
    problem_for,
    run_channel_task,
    run_on_channel,
    start_sign_in,
)
from models.channels import ChannelOutcome, ChannelPublic, ChannelsPublic, ChannelTask, ChannelTaskKind
from models.enums import Platform

company_router = SlashRouter(prefix="/companies/{company_id}/channels", tags=["channels"])
router = SlashRouter(prefix="/channels", tags=["channels"])

WORKER_PROBLEMS = problems(
    _410="the connection attempt expired before a worker took it; start again",
    _502="the platform could not be reached (nothing was changed), or the worker failed",
    _503="the workflow engine is not reachable",
    _504="no worker answered in time",
)
CALLBACK_ANSWERS: dict[int | str, dict[str, Any]] = {
    303: {"description": "a browser is sent on to the studio's Channels page of the company"},
    **problems(
        _400="the sign-in's `state` matches no sign-in in progress (expired, used, forged), or the person declined",
        _422="the platform refused the authorization code, or the instance cannot be used",
    ),
    **WORKER_PROBLEMS,
}


@company_router.post(
    "",
    status_code=201,
    response_model=ChannelPublic,
    responses={**PROBLEMS, **WORKER_PROBLEMS},
    summary="Connect an account with an app password (Bluesky)",
    description=(
        "Logs in at the PDS (default https://bsky.social) with the handle and an app password, and keeps the "
        "session, encrypted, as the company's channel for the platform (a second connect replaces the first). "
        "A refused password is a 422 and changes nothing. The password is never shown again."
    ),
)
async def connect_with_password(
    company: OwnCompanyDep,
    body: ChannelCreate,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    vault: VaultDep,
) -> ChannelPublic:
    channel = await connect_password_channel(session, temporal, settings, vault, principal, company, body)
    return channel_public(channel)


@company_router.post(
    "/connect",
    response_model=ChannelAuthorization,
    responses={**PROBLEMS, **WORKER_PROBLEMS},
    summary="Start an OAuth sign-in (Mastodon)",
    description=(
        "Registers this deployment's app on the instance (once) and answers the address to send the person to. "
        "When they agree, the instance calls back `GET /api/v1/channels/callback/{platform}`, which connects the "
        "channel. The sign-in must be finished within 15 minutes."
    ),
)
async def start_oauth(
    company: OwnCompanyDep,
    body: ChannelConnect,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    vault: VaultDep,
) -> ChannelAuthorization:
    return await start_sign_in(session, temporal, settings, vault, principal, company, body)


@company_router.get(
    "",
    response_model=ChannelsPublic,
    responses=PROBLEMS,
    summary="A company's channels, with their state and last check",
)
async def get_channels(company: OwnCompanyDep, session: SessionDep) -> ChannelsPublic:
    return await list_channels(session, company.id)


@router.post(
    "/{channel_id}/test",
    response_model=ChannelTestResult,
    responses={**PROBLEMS, **WORKER_PROBLEMS},
    summary="Verify a channel's credentials with its platform (posts nothing)",
)
async def test_channel(
    channel_id: uuid.UUID, principal: MarketerDep, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> ChannelTestResult:
    result = await run_on_channel(session, temporal, settings, principal, channel_id, ChannelTaskKind.CHECK)
    channel = await channel_of_tenant(session, principal.tenant_id, channel_id)
    return ChannelTestResult(
        ok=result.outcome == ChannelOutcome.OK, message=result.message, channel=channel_public(channel)
    )


@router.delete(
    "/{channel_id}",
    status_code=204,
    responses={**PROBLEMS, **WORKER_PROBLEMS},
    summary="Disconnect a channel",
    description=(
        "Revokes what the platform allows (a Mastodon token) and forgets the credentials. The company's posts for "
        "that platform then go to the tenant's webhook, or fail with a message to connect a channel."
    ),
)
async def disconnect_channel(
    channel_id: uuid.UUID, principal: MarketerDep, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> Response:
    await run_on_channel(session, temporal, settings, principal, channel_id, ChannelTaskKind.DISCONNECT)
    return Response(status_code=204)


@router.get(
    "/callback/{platform}",
    response_model=ChannelPublic,
    status_code=201,
    responses=CALLBACK_ANSWERS,
    summary="Where the platform sends the person back after an OAuth sign-in",
    description=(
        "Needs no API key: the `state` of the sign-in is its credential, good once. A browser is sent on to the "
        "studio's Channels page; any other client gets the channel (201) or a problem."
    ),
)
async def oauth_callback(
    platform: Platform,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    vault: VaultDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> ChannelPublic | Response:
    attempt = await attempt_for_callback(session, vault, platform, state, "" if error else code)
    browser = "text/html" in request.headers.get("accept", "")
    studio = f"/studio/companies/{attempt.company_id}/channels"
    if error or not code:
        await forget_attempt(session, attempt.id)
        said = error or "no authorization code"
        if browser:
            return RedirectResponse(f"{studio}?failed={platform.value}", status_code=303)
        raise Problem(400, f"the {platform.label} sign-in did not finish: {said}; nothing was connected")
    try:
        result = await run_channel_task(
            temporal,
            settings,
            ChannelTask(kind=ChannelTaskKind.CONNECT, tenant_id=attempt.tenant_id, attempt_id=attempt.id),
        )
    finally:
        await forget_attempt(session, attempt.id)
    if result.outcome != ChannelOutcome.OK or result.channel_id is None:
        if browser:
            return RedirectResponse(f"{studio}?failed={platform.value}", status_code=303)
        raise problem_for(result, platform)
    if browser:
        return RedirectResponse(f"{studio}?connected={platform.value}", status_code=303)
    return channel_public(await channel_of_tenant(session, attempt.tenant_id, result.channel_id))
