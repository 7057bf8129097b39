"""The whole pipeline with the real activities on the time-skipping server: no compression, so each post
waits on its durable timer until its real publish time next month, and is then delivered once to a real
webhook receiver. The server skips the weeks; the database shows when each post was due."""

import asyncio
import uuid

from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.deps import StageDeps
from models.db import Database
from models.enums import PipelineStatus, Platform, PublishState, Tier
from models.names import Activity, branch_workflow_id
from models.pipeline import PipelineOptions, PipelineRequest, PipelineState, month_after, month_bounds
from models.settings import Settings
from models.tables import Company, Pipeline, SocialPost, Topic
from models.tables import Tenant as TenantRow
from providers.router import ProviderRouter
from tests.support.stack import Tenant
from tests.support.webhook_receiver import receiving
from worker import build_workers
from workflows.pipeline import ContentPipelineWorkflow
from workflows.policies import PIPELINE_QUEUE


async def test_posts_wait_for_their_real_publish_times_and_are_delivered_once(
    skipping_temporal: WorkflowEnvironment, database_url: str, db: Database, tenant: Tenant
) -> None:
    # The month after the server's clock, which other tests on the shared server have moved on.
    month = month_after(await skipping_temporal.get_current_time())
    async with receiving() as receiver:
        async with db.session() as session:
            row = await session.get(TenantRow, tenant.id)
            assert row is not None
            row.webhook_url, row.webhook_secret = receiver.url, receiver.secret
            company = Company(tenant_id=tenant.id, name="Timer Co", timezone="America/New_York")
            session.add(row)
            session.add(company)
            await session.flush()
            pipeline = Pipeline(
                tenant_id=tenant.id,
                company_id=company.id,
                month=month,
                tier=Tier.FREE,
                workflow_id=f"pipeline-{uuid.uuid4()}",
            )
            session.add(pipeline)
            await session.commit()

        settings = Settings(
            database_url=database_url,
            task_queue_suffix=f"-{uuid.uuid4().hex[:8]}",
            ai_provider="offline",
            webhook_allow_private_networks=True,  # the receiver runs on 127.0.0.1
            _env_file=None,  # type: ignore[call-arg]
        )
        deps = StageDeps(
            db=Database.from_url(database_url, pool_size=5),
            router=ProviderRouter.from_settings(settings),
            settings=settings,
        )
        workers: list[Worker] = build_workers(skipping_temporal.client, deps, settings)
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            request = PipelineRequest(
                pipeline_id=pipeline.id,
                tenant_id=tenant.id,
                company_id=company.id,
                tier=Tier.FREE,
                month=month,
                platforms=[Platform.LINKEDIN, Platform.X],
                options=PipelineOptions(
                    topics_per_persona=1,
                    auto_approve_personas=True,
                    auto_approve_topics=True,
                    auto_approve_blogposts=True,
                ),
            )
            result: PipelineState = await skipping_temporal.client.execute_workflow(
                ContentPipelineWorkflow.run,
                request,
                id=pipeline.workflow_id,
                task_queue=PIPELINE_QUEUE + settings.task_queue_suffix,
            )
        finally:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)
            await deps.db.close()

    assert result.status == PipelineStatus.COMPLETED, result.reason
    assert result.counts["published"] == 6
    async with db.session() as session:
        posts = (await session.exec(select(SocialPost).where(col(SocialPost.company_id) == company.id))).all()
    start, end = month_bounds(month)
    assert len(posts) == 6
    for post in posts:
        assert post.publish_state == PublishState.PUBLISHED and post.external_id
        assert post.publish_at is not None and start <= post.publish_at < end  # a real time next month
    published = [r for r in receiver.requests if r.event == "post.publish"]
    assert len(published) == 6 and all(r.verified for r in published)
    assert len({r.idempotency_key for r in published}) == 6  # each post delivered once
    # Delivered in publish-time order: the timers fired as the skipped clock reached each time.
    due = {str(p.id): p.publish_at for p in posts if p.publish_at is not None}
    order = [due[r.idempotency_key or ""] for r in published]
    assert order == sorted(order)

    # An hour before each post was due, its channel was checked (CHANNEL_CHECK_AHEAD): one check per post, each
    # scheduled before that post's publish.
    async with db.session() as session:
        topics = (await session.exec(select(Topic.id).where(col(Topic.company_id) == company.id))).all()
    for topic_id in topics:
        branch = skipping_temporal.client.get_workflow_handle(branch_workflow_id(pipeline.workflow_id, topic_id))
        history = await branch.fetch_history()
        kinds = [
            event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.HasField("activity_task_scheduled_event_attributes")
        ]
        relevant = [kind for kind in kinds if kind in (Activity.CHECK_CHANNELS, Activity.PUBLISH_POST)]
        assert relevant == [Activity.CHECK_CHANNELS, Activity.PUBLISH_POST] * 2 or (
            relevant.count(Activity.CHECK_CHANNELS) == relevant.count(Activity.PUBLISH_POST) == 2
            and relevant.index(Activity.PUBLISH_POST) > relevant.index(Activity.CHECK_CHANNELS)
        ), relevant
