"""The studio's pages: sign-in, the approvals inbox (with the channels that need a person), a pipeline, and its
three gates.

Every page reads the tenant's rows through the API's own services and answers another tenant's object with the
404 page, as the API does. Decisions go through api/services/decisions.py: the workflow's validator is the judge,
and its refusal is shown on the page with nothing changed. A marketer sees every page with the decision controls
disabled and the reason beside them.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import PipelineStoreDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem
from api.services.artifacts import add_person_revision
from api.services.decisions import approvals_of_tenant, blog_post_branch, branch_of, decide
from api.services.pipelines import FINISHED, open_gates, pipeline_of_tenant, read_pipeline, request_pipeline_cancel
from api.services.stream_tokens import mint_stream_token
from api.studio.channel_inbox import POSTS_SHOWN, channels_in_trouble, posts_without_channel
from api.studio.render import TEMPLATES, diff_lines, markdown_html, pages_of, post_body
from api.studio.sessions import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_TOKEN_SECONDS,
    CsrfRefused,
    SignInRequired,
    StudioUser,
    StudioUserDep,
    checked_form,
    clear_cookie,
    new_sign_in_token,
    set_cookie,
    sign_in,
    sign_in_token_ok,
)
from models.enums import Gate, JobStatus
from models.pipeline import BlogPostDecision, FailureDecision, SelectPersonas, TopicDecision
from models.tables import AIJob, BlogPost, BlogPostRevision, Company, Persona, Pipeline, Topic
from workflows.branch import TopicBranchWorkflow
from workflows.pipeline import ContentPipelineWorkflow

router = APIRouter(prefix="/studio", include_in_schema=False)

DECIDE_REASON = "Only a supervisor can decide: this key has the marketer role."
SIGNED_OUT_REASONS = {
    "expired": "Your session has expired. Sign in again.",
    "revoked": "The API key of your session has been revoked. Sign in with a live key.",
    "invalid": "Your session is not valid. Sign in again.",
    "signed-out": "You have signed out.",
}


@dataclass(frozen=True)
class JobUsage:
    tokens: int
    cost: Decimal


class StudioNotFound(Exception):
    """Another tenant's object, or none: the 404 page."""


def page(request: Request, template: str, user: StudioUser | None, status_code: int = 200, **context: Any) -> Response:
    return TEMPLATES.TemplateResponse(
        request, template, {"user": user, "decide_reason": DECIDE_REASON, **context}, status_code=status_code
    )


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


async def owned_pipeline(session: AsyncSession, user: StudioUser, pipeline_id: uuid.UUID) -> Pipeline:
    try:
        return await pipeline_of_tenant(session, user.principal.tenant_id, pipeline_id)
    except Problem:
        raise StudioNotFound() from None


async def company_name(session: AsyncSession, company_id: uuid.UUID) -> str:
    company = await session.get(Company, company_id)
    return company.name if company is not None else ""


def gate_of(pipeline: Pipeline, gate: Gate) -> Any:
    return next((view for view in open_gates(pipeline) if view.gate == gate), None)


