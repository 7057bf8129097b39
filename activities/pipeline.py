"""The pipeline's quick DB work on the `pipeline` queue: AIJob rows, the Pipeline record, gate decisions, gate items."""

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from temporalio import activity

from models.db import Database
from models.enums import TERMINAL_JOB_STATUSES, BlogPostStatus, Gate, JobStatus, PublishState, TopicStatus
from models.pipeline import (
    BlogVerdict,
    GateItem,
    IdList,
    ItemList,
    ItemRequest,
    JobSpec,
    PersonaSelection,
    PipelineRecord,
    TopicVerdicts,
)
from models.tables import AIJob, BlogPost, BlogPostRevision, Persona, Pipeline, SocialPost, Topic


class PipelineActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name="create_job")
    async def create_job(self, spec: JobSpec) -> bool:
        """The AIJob row of a pipeline stage; its id comes from the workflow, so a retry inserts nothing new."""
        values: dict[str, Any] = {
            "id": spec.job_id,
            "tenant_id": spec.tenant_id,
            "company_id": spec.company_id,
            "pipeline_id": spec.pipeline_id,
            "job_type": spec.job_type.value,
            "status": JobStatus.PENDING.value,
            "persona_id": spec.persona_id,
            "topic_id": spec.topic_id,
            "blog_post_id": spec.blog_post_id,
            "social_post_id": spec.social_post_id,
            "params": spec.params,
            "progress": 0,
            "progress_message": "queued",
            "error_message": "",
            "workflow_id": spec.workflow_id,
            "created_at": datetime.now(UTC),
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0,
            "usage_records": [],
        }
        statement = insert(AIJob).values(**values).on_conflict_do_nothing(index_elements=["id"])
        async with self.db.session() as session:
            result = await session.exec(statement)  # type: ignore[call-overload]
            await session.commit()
        return bool(result.rowcount)

    @activity.defn(name="record_pipeline")
    async def record_pipeline(self, record: PipelineRecord) -> bool:
        """Writes what the workflow reports; records arrive out of order at times, so an older one never wins."""
        seq = int(record.summary.get("seq", 0))
        values: dict[str, Any] = {
            "status": record.status.value,
            "stage": record.stage.value,
            "status_reason": record.reason,
            "pending_gate": record.pending_gate,
            "summary": record.summary,
        }
        if record.finished:
            values["completed_at"] = datetime.now(UTC)
        older = sa.func.coalesce(sa.cast(Pipeline.summary["seq"].astext, sa.Integer), 0) < seq  # type: ignore[index]
        async with self.db.session() as session:
            result = await session.exec(  # type: ignore[call-overload]
                sa.update(Pipeline).where(col(Pipeline.id) == record.pipeline_id, older).values(**values)
            )
            if record.finished and record.status.value == "CANCELLED":
                await self._cancel_leftovers(session, record.pipeline_id)
            await session.commit()
        return bool(result.rowcount)

    async def _cancel_leftovers(self, session: Any, pipeline_id: uuid.UUID) -> None:
        """A cancelled pipeline leaves no job running and no post waiting to be published."""
        await session.exec(
            sa.update(AIJob)
            .where(col(AIJob.pipeline_id) == pipeline_id, col(AIJob.status).not_in(TERMINAL_JOB_STATUSES))
            .values(
                status=JobStatus.CANCELLED.value,
                progress_message="the pipeline was cancelled",
                completed_at=datetime.now(UTC),
            )
        )
        job_ids = select(AIJob.id).where(col(AIJob.pipeline_id) == pipeline_id)
        await session.exec(
            sa.update(SocialPost)
            .where(col(SocialPost.job_id).in_(job_ids), col(SocialPost.publish_state) == PublishState.SCHEDULED.value)
            .values(publish_state=PublishState.DRAFT.value, publish_at=None)
        )
        # A post between re-sends may have reached the receiver: a person checks before anything is sent again.
        await session.exec(
            sa.update(SocialPost)
            .where(col(SocialPost.job_id).in_(job_ids), col(SocialPost.publish_state) == PublishState.PUBLISHING.value)
            .values(
                publish_state=PublishState.UNCONFIRMED.value,
                publish_error="the pipeline was cancelled while this post was being delivered; check the receiver",
            )
        )

    @activity.defn(name="apply_persona_selection")
    async def apply_persona_selection(self, selection: PersonaSelection) -> None:
        chosen = set(selection.persona_ids)
        async with self.db.session() as session:
            for persona_id in selection.all_persona_ids:
                await session.exec(  # type: ignore[call-overload]
                    sa.update(Persona).where(col(Persona.id) == persona_id).values(selected=persona_id in chosen)
                )
            await session.commit()

    @activity.defn(name="apply_topic_verdicts")
    async def apply_topic_verdicts(self, verdicts: TopicVerdicts) -> None:
        async with self.db.session() as session:
            if verdicts.approved:
                await session.exec(  # type: ignore[call-overload]
                    sa.update(Topic)
                    .where(col(Topic.id).in_(verdicts.approved))
                    .values(status=TopicStatus.APPROVED.value)
                )
            for topic_id, feedback in verdicts.rejected.items():
                await session.exec(  # type: ignore[call-overload]
                    sa.update(Topic)
                    .where(col(Topic.id) == topic_id)
                    .values(status=TopicStatus.REJECTED.value, feedback=feedback)
                )
            await session.commit()

    @activity.defn(name="apply_blog_verdict")
    async def apply_blog_verdict(self, verdict: BlogVerdict) -> None:
        status = BlogPostStatus.APPROVED if verdict.approved else BlogPostStatus.CHANGES_REQUESTED
        async with self.db.session() as session:
            await session.exec(  # type: ignore[call-overload]
                sa.update(BlogPost)
                .where(col(BlogPost.id) == verdict.blog_post_id)
                .values(status=status.value, updated_at=datetime.now(UTC))
            )
            await session.commit()

    @activity.defn(name="requeue_posts")
    async def requeue_posts(self, posts: IdList) -> int:
        """A supervisor retries a branch whose posts were not delivered: FAILED posts (nothing reached the
        receiver) are SCHEDULED again with a fresh delivery budget. A post in any other state is left alone."""
        async with self.db.session() as session:
            result = await session.exec(  # type: ignore[call-overload]
                sa.update(SocialPost)
                .where(
                    col(SocialPost.id).in_(posts.ids),
                    col(SocialPost.publish_state) == PublishState.FAILED.value,
                    col(SocialPost.external_id).is_(None),
                )
                # A fresh delivery: nothing of the earlier sends was accepted, so a new webhook-id is safe.
                .values(
                    publish_state=PublishState.SCHEDULED.value,
                    publish_error=None,
                    delivery_attempts=0,
                    delivery_id=None,
                )
            )
            await session.commit()
        return int(result.rowcount)

    @activity.defn(name="gate_items")
    async def gate_items(self, request: ItemRequest) -> ItemList:
        """What a supervisor sees for each item of a gate, in the order asked for."""
        items: dict[uuid.UUID, GateItem] = {}
        async with self.db.session() as session:
            if request.gate == Gate.PERSONAS:
                for persona in (await session.exec(select(Persona).where(col(Persona.id).in_(request.ids)))).all():
                    summary = str(persona.details.get("summary", ""))
                    items[persona.id] = GateItem(
                        id=persona.id, title=persona.name, detail=f"{persona.role}. {summary}"[:600]
                    )
            elif request.gate == Gate.TOPICS:
                for topic in (await session.exec(select(Topic).where(col(Topic.id).in_(request.ids)))).all():
                    items[topic.id] = GateItem(
                        id=topic.id,
                        title=topic.title,
                        detail=topic.angle[:600],
                        persona_id=topic.persona_id,
                        revision=topic.revision,
                    )
            else:
                for post in (await session.exec(select(BlogPost).where(col(BlogPost.id).in_(request.ids)))).all():
                    revision = (
                        await session.exec(
                            select(BlogPostRevision).where(
                                col(BlogPostRevision.blog_post_id) == post.id,
                                col(BlogPostRevision.revision) == post.current_revision,
                            )
                        )
                    ).first()
                    words = revision.word_count if revision else 0
                    items[post.id] = GateItem(
                        id=post.id,
                        title=post.title,
                        detail=f"{words} words, revision {post.current_revision}: {post.meta_description}"[:600],
                        revision=post.current_revision - 1,
                    )
        return ItemList(items=[items[i] for i in request.ids if i in items])
