"""Reading back what the pipeline produced for a company: one page of a company's rows, the public views of
blog posts with their revisions and of social posts with their media."""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends
from pydantic import BaseModel
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import LimitQuery, MarketerDep, OffsetQuery, Principal, SessionDep, check_role
from api.errors import Problem, not_found
from api.routes.companies import company_of_tenant
from models.api import Page
from models.artifacts import (
    BlogPostDetail,
    BlogPostPublic,
    BlogRevision,
    MediaPublic,
    RevisionSummary,
    SocialPostPublic,
)
from models.enums import BlogPostStatus, JobStatus, JobType, Role
from models.prose import citation_problems, count_words
from models.settings import Settings
from models.tables import AIJob, BlogPost, BlogPostRevision, MediaAsset, SocialPost

Row = TypeVar("Row", bound=SQLModel)
T = TypeVar("T")
Public = TypeVar("Public", bound=BaseModel)
K = TypeVar("K")
V = TypeVar("V")


@dataclass
class Listing:
    """What every list here starts from: the caller, a company of theirs, and the page asked for."""

    company_id: uuid.UUID
    principal: MarketerDep
    session: SessionDep
    limit: LimitQuery = 50
    offset: OffsetQuery = 0

    async def rows(self, table: type[Row], order: Sequence[Any], **filters: Any) -> tuple[Sequence[Row], int]:
        """One page of the company's rows of `table` with the filters that were given (None: not given), and the
        total."""
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


async def blog_posts_public(session: AsyncSession, posts: Sequence[BlogPost]) -> list[BlogPostPublic]:
    """The posts with a summary of each revision; only the summaries' columns, never every revision's Markdown."""
    columns = [
        col(BlogPostRevision.blog_post_id),
        *(col(getattr(BlogPostRevision, name)) for name in RevisionSummary.model_fields),
    ]
    summaries = await session.exec(
        select(*columns)  # type: ignore[call-overload]
        .where(col(BlogPostRevision.blog_post_id).in_([post.id for post in posts]))
        .order_by(col(BlogPostRevision.revision))
    )
    by_post = grouped(summaries.all(), lambda row: row.blog_post_id)
    return [
        public(BlogPostPublic, post, revisions=[RevisionSummary.model_validate(row) for row in by_post[post.id]])
        for post in posts
    ]


async def blog_post_detail(
    session: AsyncSession, tenant_id: uuid.UUID, company_id: uuid.UUID, blog_post_id: uuid.UUID, revision: int | None
) -> BlogPostDetail:
    """One post with the current revision's Markdown and every revision (or only `revision`); 404 for another
    tenant's or company's post, or a revision it does not have."""
    await company_of_tenant(session, tenant_id, company_id)
    post = await session.get(BlogPost, blog_post_id)
    if post is None or post.tenant_id != tenant_id or post.company_id != company_id:
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


async def social_posts_public(
    session: AsyncSession, settings: Settings, posts: Sequence[SocialPost]
) -> list[SocialPostPublic]:
    """The posts, each with its images and their download URLs."""
    assets = await session.exec(
        select(MediaAsset)
        .where(col(MediaAsset.social_post_id).in_([post.id for post in posts]))
        .order_by(col(MediaAsset.created_at), col(MediaAsset.id))
    )
    by_post = grouped((media_public(settings, asset) for asset in assets.all()), lambda media: media.social_post_id)
    return [public(SocialPostPublic, post, media=by_post[post.id]) for post in posts]


async def add_person_revision(
    session: AsyncSession, principal: Principal, company_id: uuid.UUID, blog_post_id: uuid.UUID, markdown: str
) -> BlogRevision:
    """A supervisor's own edit saved as the post's next revision, marked as written by a person, with the current
    revision's sources (every marker must still name one). Only a draft waiting for review can be edited: not
    one being rewritten (its job would write the same revision), nor an approved one (its social posts were
    written from it). Another tenant's or company's post: 404, whatever the key's role."""
    await company_of_tenant(session, principal.tenant_id, company_id)
    post = (await session.exec(select(BlogPost).where(col(BlogPost.id) == blog_post_id).with_for_update())).first()
    if post is None or post.tenant_id != principal.tenant_id or post.company_id != company_id:
        raise not_found("the blog post")
    check_role(principal, Role.SUPERVISOR)
    if post.status != BlogPostStatus.DRAFT.value:
        raise Problem(409, f"only a draft waiting for review can be edited; this post is {post.status}")
    writing = (
        await session.exec(
            select(AIJob.id)
            .where(
                col(AIJob.job_type) == JobType.GENERATE_BLOGPOST.value,
                col(AIJob.topic_id) == post.topic_id,
                col(AIJob.status).in_([JobStatus.PENDING.value, JobStatus.PROCESSING.value]),
            )
            .limit(1)
        )
    ).first()
    if writing is not None:
        raise Problem(409, f"the post is being written (job {writing}); edit it when it waits for review")
    current = (
        await session.exec(
            select(BlogPostRevision).where(
                col(BlogPostRevision.blog_post_id) == post.id, col(BlogPostRevision.revision) == post.current_revision
            )
        )
    ).first()
    if current is None:
        raise Problem(409, "the post has no text yet; edit it when it waits for review")
    text = markdown.strip()
    if text == current.markdown.strip():
        raise Problem(
            422,
            f"the text is the same as revision {current.revision}; nothing was saved",
            errors=[{"field": "markdown", "message": "unchanged", "type": "unchanged"}],
        )
    problems = citation_problems(text, len(current.citations))
    if problems:
        raise Problem(
            422,
            "; ".join(problems),
            errors=[{"field": "markdown", "message": problem, "type": "citation"} for problem in problems],
        )
    revision = BlogPostRevision(
        tenant_id=post.tenant_id,
        blog_post_id=post.id,
        revision=post.current_revision + 1,
        markdown=text,
        word_count=count_words(text),
        citations=current.citations,
        written_by="person",
        edited_by_key_id=principal.key_id,
    )
    post.current_revision = revision.revision
    post.updated_at = revision.created_at
    session.add(post)
    session.add(revision)
    await session.commit()
    return BlogRevision.model_validate(revision)
