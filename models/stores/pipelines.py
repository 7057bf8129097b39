"""PipelineStore: the only code that changes a Pipeline row's status, used by the workflow's activities and the
API alike. A terminal row (COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED) never changes again.

The pipeline workflow and its topic branches each write their own part of the row; the store keeps the parts
in `summary.parts` and composes the row from them (`models.records.compose`) under the row's lock, so the two
kinds of writer never overwrite each other and a part that arrives late never wins over a newer one.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import Database
from models.enums import (
    TERMINAL_PIPELINE_STATUSES,
    BlogPostStatus,
    Gate,
    PipelineStatus,
    PublishState,
    TopicStatus,
)
from models.pipeline import (
    BlogVerdict,
    GateItem,
    GateView,
    ItemList,
    ItemRequest,
    PersonaSelection,
    TopicVerdicts,
)
from models.records import BranchRecord, GateOpening, PipelineRecord, compose
from models.stores.jobs import JobStore
from models.tables import AIJob, BlogPost, BlogPostRevision, Persona, Pipeline, SocialPost, Topic


def now() -> datetime:
    return datetime.now(UTC)


def still_running() -> Any:
    """The one place that says which rows may change: a pipeline that has not ended."""
    return col(Pipeline.status).not_in(TERMINAL_PIPELINE_STATUSES)


class PipelineStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- the workflow's writes --------------------------------------------------------------------------

    async def record(self, record: PipelineRecord) -> ItemList:
        """The pipeline workflow's part, with the persona selection or topic verdicts it carries."""
        async with self.db.session() as session:
            row = await self._running(session, record.pipeline_id)
            parts = self._parts(row) if row is not None else None
            items = await self._opening(session, record.opening)
            if row is not None and parts is not None and int(parts["pipeline"].get("seq", 0)) < record.seq:
                parts["pipeline"] = record.model_dump(
                    mode="json", by_alias=True, include={"seq", "status", "stage", "reason", "gates", "counts"}
                )
                parts["pipeline"]["gates"] += self._shown(record.opening, items)
                self._write(row, parts, reason=record.reason, finished=record.finished)
                session.add(row)
                if record.personas is not None:
                    await self._select_personas(session, record.personas)
                if record.topics is not None:
                    await self._decide_topics(session, record.topics)
                if record.finished and record.status == PipelineStatus.CANCELLED:
                    await self._cancel_leftovers(session, record.pipeline_id)
            await session.commit()
        return ItemList(items=items)

    async def record_branch(self, record: BranchRecord) -> ItemList:
        """A topic branch's part, with the blog verdict or the re-queued posts it carries."""
        async with self.db.session() as session:
            row = await self._running(session, record.pipeline_id)
            parts = self._parts(row) if row is not None else None
            items = await self._opening(session, record.opening)
            key = str(record.topic_id)
            if row is not None and parts is not None and int(parts["branches"].get(key, {}).get("seq", 0)) < record.seq:
                parts["branches"][key] = record.model_dump(
                    mode="json", by_alias=True, include={"seq", "slot", "view", "gates", "counts"}
                )
                parts["branches"][key]["gates"] += self._shown(record.opening, items)
                self._write(row, parts, reason=row.status_reason, finished=False)
                session.add(row)
                if record.verdict is not None:
                    await self._decide_blog_post(session, record.verdict)
                if record.requeue:
                    await self._requeue(session, record.requeue)
            await session.commit()
        return ItemList(items=items)

    # ---- the API's writes -------------------------------------------------------------------------------

    async def end(self, session: AsyncSession, pipeline_id: uuid.UUID, status: PipelineStatus, reason: str) -> bool:
        """Ends a pipeline whose workflow cannot record it (never started, or ended outside our code), in the
        caller's transaction; False when it had already ended."""
        result = await session.exec(  # type: ignore[call-overload]
            sa.update(Pipeline)
            .where(col(Pipeline.id) == pipeline_id, still_running())
            .values(status=status.value, status_reason=reason, pending_gate=None, completed_at=now())
        )
        return bool(result.rowcount)

    # ---- composing the row ------------------------------------------------------------------------------

    @staticmethod
    async def _running(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline | None:
        """The row, locked for this transaction, while it may still change; None once it has ended."""
        statement = select(Pipeline).where(col(Pipeline.id) == pipeline_id, still_running()).with_for_update()
        return (await session.exec(statement)).first()

    @staticmethod
    def _parts(row: Pipeline) -> dict[str, Any]:
        parts = dict((row.summary or {}).get("parts") or {})
        parts.setdefault("pipeline", {"seq": 0, "status": row.status, "stage": row.stage})
        parts["branches"] = dict(parts.get("branches") or {})
        return parts

    @staticmethod
    def _write(row: Pipeline, parts: dict[str, Any], *, reason: str | None, finished: bool) -> None:
        composed = compose(parts["pipeline"], parts["branches"])
        row.status = composed["status"].value
        row.stage = composed["stage"].value
        row.status_reason = reason
        row.pending_gate = composed["pending_gate"]
        row.summary = composed["summary"]
        if finished:
            row.completed_at = now()

    # ---- decisions applied with the record --------------------------------------------------------------

    @staticmethod
    async def _select_personas(session: AsyncSession, selection: PersonaSelection) -> None:
        chosen = set(selection.persona_ids)
        for persona_id in selection.all_persona_ids:
            await session.exec(  # type: ignore[call-overload]
                sa.update(Persona).where(col(Persona.id) == persona_id).values(selected=persona_id in chosen)
            )

    @staticmethod
    async def _decide_topics(session: AsyncSession, verdicts: TopicVerdicts) -> None:
        if verdicts.approved:
            await session.exec(  # type: ignore[call-overload]
                sa.update(Topic).where(col(Topic.id).in_(verdicts.approved)).values(status=TopicStatus.APPROVED.value)
            )
        if verdicts.dropped:
            await session.exec(  # type: ignore[call-overload]
                sa.update(Topic).where(col(Topic.id).in_(verdicts.dropped)).values(status=TopicStatus.DROPPED.value)
            )
        for topic_id, feedback in verdicts.rejected.items():
            await session.exec(  # type: ignore[call-overload]
                sa.update(Topic)
                .where(col(Topic.id) == topic_id)
                .values(status=TopicStatus.REJECTED.value, feedback=feedback)
            )

    @staticmethod
    async def _decide_blog_post(session: AsyncSession, verdict: BlogVerdict) -> None:
        status = BlogPostStatus.APPROVED if verdict.approved else BlogPostStatus.CHANGES_REQUESTED
        await session.exec(  # type: ignore[call-overload]
            sa.update(BlogPost).where(col(BlogPost.id) == verdict.blog_post_id).values(status=status, updated_at=now())
        )

    @staticmethod
    async def _requeue(session: AsyncSession, post_ids: list[uuid.UUID]) -> int:
        """A supervisor retries a branch whose posts were not delivered: FAILED posts (nothing reached the
        receiver) are SCHEDULED again with a fresh delivery budget. A post in any other state is left alone."""
        result = await session.exec(  # type: ignore[call-overload]
            sa.update(SocialPost)
            .where(
                col(SocialPost.id).in_(post_ids),
                col(SocialPost.publish_state) == PublishState.FAILED.value,
                col(SocialPost.external_id).is_(None),
            )
            # A fresh delivery: nothing of the earlier sends was accepted, so a new webhook-id is safe.
            .values(
                publish_state=PublishState.SCHEDULED.value, publish_error=None, delivery_attempts=0, delivery_id=None
            )
        )
        return int(result.rowcount)

    @staticmethod
    async def _cancel_leftovers(session: AsyncSession, pipeline_id: uuid.UUID) -> None:
        """A cancelled pipeline leaves no job running and no post waiting to be published."""
        await JobStore.cancel_pipeline_jobs(session, pipeline_id)
        job_ids = select(AIJob.id).where(col(AIJob.pipeline_id) == pipeline_id)
        await session.exec(  # type: ignore[call-overload]
            sa.update(SocialPost)
            .where(col(SocialPost.job_id).in_(job_ids), col(SocialPost.publish_state) == PublishState.SCHEDULED.value)
            .values(publish_state=PublishState.DRAFT.value, publish_at=None)
        )
        # A post between re-sends may have reached the receiver: a person checks before anything is sent again.
        await session.exec(  # type: ignore[call-overload]
            sa.update(SocialPost)
            .where(col(SocialPost.job_id).in_(job_ids), col(SocialPost.publish_state) == PublishState.PUBLISHING.value)
            .values(
                publish_state=PublishState.UNCONFIRMED.value,
                publish_error="the pipeline was cancelled while this post was being delivered; check the receiver",
            )
        )

    # ---- what a supervisor sees at a gate ---------------------------------------------------------------

    async def _opening(self, session: AsyncSession, opening: GateOpening | None) -> list[GateItem]:
        if opening is None:
            return []
        found = await self._items(session, ItemRequest(gate=opening.gate, ids=opening.ids))
        return opening.items(found.items)

    @staticmethod
    def _shown(opening: GateOpening | None, items: list[GateItem]) -> list[dict[str, Any]]:
        """The gate view of an opening that shows its items: merged with the part's other gates by `compose`."""
        if opening is None or not opening.show or not items:
            return []
        view = GateView(gate=opening.gate, items=items, deadline=opening.deadline, opened_at=opening.opened_at)
        return [view.model_dump(mode="json", by_alias=True)]

    @staticmethod
    async def _items(session: AsyncSession, request: ItemRequest | None) -> ItemList:
        """The display fields of a gate's items, in the order asked for."""
        if request is None or not request.ids:
            return ItemList()
        items: dict[uuid.UUID, GateItem] = {}
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
