"""The Pipeline row composed from its parts (the pipeline workflow's and each topic branch's) by the one store
that moves its status: every open gate, the stage of the branches, the counts summed, a late part never wins,
and a terminal row never changes."""

import uuid
from datetime import UTC, datetime, timedelta

from models.db import Database
from models.enums import BranchState, Gate, PipelineStage, PipelineStatus
from models.pipeline import BranchView, GateItem, GateView
from models.records import BranchRecord, PipelineRecord, compose
from models.stores.pipelines import PipelineStore
from models.tables import Company, Pipeline
from tests.support.stack import Tenant

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def gate(kind: Gate, *ids: uuid.UUID, hours: int = 24) -> GateView:
    items = [GateItem(id=i, title=f"item {i.hex[:4]}") for i in ids]
    return GateView(gate=kind, items=items, deadline=NOW + timedelta(hours=hours), opened_at=NOW)


def branch(topic: uuid.UUID, slot: int, seq: int, state: BranchState, *gates: GateView, **counts: int) -> BranchRecord:
    return BranchRecord(
        pipeline_id=uuid.UUID(int=1),
        topic_id=topic,
        slot=slot,
        seq=seq,
        view=BranchView(topic_id=topic, title=f"topic {slot}", state=state),
        gates=list(gates),
        counts=counts,
    )


def part(record: PipelineRecord | BranchRecord) -> dict[str, object]:
    keep = {"seq", "status", "stage", "reason", "gates", "counts", "slot", "view"}
    return record.model_dump(mode="json", by_alias=True, include=keep)


def test_the_row_shows_every_open_gate_the_branches_stage_and_the_summed_counts() -> None:
    own = PipelineRecord(
        pipeline_id=uuid.UUID(int=1),
        seq=3,
        status=PipelineStatus.RUNNING,
        stage=PipelineStage.BLOGPOSTS,
        counts={"topics": 3, "personas": 6},
    )
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    post = uuid.uuid4()
    parts = {
        str(third): part(branch(third, 2, 4, BranchState.SOCIAL, blogPosts=1)),
        str(first): part(branch(first, 0, 2, BranchState.AWAITING_APPROVAL, gate(Gate.BLOGPOST, post), blogPosts=1)),
        str(second): part(branch(second, 1, 7, BranchState.FAILED, gate(Gate.FAILURE, second, hours=2), blogPosts=1)),
    }
    row = compose(part(own), parts)
    assert row["status"] == PipelineStatus.AWAITING_APPROVAL
    assert row["stage"] == PipelineStage.AWAITING_BLOGPOST_APPROVAL
    # the earliest deadline first: the failure (2 h) before the blog post (24 h)
    assert [g["gate"] for g in row["summary"]["openGates"]] == ["failure", "blogpost"]
    assert row["pending_gate"]["gate"] == "failure"
    assert [b["topicId"] for b in row["summary"]["branches"]] == [str(first), str(second), str(third)]
    assert row["summary"]["counts"] == {"topics": 3, "personas": 6, "blogPosts": 3}

    # Blog posts of two branches wait at one gate; the pipeline shows the topics stage while it rewrites topics.
    other_post = uuid.uuid4()
    parts[str(second)] = part(branch(second, 1, 8, BranchState.AWAITING_APPROVAL, gate(Gate.BLOGPOST, other_post)))
    topics = own.model_copy(
        update={"stage": PipelineStage.AWAITING_TOPIC_APPROVAL, "gates": [gate(Gate.TOPICS, third)]}
    )
    row = compose(part(topics), parts)
    assert row["stage"] == PipelineStage.AWAITING_TOPIC_APPROVAL
    views = {g["gate"]: g for g in row["summary"]["openGates"]}
    assert {i["id"] for i in views["blogpost"]["items"]} == {str(post), str(other_post)}

    ended = own.model_copy(update={"status": PipelineStatus.PARTIAL})
    row = compose(part(ended), parts)
    assert row["status"] == PipelineStatus.PARTIAL and row["pending_gate"] is None
    assert row["summary"]["openGates"] == []


async def test_parts_arrive_in_any_order_and_an_ended_row_never_changes(db: Database, tenant: Tenant) -> None:
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Store")
        session.add(company)
        await session.flush()
        pipeline = Pipeline(tenant_id=tenant.id, company_id=company.id, month="2030-02", workflow_id="wf-store")
        session.add(pipeline)
        await session.commit()
    store = PipelineStore(db)
    own = PipelineRecord(pipeline_id=pipeline.id, seq=5, status=PipelineStatus.RUNNING, stage=PipelineStage.BLOGPOSTS)
    topic = uuid.uuid4()
    newer = branch(topic, 0, 3, BranchState.MEDIA, images=2).model_copy(update={"pipeline_id": pipeline.id})
    older = branch(topic, 0, 2, BranchState.WRITING).model_copy(update={"pipeline_id": pipeline.id})
    await store.record(own)
    await store.record_branch(newer)
    await store.record_branch(older)  # late: ignored
    await store.record(own.model_copy(update={"seq": 4, "stage": PipelineStage.TOPICS}))  # late: ignored
    row = await read(db, pipeline.id)
    assert row.stage == PipelineStage.MEDIA and row.summary["branches"][0]["state"] == "media"
    assert row.summary["counts"] == {"images": 2}

    await store.record(own.model_copy(update={"seq": 6, "status": PipelineStatus.COMPLETED, "finished": True}))
    done = await read(db, pipeline.id)
    assert done.status == PipelineStatus.COMPLETED and done.completed_at is not None
    # Nothing moves an ended row: not a later part, not a newer record, not the API's end().
    await store.record_branch(
        newer.model_copy(update={"seq": 9, "view": newer.view.model_copy(update={"state": "failed"})})
    )
    await store.record(own.model_copy(update={"seq": 7, "status": PipelineStatus.RUNNING}))
    async with db.session() as session:
        assert not await store.end(session, pipeline.id, PipelineStatus.FAILED, "too late")
        await session.commit()
    after = await read(db, pipeline.id)
    assert (after.status, after.stage, after.summary) == (done.status, done.stage, done.summary)


async def read(db: Database, pipeline_id: uuid.UUID) -> Pipeline:
    async with db.session() as session:
        row = await session.get(Pipeline, pipeline_id)
    assert row is not None
    return row
