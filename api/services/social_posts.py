"""What a person does to a social post before and after it goes out: edit its text (checked against the
platform's limit as the platform counts it), move it to another time (its branch's durable timer follows), and
publish again a post that ended UNCONFIRMED or FAILED once someone has checked the receiver.

The never-twice rule holds: a post being sent or already published cannot be edited, moved or sent again; an
UNCONFIRMED one (the receiver may have it) goes out again only on a person's explicit word.
"""

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import Principal, check_role
from api.errors import Problem, not_found
from api.routes.companies import company_of_tenant
from api.services.channels import channel_rules
from api.services.decisions import decide
from api.services.pipelines import FINISHED, open_gates
from models.channels import PlatformRules
from models.enums import Gate, Platform, PublishState, Role
from models.generation import PLATFORM_LIMITS
from models.names import COMPANY_ID, TENANT_ID, branch_workflow_id
from models.pipeline import PublishAgain, Rescheduled, ReschedulePost
from models.settings import Settings
from models.tables import AIJob, BlogPost, Company, Pipeline, SocialPost
from models.text_limits import HASHTAG, LIMITS, counted_length, mastodon_length, unit_of
from workflows.branch import TopicBranchWorkflow
from workflows.policies import PIPELINE_QUEUE, priority_for
from workflows.republish import PublishAgainWorkflow, publish_again_workflow_id

# A post that has not gone out may change: waiting, or ended without a receipt (before it is sent again).
EDITABLE = (PublishState.DRAFT, PublishState.SCHEDULED, PublishState.FAILED, PublishState.UNCONFIRMED)
SENT_AGAIN_FROM = (PublishState.UNCONFIRMED, PublishState.FAILED)


async def post_of_company(
    session: AsyncSession, principal: Principal, company_id: uuid.UUID, post_id: uuid.UUID
) -> tuple[Company, SocialPost]:
    """The company's post; 404 for another tenant's or company's, whatever the key's role."""
    company = await company_of_tenant(session, principal.tenant_id, company_id)
    post = await session.get(SocialPost, post_id)
    if post is None or post.tenant_id != principal.tenant_id or post.company_id != company_id:
        raise not_found("the social post")
    return company, post


def hashtags_in(text: str) -> list[str]:
    return list(dict.fromkeys(tag.lstrip("#") for tag in HASHTAG.findall(text)))


def check_text(platform: Platform, text: str, rules: PlatformRules | None = None) -> None:
    """422 when the platform would refuse the text: too long as it counts (a Mastodon instance with its own `rules`,
    from the company's channel), or too many hashtags."""
    problems = []
    if rules is not None:
        length, limit = mastodon_length(text, rules), rules.max_chars
    else:
        length, limit = counted_length(platform, text), LIMITS[platform]
    if length > limit:
        problems.append(
            f"{length} {unit_of(platform)}; {platform.label} allows {limit} (counted as {platform.label} counts)"
        )
    most = PLATFORM_LIMITS[platform].max_hashtags
    if most is not None and len(hashtags_in(text)) > most:
        problems.append(f"{len(hashtags_in(text))} hashtags; {platform.label} allows {most}")
    if problems:
        raise Problem(
            422,
            "; ".join(problems),
            errors=[{"field": "text", "message": problem, "type": "platform_limit"} for problem in problems],
        )


async def edit_text(
    session: AsyncSession, principal: Principal, company_id: uuid.UUID, post_id: uuid.UUID, text: str
) -> SocialPost:
    """The post's new text (its hashtags are the ones in it), while it has not gone out."""
    _, post = await post_of_company(session, principal, company_id, post_id)
    text, state = text.strip(), post.publish_state
    platform = Platform(post.platform)
    check_text(platform, text, await channel_rules(session, company_id, platform))
    changed = await session.exec(  # type: ignore[call-overload]
        sa.update(SocialPost)
        .where(col(SocialPost.id) == post.id, col(SocialPost.publish_state).in_([s.value for s in EDITABLE]))
        .values(text=text, hashtags=hashtags_in(text))
    )
    if not changed.rowcount:
        await session.rollback()
        raise Problem(409, f"the post is {state}: a post being sent or published can no longer change")
    await session.commit()
    await session.refresh(post)
    return post


# A post waiting for its channel that a supervisor decides not to publish: its message says who decided and why.
NOT_PUBLISHED_MESSAGE = "not published: a supervisor decided so while it waited for its {label} channel"


