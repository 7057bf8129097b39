"""What the pipeline produced for a company, read back: DNA versions, personas, topics, blog posts, social posts, media."""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from fastapi.types import DecoratedCallable
from pydantic import BaseModel
from sqlmodel import SQLModel, col, select

from api.deps import LimitQuery, MarketerDep, OffsetQuery, SessionDep, SettingsDep
from api.errors import PROBLEMS, not_found
from api.routes.companies import company_of_tenant
from api.routing import SlashRouter
from models.api import CompanyDNAPublic, Page
from models.artifacts import (
    BlogPostDetail,
    BlogPostPublic,
    BlogRevision,
    MediaPublic,
    PersonaPublic,
    RevisionSummary,
    SocialPostPublic,
    TopicPublic,
)
from models.enums import BlogPostStatus, MediaKind, Platform, PublishState, TopicStatus
from models.pipeline import MONTH_PATTERN
from models.settings import Settings
from models.tables import BlogPost, BlogPostRevision, CompanyDNA, MediaAsset, Persona, SocialPost, Topic

router = SlashRouter(prefix="/companies", tags=["artifacts"])

Row = TypeVar("Row", bound=SQLModel)
T = TypeVar("T")
Public = TypeVar("Public", bound=BaseModel)
K = TypeVar("K")
V = TypeVar("V")

TENANCY = "Another tenant's company answers 404."


def read(path: str, model: Any, summary: str, description: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A GET of this router: marketer and up, problem+json errors, the tenancy rule said in its description."""
    return router.get(
        path, response_model=model, responses=PROBLEMS, summary=summary, description=f"{description} {TENANCY}"
    )


@dataclass
class Listing:
    """What every list here starts from: the caller, a company of theirs, and the page asked for."""

    company_id: uuid.UUID
    principal: MarketerDep
    session: SessionDep
    limit: LimitQuery = 50
    offset: OffsetQuery = 0

    async def rows(self, table: type[Row], order: Sequence[Any], **filters: Any) -> tuple[Sequence[Row], int]:
        """One page of the company's rows of `table` with the filters that were given (None: not given), and the total."""
        await company_of_tenant(self.session, self.principal.tenant_id, self.company_id)
        scope = {"tenant_id": self.principal.tenant_id, "company_id": self.company_id, **filters}
        conditions = [
            col(getattr(table, name)) == (value.value if isinstance(value, Enum) else value)
            for name, value in scope.items()
            if value is not None
        ]
        count = (await self.session.exec(select(sa.func.count()).select_from(table).where(*conditions))).one()
        statement = select(table).where(*conditions).order_by(*order).limit(self.limit).offset(self.offset)
        return (await self.session.exec(statement)).all(), count

    def page(self, data: list[T], count: int) -> Page[T]:
        return Page(data=data, count=count, limit=self.limit, offset=self.offset)


ListingDep = Annotated[Listing, Depends()]


def grouped(items: Iterable[V], key: Callable[[V], K]) -> defaultdict[K, list[V]]:
    groups: defaultdict[K, list[V]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def public(model: type[Public], row: SQLModel, **extra: Any) -> Public:
    """The public view of a row, with what the row itself does not hold (its revisions, its media, a URL)."""
    return model.model_validate({name: getattr(row, name) for name in type(row).model_fields} | extra)


def media_public(settings: Settings, asset: MediaAsset) -> MediaPublic:
    return public(
        MediaPublic, asset, download_url=f"{settings.public_base_url.rstrip('/')}/api/v1/media/{asset.id}/file"
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
    # The summaries' columns only: a list of posts does not read every revision's Markdown.
    columns = [
        col(BlogPostRevision.blog_post_id),
        *(col(getattr(BlogPostRevision, name)) for name in RevisionSummary.model_fields),
    ]
    summaries = await listing.session.exec(
        select(*columns)  # type: ignore[call-overload]
        .where(col(BlogPostRevision.blog_post_id).in_([post.id for post in posts]))
        .order_by(col(BlogPostRevision.revision))
    )
    by_post = grouped(summaries.all(), lambda row: row.blog_post_id)
    data = [
        public(BlogPostPublic, post, revisions=[RevisionSummary.model_validate(row) for row in by_post[post.id]])
        for post in posts
    ]
    return listing.page(data, count)


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
    await company_of_tenant(session, principal.tenant_id, company_id)
    post = await session.get(BlogPost, blog_post_id)
    if post is None or post.tenant_id != principal.tenant_id or post.company_id != company_id:
        raise not_found("the blog post")
    rows = await session.exec(
        select(BlogPostRevision)
        .where(col(BlogPostRevision.blog_post_id) == post.id)
        .order_by(col(BlogPostRevision.revision))
    )
    revisions = [BlogRevision.model_validate(row) for row in rows.all()]
    current = next((r for r in revisions if r.revision == post.current_revision), None)
    if revision is not None:
        revisions = [r for r in revisions if r.revision == revision]
        if not revisions:
            raise not_found(f"revision {revision} of the blog post")
    return public(
        BlogPostDetail,
        post,
        markdown=current.markdown if current else None,
        citations=current.citations if current else [],
        revisions=revisions,
    )


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
    assets = await listing.session.exec(
        select(MediaAsset)
        .where(col(MediaAsset.social_post_id).in_([post.id for post in posts]))
        .order_by(col(MediaAsset.created_at), col(MediaAsset.id))
    )
    by_post = grouped((media_public(settings, asset) for asset in assets.all()), lambda media: media.social_post_id)
    return listing.page([public(SocialPostPublic, post, media=by_post[post.id]) for post in posts], count)


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
