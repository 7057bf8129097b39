"""The studio's Channels page of a company: its connected accounts with their state, a test and a disconnect for
each, and the forms that connect Bluesky (handle and app password) and Mastodon (an OAuth sign-in at the instance).

Every action takes the same steps as the API's routes (api/routes/channels.py) through api/services/channels.py:
what a person typed is checked there and written encrypted for a worker, which does the talking with the platform
while the request waits. An app password is never written back into a page. Input that cannot be used is shown
next to its form; a worker or platform that did not answer is shown as a notice, with nothing changed. Marketers
and up (every studio session); another tenant's company or channel is the 404 page.
"""

import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from api.deps import SessionDep, SettingsDep, get_temporal
from api.errors import Problem
from api.services.channels import (
    ChannelConnect,
    ChannelCreate,
    VaultDep,
    channel_of_tenant,
    channel_public,
    company_channels,
    connect_password_channel,
    run_on_channel,
    start_sign_in,
)
from api.studio.company import owned_company, web_link
from api.studio.pages import StudioNotFound, page, see_other
from api.studio.render import zone_of
from api.studio.sessions import StudioUser, StudioUserDep, checked_form
from models.channels import (
    AUTHORIZATION_MINUTES,
    BLUESKY_DEFAULT_SERVICE,
    ChannelOutcome,
    ChannelPublic,
    ChannelState,
    ChannelTaskKind,
)
from models.enums import Platform
from models.tables import Channel, Company

router = APIRouter(prefix="/studio", include_in_schema=False)

TEMPLATE = "channels.html"
CONFIRM_FIELD = "confirm"
# The API's field names (ChannelCreate, ChannelConnect, in their `body.` form too) -> the forms' fields.
BLUESKY_FIELDS = {
    "handle": "handle",
    "appPassword": "app_password",
    "app_password": "app_password",
    "service": "service",
}
MASTODON_FIELDS = {"instance": "instance"}
NOTHING_CHANGED = "Nothing was changed."


