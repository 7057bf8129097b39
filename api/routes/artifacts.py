"""What the pipeline produced for a company, read back: DNA versions, personas, topics, blog posts, social posts,
media."""

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.types import DecoratedCallable
from sqlmodel import col

from api.deps import KeyDep, MarketerDep, Principal, SessionDep, SettingsDep, TemporalDep, check_role, owned_by_path
from api.errors import PROBLEMS, Problem, not_found, problems
from api.routing import SlashRouter
from api.services.artifacts import (
    ListingDep,
    add_person_revision,
    blog_post_detail,
    blog_posts_public,
    media_public,
    social_posts_public,
)
from api.services.social_posts import edit_text, hold_back, publish_again, reschedule
from models.api import CompanyDNAPublic, Page
from models.artifacts import (
    BlogPostDetail,
    BlogPostEdit,
    BlogPostPublic,
    BlogRevision,
    MediaPublic,
    PersonaPublic,
    PublishAgainAccepted,
    PublishAgainIn,
    SocialPostEdit,
    SocialPostMove,
    SocialPostMoved,
    SocialPostPublic,
    TopicPublic,
)
from models.enums import BlogPostStatus, MediaKind, Platform, PublishState, Role, TopicStatus
from models.pipeline import MONTH_PATTERN
from models.tables import BlogPost, CompanyDNA, MediaAsset, Persona, SocialPost, Topic

router = SlashRouter(prefix="/companies", tags=["artifacts"])


# The objects that changes name in their path, as dependencies: another tenant's is a 404 before the body is read
# (refusal_before_body), whatever the key's role; then a key below the change's role is a 403.
@owned_by_path("blog_post_id", role=Role.SUPERVISOR)
async def edited_blog_post(blog_post_id: uuid.UUID, principal: KeyDep, session: SessionDep) -> BlogPost:
    post = await session.get(BlogPost, blog_post_id)
    if post is None or post.tenant_id != principal.tenant_id:
        raise not_found("the blog post")
    check_role(principal, Role.SUPERVISOR)
    return post


def social_post_of(post: SocialPost | None, principal: Principal) -> SocialPost:
    if post is None or post.tenant_id != principal.tenant_id:
        raise not_found("the social post")
    return post


@owned_by_path("social_post_id")
async def own_social_post(social_post_id: uuid.UUID, principal: MarketerDep, session: SessionDep) -> SocialPost:
    return social_post_of(await session.get(SocialPost, social_post_id), principal)


@owned_by_path("social_post_id", role=Role.SUPERVISOR)
async def resent_social_post(social_post_id: uuid.UUID, principal: KeyDep, session: SessionDep) -> SocialPost:
    post = social_post_of(await session.get(SocialPost, social_post_id), principal)
    check_role(principal, Role.SUPERVISOR)
    return post


TENANCY = "Another tenant's company answers 404."


