"""What the pipeline produced for a company, read back: DNA versions, personas, topics, blog posts, social posts,
media."""

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query
from fastapi.types import DecoratedCallable
from sqlmodel import col

from api.deps import MarketerDep, SessionDep, SettingsDep
from api.errors import PROBLEMS
from api.routing import SlashRouter
from api.services.artifacts import (
    ListingDep,
    add_person_revision,
    blog_post_detail,
    blog_posts_public,
    media_public,
    social_posts_public,
)
from models.api import CompanyDNAPublic, Page
from models.artifacts import (
    BlogPostDetail,
    BlogPostEdit,
    BlogPostPublic,
    BlogRevision,
    MediaPublic,
    PersonaPublic,
    SocialPostPublic,
    TopicPublic,
)
from models.enums import BlogPostStatus, MediaKind, Platform, PublishState, TopicStatus
from models.pipeline import MONTH_PATTERN
from models.tables import BlogPost, CompanyDNA, MediaAsset, Persona, SocialPost, Topic

router = SlashRouter(prefix="/companies", tags=["artifacts"])

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
    responses=PROBLEMS,
    summary="Edit a blog post: a supervisor's own text saved as its next revision",
    description="The whole Markdown of the post, saved as revision n + 1 and marked `writtenBy: person`; its "
    "citation markers must name the current revision's sources (422 otherwise, or when nothing changed). Only "
    "a draft waiting for review can be edited (409 while it is being written or once approved); approve it at "
    "the gate afterwards as usual. A supervisor's or admin's key; another tenant's post answers 404.",
)
async def edit_blog_post(
    company_id: uuid.UUID, blog_post_id: uuid.UUID, body: BlogPostEdit, principal: MarketerDep, session: SessionDep
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