@dataclass
class FormState:
    """A connect form as the page shows it: what was typed (never a password), and what is wrong with it."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # form field -> message
    error: str = ""  # about the form as a whole


def channels_url(company_id: uuid.UUID, *, notice: str = "", error: str = "", anchor: str = "") -> str:
    query = f"?notice={quote(notice)}" if notice else f"?error={quote(error)}" if error else ""
    return f"/studio/companies/{company_id}/channels{query}{'#' + anchor if anchor else ''}"


def nothing_changed(problem: Problem) -> str:
    """A worker's or platform's failure as a notice that says nothing was changed (once)."""
    detail = problem.detail.rstrip(".")
    sentence = detail[:1].upper() + detail[1:] + "."
    return sentence if "nothing was changed" in detail.lower() else f"{sentence} {NOTHING_CHANGED}"


def form_of(problem: Problem, fields: dict[str, str]) -> FormState:
    """A 422 problem of the services as the form's errors: each field's next to it, the rest above the form."""
    state = FormState()
    general = []
    for item in problem.extra.get("errors") or []:
        name = str(item.get("field", "")).removeprefix("body.")
        message = str(item.get("message", "is not valid"))
        if name in fields:
            state.errors.setdefault(fields[name], message)
        else:
            general.append(message)
    if not problem.extra.get("errors"):
        general.append(problem.detail)
    state.error = summary_of(general)
    return state


def form_of_invalid(invalid: ValidationError, fields: dict[str, str]) -> FormState:
    """What pydantic refused of a form (a missing password, an address too long), as `form_of` shows it."""
    state = FormState()
    general = []
    for err in invalid.errors(include_url=False):
        location = [str(part) for part in err.get("loc", ())]
        message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        if location and location[0] in fields:
            state.errors.setdefault(fields[location[0]], message)
        else:
            general.append(message)
    state.error = summary_of(general)
    return state


def summary_of(general: list[str]) -> str:
    """The line above a refused form: what is wrong with it as a whole, or where to look; never silent."""
    said = "; ".join(general)
    return (
        f"{said[:1].upper()}{said[1:]}. Nothing was connected."
        if said
        else "Correct the field marked below. Nothing was connected."
    )


@dataclass(frozen=True)
class ChannelView:
    channel: ChannelPublic
    state: ChannelState
    profile_link: str | None

    @property
    def label(self) -> str:
        return f"{self.channel.platform.label} {self.channel.account.handle}"


def channel_views(channels: list[Channel]) -> list[ChannelView]:
    views = []
    for channel in channels:
        public = channel_public(channel)
        views.append(ChannelView(public, ChannelState(public.state), web_link(public.account.url)))
    return views


def arrival_notices(request: Request, channels: list[ChannelView]) -> tuple[str, str]:
    """The notice and the error of the page's address: a redirect's own, or the platform's OAuth callback's
    (`?connected=mastodon`, `?failed=mastodon`)."""
    notice = request.query_params.get("notice", "")
    error = request.query_params.get("error", "")
    connected = request.query_params.get("connected", "")
    failed = request.query_params.get("failed", "")
    known = {platform.value for platform in Platform}
    if connected in known:
        platform = Platform(connected)
        found = next((view for view in channels if view.channel.platform == platform), None)
        account = f" {found.channel.account.handle}" if found else ""
        notice = notice or f"The {platform.label} account{account} is connected: its posts go out through it."
    if failed in known:
        label = Platform(failed).label
        error = error or (
            f"The {label} sign-in did not finish (declined at the instance, expired, or refused): nothing was "
            "connected. Start again below."
        )
    return notice, error


async def channels_page(
    request: Request,
    user: StudioUser,
    session: AsyncSession,
    company: Company,
    *,
    status: int = 200,
    bluesky: FormState | None = None,
    mastodon: FormState | None = None,
    alert: str = "",
) -> Response:
    channels = channel_views(await company_channels(session, company.id))
    notice, error = arrival_notices(request, channels)
    bluesky = bluesky or FormState()
    mastodon = mastodon or FormState()
    return page(
        request,
        TEMPLATE,
        user,
        status_code=status,
        company=company,
        zone=zone_of(company),
        channels=channels,
        connected_platforms={view.channel.platform for view in channels},
        bluesky=bluesky,
        bluesky_service=bluesky.values.get("service") or BLUESKY_DEFAULT_SERVICE,
        mastodon=mastodon,
        notice=notice,
        error=alert or error,
        confirm_field=CONFIRM_FIELD,
        authorization_minutes=AUTHORIZATION_MINUTES,
    )


async def owned_channel(session: AsyncSession, user: StudioUser, channel_id: uuid.UUID) -> Channel:
    try:
        return await channel_of_tenant(session, user.principal.tenant_id, channel_id)
    except Problem:
        raise StudioNotFound() from None


def text_of(form: FormData, name: str) -> str:
    return str(form.get(name) or "").strip()


# ---- the page ----------------------------------------------------------------------------------------------------


@router.get("/companies/{company_id}/channels", response_class=HTMLResponse)
async def channels_view(request: Request, company_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    company = await owned_company(session, user, company_id)
    return await channels_page(request, user, session, company)


# ---- connecting --------------------------------------------------------------------------------------------------


@router.post("/companies/{company_id}/channels/bluesky", response_class=HTMLResponse)
async def connect_bluesky(
    request: Request,
    company_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
) -> Response:
    """As POST /api/v1/companies/{id}/channels: the app password goes, encrypted, to a worker that logs in with it,
    and is forgotten when the request ends, whatever happened."""
    form = await checked_form(request, user)
    company = await owned_company(session, user, company_id)
    typed = {"handle": text_of(form, "handle"), "service": text_of(form, "service")}
    try:
        body = ChannelCreate.model_validate(
            {
                "platform": Platform.BLUESKY,
                "handle": typed["handle"],
                "appPassword": str(form.get("app_password") or ""),
                "service": typed["service"] or None,
            }
        )
    except ValidationError as invalid:
        state = form_of_invalid(invalid, BLUESKY_FIELDS)
        state.values = typed
        return await channels_page(request, user, session, company, status=422, bluesky=state)
    try:
        temporal = await get_temporal(request)
        channel = await connect_password_channel(session, temporal, settings, vault, user.principal, company, body)
    except Problem as refused:
        if refused.extra.get("errors"):
            state = form_of(refused, BLUESKY_FIELDS)
            state.values = typed
            return await channels_page(request, user, session, company, status=refused.status, bluesky=state)
        return await refused_connect(request, user, session, company, refused, typed)
    notice = f"The Bluesky account {channel.handle} is connected: its posts go out through it."
    return see_other(channels_url(company.id, notice=notice, anchor=f"channel-{channel.id}"))


@router.post("/companies/{company_id}/channels/mastodon", response_class=HTMLResponse)
async def connect_mastodon(
    request: Request,
    company_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
) -> Response:
    """As POST /api/v1/companies/{id}/channels/connect, then on to the instance's sign-in: the instance sends the
    person back to the API's callback, which connects the channel and comes back to this page."""
    form = await checked_form(request, user)
    company = await owned_company(session, user, company_id)
    typed = {"instance": text_of(form, "instance")}
    try:
        body = ChannelConnect.model_validate({"platform": Platform.MASTODON, "instance": typed["instance"] or None})
    except ValidationError as invalid:
        state = form_of_invalid(invalid, MASTODON_FIELDS)
        state.values = typed
        return await channels_page(request, user, session, company, status=422, mastodon=state)
    try:
        temporal = await get_temporal(request)
        sign_in = await start_sign_in(session, temporal, settings, vault, user.principal, company, body)
    except Problem as refused:
        if refused.extra.get("errors"):
            state = form_of(refused, MASTODON_FIELDS)
            state.values = typed
            return await channels_page(request, user, session, company, status=refused.status, mastodon=state)
        return await refused_connect(request, user, session, company, refused, typed, platform=Platform.MASTODON)
    return see_other(sign_in.authorization_url)


