"""The studio's changes to a social post, from its preview card: edit the text, move it to another time, publish
again after checking the receiver, or hold back a post that waits for its channel. Each goes through the same service
as the API (api/services/social_posts.py) and comes back to the previews with what happened."""

import uuid
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import Problem
from api.services.social_posts import edit_text, hold_back, publish_again, reschedule
from api.studio.pages import StudioNotFound, see_other
from api.studio.sessions import StudioUserDep, checked_form
from models.tables import SocialPost

router = APIRouter(prefix="/studio", include_in_schema=False)


async def post_of(session: SessionDep, tenant_id: uuid.UUID, post_id: uuid.UUID) -> SocialPost:
    post = await session.get(SocialPost, post_id)
    if post is None or post.tenant_id != tenant_id:
        raise StudioNotFound()
    return post


def back(post: SocialPost, *, notice: str = "", error: str = "") -> Response:
    query = f"notice={quote(notice)}" if notice else f"error={quote(error)}"
    return see_other(f"/studio/blogposts/{post.blog_post_id}/social?{query}#post-{post.id}")


@router.post("/social-posts/{post_id}/text", response_class=HTMLResponse)
async def social_text(request: Request, post_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    form = await checked_form(request, user)
    post = await post_of(session, user.principal.tenant_id, post_id)
    try:
        await edit_text(session, user.principal, post.company_id, post.id, str(form.get("text") or ""))
    except Problem as refusal:
        return back(post, error=f"{refusal.detail}. Nothing was changed.")
    return back(post, notice="Text saved.")


@router.post("/social-posts/{post_id}/reschedule", response_class=HTMLResponse)
async def social_reschedule(
    request: Request, post_id: uuid.UUID, user: StudioUserDep, session: SessionDep, temporal: TemporalDep
) -> Response:
    form = await checked_form(request, user)
    post = await post_of(session, user.principal.tenant_id, post_id)
    try:
        when = datetime.fromisoformat(str(form.get("publish_at") or ""))
    except ValueError:
        return back(post, error="Give the new date and time. Nothing was changed.")
    try:
        done = await reschedule(session, temporal, user.principal, post.company_id, post.id, when)
    except Problem as refusal:
        return back(post, error=f"{refusal.detail}. Nothing was changed.")
    return back(post, notice=f"Moved to {done.local_time}.")


@router.post("/social-posts/{post_id}/publish-again", response_class=HTMLResponse)
async def social_publish_again(
    request: Request,
    post_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> Response:
    form = await checked_form(request, user)
    post = await post_of(session, user.principal.tenant_id, post_id)
    if form.get("receiver_checked") != "yes":
        return back(post, error="Check the receiver first and tick the box. Nothing was sent.")
    try:
        await publish_again(session, temporal, settings, user.principal, post.company_id, post.id)
    except Problem as refusal:
        return back(post, error=f"{refusal.detail}. Nothing was sent.")
    return back(post, notice="Publishing again: the state below follows.")


@router.post("/social-posts/{post_id}/hold-back", response_class=HTMLResponse)
async def social_hold_back(request: Request, post_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    """A supervisor's decision for a post that waits (for its channel, typically): it is not published."""
    form = await checked_form(request, user)
    post = await post_of(session, user.principal.tenant_id, post_id)
    if form.get("confirm") != "yes":
        return back(post, error="Tick the box to confirm that this post is not to be published. Nothing was changed.")
    try:
        await hold_back(session, user.principal, post.company_id, post.id)
    except Problem as refusal:
        return back(post, error=f"{refusal.detail}. Nothing was changed.")
    return back(post, notice="Held back: this post will not be published. Its topic now asks for a decision.")