# ---- signing in ------------------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return see_other("/studio/approvals" if request.cookies.get(SESSION_COOKIE) else "/studio/sign-in")


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, why: str = "", error: str = "", status_code: int = 200) -> Response:
    token = new_sign_in_token()
    response = page(
        request,
        "sign_in.html",
        None,
        status_code=status_code,
        sign_in_token=token,
        notice=SIGNED_OUT_REASONS.get(why, ""),
        error=error,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, SIGN_IN_TOKEN_SECONDS)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in_submit(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await request.form()
    if not sign_in_token_ok(request, str(form.get("sign_in_token") or "")):
        return await sign_in_page(request, error="The sign-in form had expired. Try again.", status_code=403)
    made = await sign_in(session, str(form.get("api_key") or ""))
    if made is None:
        return await sign_in_page(request, error="That API key is not valid or has been revoked.", status_code=401)
    value, _ = made
    response = see_other("/studio/approvals")
    set_cookie(response, request, SESSION_COOKIE, value, int(settings.studio_session_hours * 3600))
    clear_cookie(response, SIGN_IN_COOKIE)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
async def sign_out(request: Request, user: StudioUserDep) -> Response:
    await checked_form(request, user)
    response = see_other("/studio/sign-in?why=signed-out")
    clear_cookie(response, SESSION_COOKIE)
    return response


# ---- approvals ------------------------------------------------------------------------------------------------


@router.get("/approvals", response_class=HTMLResponse)
async def approvals(request: Request, user: StudioUserDep, session: SessionDep, settings: SettingsDep) -> Response:
    tenant_id = user.principal.tenant_id
    inbox = await approvals_of_tenant(session, settings, tenant_id)
    return page(
        request,
        "approvals.html",
        user,
        inbox=inbox,
        gate_paths=GATE_PATHS,
        troubles=await channels_in_trouble(session, tenant_id),
        waiting_posts=await posts_without_channel(session, tenant_id),
        posts_shown=POSTS_SHOWN,
    )


GATE_PATHS = {Gate.PERSONAS: "personas", Gate.TOPICS: "topics"}


# ---- a pipeline ------------------------------------------------------------------------------------------------


@router.get("/pipelines/{pipeline_id}", response_class=HTMLResponse)
async def pipeline_page(
    request: Request, pipeline_id: uuid.UUID, user: StudioUserDep, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        pipeline = await read_pipeline(session, settings, user.principal.tenant_id, pipeline_id)
    except Problem:
        raise StudioNotFound() from None
    template = "pipeline_live.html" if request.headers.get("hx-request") else "pipeline.html"
    rows = (
        await session.exec(
            select(col(AIJob.id), col(AIJob.input_tokens), col(AIJob.output_tokens), col(AIJob.cost_usd)).where(
                col(AIJob.pipeline_id) == pipeline.id
            )
        )
    ).all()
    usage = {
        job_id: JobUsage(tokens=used_in + used_out, cost=Decimal(cost)) for job_id, used_in, used_out, cost in rows
    }
    # Jobs still running follow their own streams (the API's job streams, opened with a stream token minted for
    # this session's key: same origin, no header needed); the page itself refreshes less often.
    streams = {}
    for job in pipeline.jobs:
        if job.status.value in (JobStatus.PENDING.value, JobStatus.PROCESSING.value):
            path = request.app.url_path_for("stream_job", job_id=str(job.id))
            minted = await mint_stream_token(session, settings, user.principal.key_id, job.id, path)
            streams[job.id] = f"{path}?token={minted.token}"
    return page(
        request,
        template,
        user,
        pipeline=pipeline,
        running=pipeline.status.value not in FINISHED,
        usage=usage,
        streams=streams,
        total_tokens=sum(u.tokens for u in usage.values()),
        total_cost=sum((u.cost for u in usage.values()), Decimal(0)),
        company_name=await company_name(session, pipeline.company_id),
        gate_paths=GATE_PATHS,
        notice=request.query_params.get("notice", ""),
    )


@router.post("/pipelines/{pipeline_id}/cancel", response_class=HTMLResponse)
async def cancel(
    request: Request,
    pipeline_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    store: PipelineStoreDep,
    temporal: TemporalDep,
) -> Response:
    await checked_form(request, user)
    pipeline = await owned_pipeline(session, user, pipeline_id)
    try:
        await request_pipeline_cancel(session, store, temporal, pipeline)
    except Problem as problem:
        return see_other(f"/studio/pipelines/{pipeline_id}?notice={quote(problem.detail)}")
    return see_other(
        f"/studio/pipelines/{pipeline_id}?notice={quote('Cancelling: running stages stop, work is kept.')}"
    )


# ---- gate 1: personas ------------------------------------------------------------------------------------------


async def persona_gate_page(
    request: Request,
    user: StudioUser,
    session: AsyncSession,
    pipeline: Pipeline,
    error: str = "",
    status: int = 200,
    chosen: list[str] | None = None,
) -> Response:
    gate = gate_of(pipeline, Gate.PERSONAS)
    ids = [item.id for item in gate.items] if gate else []
    personas = (
        (await session.exec(select(Persona).where(col(Persona.id).in_(ids)).order_by(col(Persona.position)))).all()
        if ids
        else []
    )
    return page(
        request,
        "personas.html",
        user,
        status_code=status,
        pipeline=pipeline,
        company_name=await company_name(session, pipeline.company_id),
        gate=gate,
        personas=personas,
        error=error,
        chosen=chosen or [],
    )


@router.get("/pipelines/{pipeline_id}/personas", response_class=HTMLResponse)
async def personas_page(request: Request, pipeline_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    pipeline = await owned_pipeline(session, user, pipeline_id)
    return await persona_gate_page(request, user, session, pipeline)


@router.post("/pipelines/{pipeline_id}/personas", response_class=HTMLResponse)
async def personas_decide(
    request: Request, pipeline_id: uuid.UUID, user: StudioUserDep, session: SessionDep, temporal: TemporalDep
) -> Response:
    form = await checked_form(request, user)
    pipeline = await owned_pipeline(session, user, pipeline_id)
    if not user.can_decide:
        return await persona_gate_page(request, user, session, pipeline, DECIDE_REASON, 403)
    chosen = [str(value) for value in form.getlist("persona")]
    if len(chosen) < 3:
        error = f"Select at least 3 personas (you selected {len(chosen)}). Nothing was changed."
        return await persona_gate_page(request, user, session, pipeline, error, 422, chosen)
    try:
        body = SelectPersonas(selected_persona_ids=[uuid.UUID(value) for value in chosen])
        await decide(temporal, pipeline, ContentPipelineWorkflow.select_personas, body)
    except (ValueError, Problem) as refusal:
        detail = refusal.detail if isinstance(refusal, Problem) else "a selected persona is not one of this gate's"
        return await persona_gate_page(request, user, session, pipeline, f"{detail}. Nothing was changed.", 422, chosen)
    return see_other(f"/studio/pipelines/{pipeline_id}?notice={quote('Personas selected: topics are being planned.')}")


# ---- gate 2: topics --------------------------------------------------------------------------------------------


async def topic_gate_page(
    request: Request,
    user: StudioUser,
    session: AsyncSession,
    pipeline: Pipeline,
    error: str = "",
    status: int = 200,
    posted: dict[str, str] | None = None,
) -> Response:
    gate = gate_of(pipeline, Gate.TOPICS)
    items = {item.id: item for item in gate.items} if gate else {}
    topics = (
        (await session.exec(select(Topic).where(col(Topic.id).in_(list(items))).order_by(col(Topic.position)))).all()
        if items
        else []
    )
    persona_ids = {topic.persona_id for topic in topics}
    personas = (
        {p.id: p for p in (await session.exec(select(Persona).where(col(Persona.id).in_(persona_ids)))).all()}
        if persona_ids
        else {}
    )
    return page(
        request,
        "topics.html",
        user,
        status_code=status,
        pipeline=pipeline,
        company_name=await company_name(session, pipeline.company_id),
        gate=gate,
        topics=topics,
        items=items,
        personas=personas,
        error=error,
        posted=posted or {},
    )


@router.get("/pipelines/{pipeline_id}/topics", response_class=HTMLResponse)
async def topics_page(request: Request, pipeline_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    pipeline = await owned_pipeline(session, user, pipeline_id)
    return await topic_gate_page(request, user, session, pipeline)


@router.post("/pipelines/{pipeline_id}/topics", response_class=HTMLResponse)
async def topics_decide(
    request: Request, pipeline_id: uuid.UUID, user: StudioUserDep, session: SessionDep, temporal: TemporalDep
) -> Response:
    form = await checked_form(request, user)
    pipeline = await owned_pipeline(session, user, pipeline_id)
    posted = {key: str(value) for key, value in form.items()}
    if not user.can_decide:
        return await topic_gate_page(request, user, session, pipeline, DECIDE_REASON, 403, posted)
    gate = gate_of(pipeline, Gate.TOPICS)
    if gate is None:
        return await topic_gate_page(request, user, session, pipeline, "No topic decision is pending.", 409, posted)
    approved: list[uuid.UUID] = []
    dropped: list[uuid.UUID] = []
    rejected: list[dict[str, Any]] = []
    missing: list[str] = []
    for item in gate.items:
        choice = posted.get(f"decision-{item.id}", "")
        feedback = posted.get(f"feedback-{item.id}", "").strip()
        if choice == "approve":
            approved.append(item.id)
        elif choice == "drop":
            dropped.append(item.id)
        elif choice == "reject":
            if not feedback:
                missing.append(item.title)
            rejected.append({"topic_id": item.id, "feedback": feedback})
        else:
            return await topic_gate_page(
                request, user, session, pipeline, f"Choose Approve, Reject or Drop for “{item.title}”.", 422, posted
            )
    if missing:
        error = "Feedback is required for a rejected topic: " + "; ".join(f"“{title}”" for title in missing)
        return await topic_gate_page(request, user, session, pipeline, error + ". Nothing was changed.", 422, posted)
    try:
        body = TopicDecision.model_validate(
            {"approved_topic_ids": approved, "rejected": rejected, "dropped_topic_ids": dropped}
        )
        await decide(temporal, pipeline, ContentPipelineWorkflow.decide_topics, body)
    except Problem as refusal:
        return await topic_gate_page(
            request, user, session, pipeline, f"{refusal.detail}. Nothing was changed.", 422, posted
        )
    notice = f"Decision sent: {len(approved)} approved, {len(rejected)} sent back, {len(dropped)} dropped."
    return see_other(f"/studio/pipelines/{pipeline_id}?notice={quote(notice)}")


# ---- gate 3: a blog post ---------------------------------------------------------------------------------------


async def blog_post_page(
    request: Request,
    user: StudioUser,
    session: AsyncSession,
    pipeline: Pipeline,
    blog_post_id: uuid.UUID,
    error: str = "",
    status: int = 200,
    draft: str | None = None,
) -> Response:
    post = await session.get(BlogPost, blog_post_id)
    if post is None or post.tenant_id != user.principal.tenant_id or post.company_id != pipeline.company_id:
        raise StudioNotFound()
    revisions = (
        await session.exec(
            select(BlogPostRevision)
            .where(col(BlogPostRevision.blog_post_id) == post.id)
            .order_by(col(BlogPostRevision.revision))
        )
    ).all()
    current = next((r for r in revisions if r.revision == post.current_revision), revisions[-1] if revisions else None)
    history = []
    for index, revision in enumerate(revisions):
        before = revisions[index - 1].markdown if index else ""
        history.append({"revision": revision, "diff": diff_lines(before, revision.markdown) if index else []})
    gate = gate_of(pipeline, Gate.BLOGPOST)
    waiting = gate is not None and any(item.id == post.id for item in gate.items)
    numbers = {int(c.get("number", 0)) for c in (current.citations if current else [])}
    return page(
        request,
        "blog_post.html",
        user,
        status_code=status,
        pipeline=pipeline,
        company_name=await company_name(session, pipeline.company_id),
        post=post,
        current=current,
        body=markdown_html(post_body(current.markdown), numbers) if current else "",
        pages=pages_of(current.word_count) if current else 0,
        history=list(reversed(history)),
        waiting=waiting,
        editable=waiting and post.status == "DRAFT",
        draft=draft if draft is not None else (current.markdown if current else ""),
        editing=draft is not None,
        error=error,
        notice=request.query_params.get("notice", ""),
    )


@router.get("/pipelines/{pipeline_id}/blogposts/{blog_post_id}", response_class=HTMLResponse)
async def blog_post_view(
    request: Request, pipeline_id: uuid.UUID, blog_post_id: uuid.UUID, user: StudioUserDep, session: SessionDep
) -> Response:
    pipeline = await owned_pipeline(session, user, pipeline_id)
    return await blog_post_page(request, user, session, pipeline, blog_post_id)


@router.post("/pipelines/{pipeline_id}/blogposts/{blog_post_id}", response_class=HTMLResponse)
async def blog_post_decide(
    request: Request,
    pipeline_id: uuid.UUID,
    blog_post_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> Response:
    form = await checked_form(request, user)
    pipeline = await owned_pipeline(session, user, pipeline_id)
    if not user.can_decide:
        return await blog_post_page(request, user, session, pipeline, blog_post_id, DECIDE_REASON, 403)
    decision = str(form.get("decision") or "")
    feedback = str(form.get("feedback") or "").strip()
    if decision not in ("approve", "request_changes"):
        return await blog_post_page(request, user, session, pipeline, blog_post_id, "Choose a decision.", 422)
    if decision == "request_changes" and not feedback:
        error = "Say what should change in Feedback before requesting changes. Nothing was changed."
        return await blog_post_page(request, user, session, pipeline, blog_post_id, error, 422)
    try:
        branch = await blog_post_branch(session, pipeline, blog_post_id)
        body = BlogPostDecision(blog_post_id=blog_post_id, decision=decision, feedback=feedback or None)
        await decide(temporal, pipeline, TopicBranchWorkflow.decide_blogpost, body, branch)
    except Problem as refusal:
        error = f"{refusal.detail}. Nothing was changed."
        return await blog_post_page(request, user, session, pipeline, blog_post_id, error, 422)
    notice = "Blog post approved: social posts are being written." if decision == "approve" else "Changes requested."
    return see_other(f"/studio/pipelines/{pipeline_id}?notice={quote(notice)}")


@router.post("/pipelines/{pipeline_id}/blogposts/{blog_post_id}/edit", response_class=HTMLResponse)
async def blog_post_edit(
    request: Request, pipeline_id: uuid.UUID, blog_post_id: uuid.UUID, user: StudioUserDep, session: SessionDep
) -> Response:
    """The supervisor's own edit, saved as the next revision (as POST .../blogposts/{id}/revisions/ does)."""
    form = await checked_form(request, user)
    pipeline = await owned_pipeline(session, user, pipeline_id)
    markdown = str(form.get("markdown") or "")
    if not user.can_decide:
        return await blog_post_page(request, user, session, pipeline, blog_post_id, DECIDE_REASON, 403, markdown)
    try:
        saved = await add_person_revision(session, user.principal, pipeline.company_id, blog_post_id, markdown)
    except Problem as refusal:
        if refusal.status == 404:
            raise StudioNotFound() from None
        error = f"{refusal.detail}. Nothing was saved."
        return await blog_post_page(request, user, session, pipeline, blog_post_id, error, refusal.status, markdown)
    notice = f"Saved as revision {saved.revision}, written by you. Approve it or request changes."
    return see_other(f"/studio/pipelines/{pipeline_id}/blogposts/{blog_post_id}?notice={quote(notice)}")


# ---- a failed branch -------------------------------------------------------------------------------------------


@router.post("/pipelines/{pipeline_id}/failures/{topic_id}", response_class=HTMLResponse)
async def failure_decide(
    request: Request,
    pipeline_id: uuid.UUID,
    topic_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> Response:
    form = await checked_form(request, user)
    pipeline = await owned_pipeline(session, user, pipeline_id)
    if not user.can_decide:
        return see_other(f"/studio/approvals?notice={quote(DECIDE_REASON)}")
    decision = str(form.get("decision") or "")
    try:
        if decision not in ("retry", "drop"):
            raise Problem(422, "choose Retry or Drop")
        branch = branch_of(pipeline, topic_id, Gate.FAILURE, topic_id)
        await decide(
            temporal,
            pipeline,
            TopicBranchWorkflow.decide_failure,
            FailureDecision(topic_id=topic_id, decision=decision),
            branch,
        )
    except Problem as refusal:
        return see_other(f"/studio/approvals?notice={quote(refusal.detail + '. Nothing was changed.')}")
    notice = "Retrying the branch from the stage that failed." if decision == "retry" else "The topic was dropped."
    return see_other(f"/studio/approvals?notice={quote(notice)}")


# ---- errors ----------------------------------------------------------------------------------------------------


def install_studio(app: Any) -> None:
    """The studio's pages, assets and error pages on the API's app."""
    from fastapi.staticfiles import StaticFiles

    from api.studio.calendar import router as calendar_router
    from api.studio.channels import router as channels_router
    from api.studio.companies_new import router as companies_new_router
    from api.studio.company import router as company_router
    from api.studio.render import STATIC_DIR
    from api.studio.social import router as social_router

    async def signed_out(request: Request, exc: Exception) -> Response:
        why = exc.reason if isinstance(exc, SignInRequired) else ""
        target = "/studio/sign-in" + (f"?why={why}" if why else "")
        response: Response
        if request.headers.get("hx-request"):
            response = Response(status_code=401, headers={"HX-Redirect": target})
        else:
            response = see_other(target)
        clear_cookie(response, SESSION_COOKIE)
        return response

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", None, status_code=403, title="Form refused", message=CSRF_MESSAGE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", None, status_code=404, title="Not found", message=NOT_FOUND_MESSAGE)

    app.add_exception_handler(SignInRequired, signed_out)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(StudioNotFound, not_found)
    app.mount("/studio/static", StaticFiles(directory=STATIC_DIR), name="studio-static")
    app.include_router(companies_new_router)  # first: /studio/companies/new is no company id
    app.include_router(company_router)
    app.include_router(channels_router)
    app.include_router(router)
    app.include_router(calendar_router)
    app.include_router(social_router)


CSRF_MESSAGE = "This form did not come from a studio page of this session, or the page is too old. Nothing was changed."
NOT_FOUND_MESSAGE = "There is nothing here, or it belongs to another account."