async def hold_back(
    session: AsyncSession, principal: Principal, company_id: uuid.UUID, post_id: uuid.UUID
) -> SocialPost:
    """The supervisor's decision for a post that waits (its channel needs reconnecting, or any post not yet sent):
    it is not published. FAILED with that reason, in one conditional update: a post that is being sent now (or may
    have been) cannot be held back (409). Its publishing then ends as any FAILED post's does: the branch asks for a
    decision (retry once the channel is back, or drop)."""
    _, post = await post_of_company(session, principal, company_id, post_id)
    check_role(principal, Role.SUPERVISOR)
    label, state = Platform(post.platform).label, post.publish_state  # read now: a rollback expires the row
    changed = await session.exec(  # type: ignore[call-overload]
        sa.update(SocialPost)
        .where(
            col(SocialPost.id) == post.id,
            col(SocialPost.publish_state).in_([PublishState.DRAFT.value, PublishState.SCHEDULED.value]),
            col(SocialPost.external_id).is_(None),
        )
        .values(publish_state=PublishState.FAILED.value, publish_error=NOT_PUBLISHED_MESSAGE.format(label=label))
    )
    if not changed.rowcount:
        await session.rollback()
        raise Problem(
            409,
            f"the post is {state}: only a post that has not started going out can be held back "
            "(a post being sent may already be on the platform: check it there)",
        )
    await session.commit()
    await session.refresh(post)
    return post


def publish_time(value: datetime, company: Company) -> datetime:
    """A time without an offset is the company's local time; any time comes back in UTC."""
    if value.tzinfo is None:
        try:
            zone = ZoneInfo(company.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


async def pipeline_of_post(session: AsyncSession, post: SocialPost) -> tuple[Pipeline | None, BlogPost | None]:
    """The pipeline whose social job wrote the post (None for a post of a job of its own), and its blog post."""
    job = await session.get(AIJob, post.job_id) if post.job_id else None
    pipeline = await session.get(Pipeline, job.pipeline_id) if job and job.pipeline_id else None
    return pipeline, await session.get(BlogPost, post.blog_post_id)


async def branch_of_post(session: AsyncSession, post: SocialPost) -> tuple[Pipeline, str]:
    """The running pipeline whose topic branch waits to publish the post, and that branch's workflow id; 409 when
    no pipeline publishes it (a post made by a job of its own, or a pipeline that has ended)."""
    pipeline, blog_post = await pipeline_of_post(session, post)
    if pipeline is None or blog_post is None or pipeline.status in FINISHED:
        raise Problem(409, "no running pipeline publishes this post, so it has no time to move")
    return pipeline, branch_workflow_id(pipeline.workflow_id, blog_post.topic_id)


async def reschedule(
    session: AsyncSession,
    temporal: Client,
    principal: Principal,
    company_id: uuid.UUID,
    post_id: uuid.UUID,
    when: datetime,
) -> Rescheduled:
    """Moves a waiting post: its branch's timer follows at once, then its row records the time."""
    company, post = await post_of_company(session, principal, company_id, post_id)
    publish_at = publish_time(when, company)
    if publish_at <= datetime.now(UTC):
        raise Problem(
            422,
            "the new time has passed; choose a time in the future",
            errors=[{"field": "publishAt", "message": "in the past", "type": "past_time"}],
        )
    if post.publish_state not in (PublishState.DRAFT, PublishState.SCHEDULED):
        raise Problem(409, f"the post is {post.publish_state}; only a post waiting for its time can be moved")
    pipeline, branch = await branch_of_post(session, post)
    await session.commit()  # nothing held while the workflow answers
    request = ReschedulePost(social_post_id=post.id, publish_at=publish_at)
    done: Any = await decide(temporal, pipeline, TopicBranchWorkflow.reschedule_post, request, branch)
    return Rescheduled.model_validate(done)


async def publish_again(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    company_id: uuid.UUID,
    post_id: uuid.UUID,
) -> str:
    """Starts PublishAgainWorkflow for a post that ended UNCONFIRMED or FAILED (a supervisor's word that the
    receiver was checked); its workflow id. A FAILED post of a branch that waits for a decision is retried
    through that decision instead."""
    company, post = await post_of_company(session, principal, company_id, post_id)
    check_role(principal, Role.SUPERVISOR)
    if post.publish_state not in SENT_AGAIN_FROM:
        raise Problem(
            409, f"the post is {post.publish_state}; only an UNCONFIRMED or FAILED post can be published again"
        )
    pipeline, blog_post = await pipeline_of_post(session, post)
    if pipeline is not None and blog_post is not None:
        failed = [g for g in open_gates(pipeline) if g.gate == Gate.FAILURE]
        if any(item.id == blog_post.topic_id for g in failed for item in g.items):
            raise Problem(
                409,
                "this post's topic waits for a decision on its failure: Retry there sends its unsent posts again",
            )
    await session.commit()
    workflow_id = publish_again_workflow_id(post.id)
    try:
        await temporal.start_workflow(
            PublishAgainWorkflow.run,
            PublishAgain(social_post_id=post.id),
            id=workflow_id,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            task_queue=PIPELINE_QUEUE + settings.task_queue_suffix,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID, str(principal.tenant_id)),
                    SearchAttributePair(COMPANY_ID, str(company.id)),
                ]
            ),
            priority=priority_for(principal.tier),
        )
    except WorkflowAlreadyStartedError:
        raise Problem(409, "the post is already being published again") from None
    except Exception as exc:
        raise Problem(
            503, "the workflow engine is not reachable; nothing was sent", headers={"Retry-After": "5"}
        ) from exc
    return workflow_id
