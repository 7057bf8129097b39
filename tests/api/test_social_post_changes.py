"""What a person does to a social post: edit its text within the platform's limit, move it to another time (the
pipeline's durable timer follows), and publish again a post that ended FAILED or UNCONFIRMED, never twice."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from models.db import Database
from models.enums import Platform, PublishState, Role
from models.tables import AIJob, BlogPost, Company, Persona, SocialPost, Topic
from tests.api.test_pipeline_api import new_company, start
from tests.support.stack import RunningStack, Tenant
from tests.support.webhook_receiver import receiving


async def a_post(
    db: Database, tenant: Tenant, platform: Platform = Platform.X, state: PublishState = PublishState.SCHEDULED
) -> tuple[uuid.UUID, uuid.UUID]:
    """A company with one social post in `state`, made directly; returns (company id, post id)."""
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Posts Co", website="https://posts.example")
        session.add(company)
        await session.flush()
        persona = Persona(tenant_id=tenant.id, company_id=company.id, name="Pat")
        session.add(persona)
        await session.flush()
        topic = Topic(tenant_id=tenant.id, company_id=company.id, persona_id=persona.id, month="2027-01", title="T")
        session.add(topic)
        await session.flush()
        blog = BlogPost(tenant_id=tenant.id, company_id=company.id, topic_id=topic.id, title="B", slug="b")
        session.add(blog)
        await session.flush()
        post = SocialPost(
            tenant_id=tenant.id,
            company_id=company.id,
            blog_post_id=blog.id,
            platform=platform,
            text="Downtime costs a shift a week. https://posts.example/b #maintenance",
            hashtags=["maintenance"],
            publish_at=datetime.now(UTC) + timedelta(days=3),
            publish_state=state,
        )
        session.add(post)
        await session.commit()
        return company.id, post.id


async def post_row(db: Database, post_id: uuid.UUID) -> SocialPost:
    async with db.session() as session:
        post = await session.get(SocialPost, post_id)
    assert post is not None
    return post


async def test_editing_a_post_counts_as_the_platform_counts(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    company, post = await a_post(db, tenant)
    url = f"/api/v1/companies/{company}/social-posts/{post}"
    # X counts each link as 23: 250 letters + a space + a 100-character link = 274 as X counts (351 code points).
    fits = "a" * 250 + " https://posts.example/" + "p" * 77 + " #ops"
    assert len(fits) > 280
    saved = await stack.http.patch(url, json={"text": fits}, headers=tenant.headers())
    assert saved.status_code == 200, saved.text
    assert saved.json()["text"] == fits and saved.json()["hashtags"] == ["ops"]
    too_long = await stack.http.patch(url, json={"text": "a" * 281}, headers=tenant.headers())
    assert too_long.status_code == 422 and "281 characters; X allows 280" in too_long.json()["detail"]
    assert (await post_row(db, post)).text == fits  # nothing changed
    foreign = await stack.http.patch(url, json={"text": "hi"}, headers=other_tenant.headers(Role.ADMIN))
    assert foreign.status_code == 404

    company, published = await a_post(db, tenant, state=PublishState.PUBLISHED)
    gone = await stack.http.patch(
        f"/api/v1/companies/{company}/social-posts/{published}", json={"text": "hi"}, headers=tenant.headers()
    )
    assert gone.status_code == 409 and "PUBLISHED" in gone.json()["detail"]


async def wait_state(db: Database, post_id: uuid.UUID, state: PublishState, seconds: float = 60) -> SocialPost:
    for _ in range(int(seconds * 10)):
        post = await post_row(db, post_id)
        if post.publish_state == state:
            return post
        await asyncio.sleep(0.1)
    raise AssertionError(f"post {post_id} is {post.publish_state}, not {state}")


async def test_publish_again_only_on_a_persons_word_and_never_twice(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    async with receiving() as receiver:
        hook = await stack.http.put(
            "/api/v1/tenant/webhook", json={"url": receiver.url}, headers=tenant.headers(Role.ADMIN)
        )
        assert hook.status_code == 200, hook.text
        receiver.secret = hook.json()["secret"]
        company, post = await a_post(db, tenant, state=PublishState.FAILED)
        url = f"/api/v1/companies/{company}/social-posts/{post}/publish-again/"
        supervisor = tenant.headers(Role.SUPERVISOR)
        assert (await stack.http.post(url, json={"receiverChecked": True}, headers=tenant.headers())).status_code == 403
        unchecked = await stack.http.post(url, json={"receiverChecked": False}, headers=supervisor)
        assert unchecked.status_code == 422 and "check the receiver" in unchecked.json()["detail"]
        assert (await post_row(db, post)).publish_state == PublishState.FAILED

        accepted = await stack.http.post(url, json={"receiverChecked": True}, headers=supervisor)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["workflowId"] == f"publish-again-{post}"
        sent = await wait_state(db, post, PublishState.PUBLISHED)
        assert sent.external_id and len(receiver.held) == 1 and receiver.duplicates == 0
        again = await stack.http.post(url, json={"receiverChecked": True}, headers=supervisor)
        assert again.status_code == 409 and "PUBLISHED" in again.json()["detail"]
        assert len(receiver.requests) == 1


async def test_moving_a_post_moves_its_timer(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    """A pipeline (every gate approved by itself) schedules its posts over next month and waits on their timers;
    one post moved to a few seconds from now is published then, the others keep waiting."""
    async with receiving() as receiver:
        hook = await stack.http.put(
            "/api/v1/tenant/webhook", json={"url": receiver.url}, headers=tenant.headers(Role.ADMIN)
        )
        receiver.secret = hook.json()["secret"]
        company = await new_company(stack.http, tenant)  # Europe/Prague
        pipeline = await start(
            stack.http,
            tenant,
            company,
            autoApprovePersonas=True,
            autoApproveTopics=True,
            autoApproveBlogposts=True,
            compressScheduleSeconds=None,
        )
        posts: list[SocialPost] = []
        for _ in range(1800):
            async with db.session() as session:
                jobs = select(AIJob.id).where(col(AIJob.pipeline_id) == uuid.UUID(pipeline))
                posts = list((await session.exec(select(SocialPost).where(col(SocialPost.job_id).in_(jobs)))).all())
            if posts and all(p.publish_state == PublishState.SCHEDULED for p in posts) and len(posts) >= 6:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the posts were not scheduled: {[(p.id, p.publish_state) for p in posts]}")
        await asyncio.sleep(1)  # the branches reach their timers
        moved, *others = posts
        base = f"/api/v1/companies/{company}/social-posts"

        past = await stack.http.post(
            f"{base}/{moved.id}/reschedule/", json={"publishAt": "2020-01-01T09:00:00"}, headers=tenant.headers()
        )
        assert past.status_code == 422
        # In a few seconds, given as the company's local time (no offset).
        soon = (datetime.now(UTC) + timedelta(seconds=4)).astimezone(ZoneInfo("Europe/Prague"))
        answer = await stack.http.post(
            f"{base}/{moved.id}/reschedule/",
            json={"publishAt": soon.replace(tzinfo=None).isoformat()},
            headers=tenant.headers(),
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert datetime.fromisoformat(body["publishAt"]) == soon.replace(microsecond=soon.microsecond)
        assert body["localTime"].endswith("Europe/Prague")
        assert (await post_row(db, moved.id)).publish_at == soon.astimezone(UTC)

        published = await wait_state(db, moved.id, PublishState.PUBLISHED, seconds=60)
        assert published.published_at is not None
        for other in others:
            assert (await post_row(db, other.id)).publish_state == PublishState.SCHEDULED
        assert len(receiver.held) == 1
        late = await stack.http.post(
            f"{base}/{moved.id}/reschedule/",
            json={"publishAt": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
            headers=tenant.headers(),
        )
        assert late.status_code == 409
        await stack.http.post(f"/api/v1/ai/pipelines/{pipeline}/cancel/", headers=tenant.headers())
