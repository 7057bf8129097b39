"""Rows for scheduling and publishing tests, written straight to PostgreSQL: a company, persona, topic and
blog post, with social posts (and an image) under them; and the deps the publish activities run with."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlmodel import col, select

from activities.deps import StageDeps
from activities.publish import PublishActivities
from models.db import Database
from models.enums import MediaKind, Platform, PublishState
from models.settings import Settings
from models.tables import BlogPost, Company, MediaAsset, Persona, SocialPost, Tenant, Topic
from providers.router import ProviderRouter

PUBLIC_BASE_URL = "http://cp.test"
WEBHOOK_TIMEOUT_SECONDS = 0.5
# The publish tests' own channel key (never the one under .data), and a platform's time to answer on a busy machine.
CHANNEL_KEY = Fernet.generate_key().decode()
CHANNEL_TIMEOUT_SECONDS = 20.0


def publish_activities(
    database_url: str,
    db: Database,
    *,
    allow_private_networks: bool = True,
    timeout_seconds: float = WEBHOOK_TIMEOUT_SECONDS,
) -> PublishActivities:
    """The publish activities; the test receivers listen on 127.0.0.1, so private networks are allowed unless
    a test says otherwise."""
    settings = Settings(
        database_url=database_url,
        ai_provider="offline",
        webhook_timeout_seconds=timeout_seconds,
        webhook_allow_private_networks=allow_private_networks,
        public_base_url=PUBLIC_BASE_URL,
        channels_allow_private_networks=allow_private_networks,
        channel_keys=CHANNEL_KEY,
        channel_timeout_seconds=CHANNEL_TIMEOUT_SECONDS,
        _env_file=None,  # type: ignore[call-arg]
    )
    return PublishActivities(StageDeps(db=db, router=ProviderRouter.from_settings(settings), settings=settings))


async def make_posts(
    db: Database,
    tenant_id: uuid.UUID,
    platforms: list[Platform],
    *,
    timezone: str = "Europe/Prague",
    state: PublishState = PublishState.SCHEDULED,
    publish_at: datetime | None = None,
    with_image: bool = False,
) -> list[SocialPost]:
    async with db.session() as session:
        company = Company(tenant_id=tenant_id, name="Acme Robotics", timezone=timezone)
        session.add(company)
        await session.flush()
        persona = Persona(tenant_id=tenant_id, company_id=company.id, name="Operations Olga")
        session.add(persona)
        await session.flush()
        topic = Topic(
            tenant_id=tenant_id, company_id=company.id, persona_id=persona.id, month="2026-03", title="Parcel robots"
        )
        session.add(topic)
        await session.flush()
        blog = BlogPost(
            tenant_id=tenant_id, company_id=company.id, topic_id=topic.id, title="Parcel robots", slug="parcel-robots"
        )
        session.add(blog)
        await session.flush()
        posts = [
            SocialPost(
                tenant_id=tenant_id,
                company_id=company.id,
                blog_post_id=blog.id,
                platform=platform,
                text=f"Parcel robots on {platform.value}",
                hashtags=["#robots"],
                publish_state=state,
                publish_at=publish_at,
            )
            for platform in platforms
        ]
        session.add_all(posts)
        await session.flush()
        if with_image:
            for post in posts:
                session.add(
                    MediaAsset(
                        tenant_id=tenant_id,
                        company_id=company.id,
                        social_post_id=post.id,
                        kind=MediaKind.IMAGE,
                        mime_type="image/png",
                        path=f"{company.id}/{post.id}.png",
                        width=1200,
                        height=627,
                        alt_text="A robot sorting parcels",
                    )
                )
        await session.commit()
    return posts


async def set_webhook(db: Database, tenant_id: uuid.UUID, url: str | None, secret: str | None) -> None:
    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(Tenant).where(col(Tenant.id) == tenant_id).values(webhook_url=url, webhook_secret=secret)
        )
        await session.commit()


async def set_post(db: Database, post_id: uuid.UUID, **values: object) -> None:
    """Writes columns of a post straight, to stage what a crash or an earlier version left behind."""
    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(SocialPost).where(col(SocialPost.id) == post_id).values(**values)
        )
        await session.commit()


async def reload(db: Database, post_id: uuid.UUID) -> SocialPost:
    async with db.session() as session:
        post = await session.get(SocialPost, post_id)
    assert post is not None
    return post


async def media_of(db: Database, post_id: uuid.UUID) -> list[MediaAsset]:
    async with db.session() as session:
        rows = await session.exec(select(MediaAsset).where(col(MediaAsset.social_post_id) == post_id))
        return list(rows.all())