async def refused_connect(
    request: Request,
    user: StudioUser,
    session: AsyncSession,
    company: Company,
    problem: Problem,
    typed: dict[str, str],
    platform: Platform = Platform.BLUESKY,
) -> Response:
    """A connect the worker answered without a channel: refused input next to its form; an unreachable platform as
    a notice (nothing was changed)."""
    state = FormState(typed)
    alert = ""
    if problem.status >= 500:
        alert = nothing_changed(problem)
    else:
        state.error = f"{problem.detail[:1].upper()}{problem.detail[1:]}. Nothing was connected."
    forms = {"mastodon": state} if platform == Platform.MASTODON else {"bluesky": state}
    return await channels_page(request, user, session, company, status=problem.status, alert=alert, **forms)


# ---- a channel: test, disconnect -----------------------------------------------------------------------------------


@router.post("/channels/{channel_id}/test", response_class=HTMLResponse)
async def test_channel(
    request: Request, channel_id: uuid.UUID, user: StudioUserDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """As POST /api/v1/channels/{id}/test: the platform is asked whether the credentials still work; nothing is
    posted. The outcome comes back as the page's notice."""
    await checked_form(request, user)
    channel = await owned_channel(session, user, channel_id)
    company_id, label, handle = channel.company_id, Platform(channel.platform).label, channel.handle
    anchor = f"channel-{channel.id}"
    try:
        temporal = await get_temporal(request)
        result = await run_on_channel(session, temporal, settings, user.principal, channel.id, ChannelTaskKind.CHECK)
    except Problem as away:
        if away.status == 404:
            return see_other(channels_url(company_id, error="That channel no longer exists: it was disconnected."))
        return see_other(channels_url(company_id, error=nothing_changed(away), anchor=anchor))
    said = f": {result.message.rstrip('.')}" if result.message else ""
    if result.outcome == ChannelOutcome.OK:
        return see_other(
            channels_url(company_id, notice=f"Tested {label} {handle}: it works (nothing was posted).", anchor=anchor)
        )
    if result.outcome == ChannelOutcome.REJECTED:
        error = f"Tested {label} {handle}: the credentials were refused{said}. Connect the account again below."
    elif result.outcome == ChannelOutcome.UNAVAILABLE:
        error = f"Tested {label} {handle}: {label} could not be reached{said}. {NOTHING_CHANGED} Try again shortly."
    else:
        error = f"Tested {label} {handle}: it cannot be used{said}."
    return see_other(channels_url(company_id, error=error, anchor=anchor))


@router.post("/channels/{channel_id}/disconnect", response_class=HTMLResponse)
async def disconnect_channel(
    request: Request, channel_id: uuid.UUID, user: StudioUserDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """As DELETE /api/v1/channels/{id}, once the person ticked the confirmation: revokes what the platform allows and
    forgets the credentials."""
    form = await checked_form(request, user)
    channel = await owned_channel(session, user, channel_id)
    company_id, label, handle = channel.company_id, Platform(channel.platform).label, channel.handle
    if form.get(CONFIRM_FIELD) != "yes":
        error = f"Tick the box to confirm disconnecting {label} {handle}. {NOTHING_CHANGED}"
        return see_other(channels_url(company_id, error=error, anchor=f"channel-{channel.id}"))
    try:
        temporal = await get_temporal(request)
        kind = ChannelTaskKind.DISCONNECT
        result = await run_on_channel(session, temporal, settings, user.principal, channel.id, kind)
    except Problem as away:
        if away.status == 404:
            return see_other(channels_url(company_id, notice=f"{label} {handle} was already disconnected."))
        return see_other(channels_url(company_id, error=nothing_changed(away), anchor=f"channel-{channel.id}"))
    revoked = f" ({result.message})" if result.message else ""
    notice = (
        f"Disconnected {label} {handle}{revoked}. The company's {label} posts now go to the account's webhook, or "
        "fail with a message to connect a channel."
    )
    return see_other(channels_url(company_id, notice=notice))
