"""What the supervisor's inbox shows of channels: the tenant's channels that need a person, and the social posts
that wait for a channel to be connected again or failed because none is connected. One tenant-scoped query each."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.studio.render import aware, zone_of
from models.channels import ChannelState
from models.enums import Platform, PublishState
from models.tables import Channel, Company, SocialPost

# How activities/publish.py's messages begin: a post that waits for its channel to be connected again (it stays
# SCHEDULED or PUBLISHING and is retried), and one that failed because the company has no channel and the tenant no
# webhook (NO_PUBLISHER_MESSAGE).
WAITING_FOR_CHANNEL = "waiting for the "
NO_CHANNEL = "connect a "
POSTS_SHOWN = 100

WHY_BY_STATE = {
    ChannelState.NEEDS_RECONNECT: "the platform refused its credentials",
    ChannelState.REVOKED: "the account's owner revoked this app's access",
}


@dataclass(frozen=True)
class ChannelTrouble:
    channel_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    platform: Platform
    handle: str
    state: ChannelState
    why: str


@dataclass(frozen=True)
class PostWaiting:
    post_id: uuid.UUID
    blog_post_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    platform: Platform
    state: PublishState
    local: datetime | None  # the post's time in its company's zone
    message: str


async def channels_in_trouble(session: AsyncSession, tenant_id: uuid.UUID) -> list[ChannelTrouble]:
    """The tenant's channels that are not connected, by company and platform."""
    rows = (
        await session.exec(
            select(Channel, Company)
            .join(Company, col(Company.id) == col(Channel.company_id))
            .where(
                col(Channel.tenant_id) == tenant_id,
                col(Company.tenant_id) == tenant_id,
                col(Channel.state) != ChannelState.CONNECTED.value,
            )
            .order_by(col(Company.name), col(Company.id), col(Channel.platform))
        )
    ).all()
    troubles = []
    for channel, company in rows:
        state = ChannelState(channel.state)
        troubles.append(
            ChannelTrouble(
                channel_id=channel.id,
                company_id=company.id,
                company_name=company.name,
                platform=Platform(channel.platform),
                handle=channel.handle,
                state=state,
                why=channel.last_error or WHY_BY_STATE.get(state, state.label),
            )
        )
    return troubles


async def posts_without_channel(session: AsyncSession, tenant_id: uuid.UUID) -> list[PostWaiting]:
    """The tenant's social posts that wait for a channel or failed for the want of one, the earliest first (at most
    POSTS_SHOWN)."""
    error = col(SocialPost.publish_error)
    rows = (
        await session.exec(
            select(SocialPost, Company)
            .join(Company, col(Company.id) == col(SocialPost.company_id))
            .where(
                col(SocialPost.tenant_id) == tenant_id,
                col(Company.tenant_id) == tenant_id,
                or_(
                    and_(
                        col(SocialPost.publish_state).in_(
                            [PublishState.SCHEDULED.value, PublishState.PUBLISHING.value]
                        ),
                        error.startswith(WAITING_FOR_CHANNEL, autoescape=True),
                    ),
                    and_(
                        col(SocialPost.publish_state) == PublishState.FAILED.value,
                        error.startswith(NO_CHANNEL, autoescape=True),
                    ),
                ),
            )
            .order_by(col(SocialPost.publish_at).asc().nulls_last(), col(SocialPost.id))
            .limit(POSTS_SHOWN)
        )
    ).all()
    return [
        PostWaiting(
            post_id=post.id,
            blog_post_id=post.blog_post_id,
            company_id=company.id,
            company_name=company.name,
            platform=Platform(post.platform),
            state=PublishState(post.publish_state),
            local=aware(post.publish_at).astimezone(zone_of(company)) if post.publish_at else None,
            message=post.publish_error or "",
        )
        for post, company in rows
    ]