def read(path: str, model: Any, summary: str, description: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A GET of this router: marketer and up, problem+json errors, the tenancy rule said in its description."""
    return router.get(
        path, response_model=model, responses=PROBLEMS, summary=summary, description=f"{description} {TENANCY}"
    )


@read(
    "/{company_id}/dna/versions",
    Page[CompanyDNAPublic],
    "Every version of the company's DNA, newest first",
    "Each DNA research run adds a version; `GET /companies/{id}/dna` answers the latest.",
)
async def list_dna_versions(listing: ListingDep) -> Page[CompanyDNAPublic]:
    rows, count = await listing.rows(CompanyDNA, [col(CompanyDNA.version).desc()])
    return listing.page([CompanyDNAPublic.model_validate(row) for row in rows], count)


@read(
    "/{company_id}/personas",
    Page[PersonaPublic],
    "The company's personas, in the order they were proposed",
    "`selected` keeps only the personas chosen (or not chosen) at the personas gate.",
)
async def list_personas(
    listing: ListingDep,
    selected: Annotated[bool | None, Query(description="only selected (true) or unselected (false) personas")] = None,
) -> Page[PersonaPublic]:
    rows, count = await listing.rows(
        Persona, [col(Persona.position), col(Persona.created_at), col(Persona.id)], selected=selected
    )
    return listing.page([PersonaPublic.model_validate(row) for row in rows], count)


@read(
    "/{company_id}/topics",
    Page[TopicPublic],
    "The company's topics, by month",
    "Ordered by month, position in the month's plan, then revision: a topic regenerated after a rejection "
    "follows the one it replaces.",
)
async def list_topics(
    listing: ListingDep,
    month: Annotated[
        str | None, Query(pattern=MONTH_PATTERN, description="only this month, YYYY-MM", examples=["2026-03"])
    ] = None,
    status: Annotated[TopicStatus | None, Query(description="only topics with this status")] = None,
    persona_id: Annotated[
        uuid.UUID | None, Query(alias="personaId", description="only topics for this persona")
    ] = None,
) -> Page[TopicPublic]:
    order = [col(Topic.month), col(Topic.position), col(Topic.revision), col(Topic.created_at), col(Topic.id)]
    rows, count = await listing.rows(Topic, order, month=month, status=status, persona_id=persona_id)
    return listing.page([TopicPublic.model_validate(row) for row in rows], count)


@read(
    "/{company_id}/blogposts",
    Page[BlogPostPublic],
    "The company's blog posts, newest first, with a summary of their revisions",
    "Each post lists its revisions (number, word count, feedback) without the Markdown; "
    "`GET /companies/{id}/blogposts/{blogPostId}` has the text.",
)
async def list_blog_posts(
    listing: ListingDep,
    status: Annotated[BlogPostStatus | None, Query(description="only posts with this status")] = None,
    topic_id: Annotated[uuid.UUID | None, Query(alias="topicId", description="only the post of this topic")] = None,
) -> Page[BlogPostPublic]:
    order = [col(BlogPost.created_at).desc(), col(BlogPost.id).desc()]
    posts, count = await listing.rows(BlogPost, order, status=status, topic_id=topic_id)
    return listing.page(await blog_posts_public(listing.session, posts), count)


@router.post(
    "/{company_id}/blogposts/{blog_post_id}/revisions/",
    status_code=201,
    response_model=BlogRevision,
    responses={**PROBLEMS, **problems(_409="the post is being written, approved, or has no text yet")},
    summary="Edit a blog post: a supervisor's own text saved as its next revision",
    description="The whole Markdown of the post, saved as revision n + 1 and marked `writtenBy: person`; its "
    "citation markers must name the current revision's sources (422 otherwise, or when nothing changed). Only "
    "a draft waiting for review can be edited (409 while it is being written or once approved); approve it at "
    "the gate afterwards as usual. A supervisor's or admin's key; another tenant's post answers 404.",
)
async def edit_blog_post(
    company_id: uuid.UUID,
    blog_post_id: uuid.UUID,
    body: BlogPostEdit,
    principal: KeyDep,
    session: SessionDep,
    _: Annotated[BlogPost, Depends(edited_blog_post)],
) -> BlogRevision:
    return await add_person_revision(session, principal, company_id, blog_post_id, body.markdown)


@read(
    "/{company_id}/blogposts/{blog_post_id}",
    BlogPostDetail,
    "One blog post with its Markdown and every revision",
    "`markdown` and `citations` are the current revision's; `revisions` holds every revision with its text, "
    "or only revision n with `?revision=n` (404 if there is none). Another company's post answers 404 too.",
)
async def get_blog_post(
    company_id: uuid.UUID,
    blog_post_id: uuid.UUID,
    principal: MarketerDep,
    session: SessionDep,
    revision: Annotated[int | None, Query(ge=1, le=1000, description="only this revision")] = None,
) -> BlogPostDetail:
    return await blog_post_detail(session, principal.tenant_id, company_id, blog_post_id, revision)


@read(
    "/{company_id}/social-posts",
    Page[SocialPostPublic],
    "The company's social posts in publishing order, with their schedule, publish state and images",
    "Ordered by `publishAt` (unscheduled posts last), then by creation. Each post carries its images with "
    "download URLs that take the API key.",
)
async def list_social_posts(
    listing: ListingDep,
    settings: SettingsDep,
    blog_post_id: Annotated[
        uuid.UUID | None, Query(alias="blogPostId", description="only posts promoting this blog post")
    ] = None,
    platform: Annotated[Platform | None, Query(description="only posts for this platform")] = None,
    publish_state: Annotated[
        PublishState | None, Query(alias="publishState", description="only posts in this state")
    ] = None,
) -> Page[SocialPostPublic]:
    order = [col(SocialPost.publish_at).asc().nulls_last(), col(SocialPost.created_at), col(SocialPost.id)]
    posts, count = await listing.rows(
        SocialPost, order, blog_post_id=blog_post_id, platform=platform, publish_state=publish_state
    )
    return listing.page(await social_posts_public(listing.session, settings, posts), count)


@router.patch(
    "/{company_id}/social-posts/{social_post_id}",
    response_model=SocialPostPublic,
    responses={**PROBLEMS, **problems(_409="the post is being sent or has been published")},
    summary="Edit a social post's text before it goes out",
    description="The whole post as it will be sent (link and hashtags included; its hashtags are the ones in the "
    "text). Checked against the platform's limit as the platform counts it (X counts every link as 23 "
    "characters; Bluesky counts graphemes): 422 with the count otherwise. A post being sent or published answers "
    "409. Another tenant's post answers 404.",
)
async def edit_social_post(
    company_id: uuid.UUID,
    social_post_id: uuid.UUID,
    body: SocialPostEdit,
    principal: MarketerDep,
    session: SessionDep,
    settings: SettingsDep,
    _: Annotated[SocialPost, Depends(own_social_post)],
) -> SocialPostPublic:
    post = await edit_text(session, principal, company_id, social_post_id, body.text)
    [public] = await social_posts_public(session, settings, [post])
    return public


@router.post(
    "/{company_id}/social-posts/{social_post_id}/reschedule/",
    response_model=SocialPostMoved,
    responses={
        **PROBLEMS,
        **problems(
            _409="the post is not waiting for its time in a running pipeline",
            _503="the workflow engine is not reachable; nothing was moved",
            _504="the pipeline did not answer in time",
        ),
    },
    summary="Move a scheduled social post to another time",
    description="A time without an offset is the company's local time. The post's durable timer in its pipeline "
    "follows at once. Only a post waiting for its time in a running pipeline can move (409 otherwise, also once "
    "it is being sent); a time that has passed answers 422.",
)
async def reschedule_social_post(
    company_id: uuid.UUID,
    social_post_id: uuid.UUID,
    body: SocialPostMove,
    principal: MarketerDep,
    session: SessionDep,
    temporal: TemporalDep,
    _: Annotated[SocialPost, Depends(own_social_post)],
) -> SocialPostMoved:
    done = await reschedule(session, temporal, principal, company_id, social_post_id, body.publish_at)
    return SocialPostMoved(social_post_id=done.social_post_id, publish_at=done.publish_at, local_time=done.local_time)


@router.post(
    "/{company_id}/social-posts/{social_post_id}/publish-again/",
    status_code=202,
    response_model=PublishAgainAccepted,
    responses={
        **PROBLEMS,
        **problems(
            _409="the post is not UNCONFIRMED or FAILED, is being published again, or its topic awaits a decision",
            _503="the workflow engine is not reachable; nothing was sent",
        ),
    },
    summary="Publish again a post that ended UNCONFIRMED or FAILED, after checking the receiver",
    description="`receiverChecked` must be true: an UNCONFIRMED post may have arrived, and only a person who "
    "looked can say it did not. The post is sent through the same publisher with a fresh send budget (and its "
    "delivery id, so a receiver that has it after all drops the copy). Supervisor or admin; 409 for any other "
    "state, while it is already being published again, or while its topic waits for a failure decision.",
)
async def publish_social_post_again(
    company_id: uuid.UUID,
    social_post_id: uuid.UUID,
    body: PublishAgainIn,
    principal: KeyDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    _: Annotated[SocialPost, Depends(resent_social_post)],
) -> PublishAgainAccepted:
    if not body.receiver_checked:
        raise Problem(
            422,
            "check the receiver first: set receiverChecked to true once you know the post is not there",
            errors=[{"field": "receiverChecked", "message": "must be true", "type": "confirmation"}],
        )
    workflow_id = await publish_again(session, temporal, settings, principal, company_id, social_post_id)
    return PublishAgainAccepted(social_post_id=social_post_id, workflow_id=workflow_id)


@router.post(
    "/{company_id}/social-posts/{social_post_id}/hold-back/",
    response_model=SocialPostPublic,
    responses={**PROBLEMS, **problems(_409="the post has started going out (or has gone): it cannot be held back")},
    summary="Do not publish a post that has not gone out (a supervisor's decision)",
    description="For a post that waits, typically for its channel to be reconnected: it becomes FAILED with a "
    "message saying a supervisor decided not to publish it, and is never sent. Its topic's branch then asks for a "
    "decision as for any post that did not go out (retry it once the channel is back, or drop it). Supervisor or "
    "admin; 409 once the post is being sent or has gone.",
)
async def hold_back_social_post(
    company_id: uuid.UUID,
    social_post_id: uuid.UUID,
    principal: KeyDep,
    session: SessionDep,
    settings: SettingsDep,
    _: Annotated[SocialPost, Depends(resent_social_post)],
) -> SocialPostPublic:
    post = await hold_back(session, principal, company_id, social_post_id)
    [public] = await social_posts_public(session, settings, [post])
    return public


@read(
    "/{company_id}/media",
    Page[MediaPublic],
    "The company's images and videos, newest first, with download URLs",
    "`downloadUrl` is the API's `GET /api/v1/media/{id}/file`: send the same `Authorization: Bearer <api key>` "
    "header to download the file.",
)
async def list_media(
    listing: ListingDep,
    settings: SettingsDep,
    kind: Annotated[MediaKind | None, Query(description="only images or only videos")] = None,
    social_post_id: Annotated[
        uuid.UUID | None, Query(alias="socialPostId", description="only the media of this social post")
    ] = None,
    blog_post_id: Annotated[
        uuid.UUID | None, Query(alias="blogPostId", description="only the media of this blog post")
    ] = None,
) -> Page[MediaPublic]:
    order = [col(MediaAsset.created_at).desc(), col(MediaAsset.id).desc()]
    assets, count = await listing.rows(
        MediaAsset, order, kind=kind, social_post_id=social_post_id, blog_post_id=blog_post_id
    )
    return listing.page([media_public(settings, asset) for asset in assets], count)
