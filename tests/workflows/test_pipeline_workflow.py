"""ContentPipelineWorkflow's own logic on the time-skipping server, with every activity replaced by a recording
stand-in under the real activity's name: gates and their refusals, feedback, revision limits, deadlines and
reminders, cancellation, tier gating, branch failures, retries, publishing."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contracts import JobFinish, StageInput, StageResult, VideoPoll, VideoRender, VideoSubmit
from models.enums import Gate, JobType, PipelineStage, PipelineStatus, Platform, PublishState, Tier
from models.job_params import stored_params
from models.names import branch_workflow_id
from models.pipeline import (
    BlogPostDecision,
    BranchView,
    FailureDecision,
    GateItem,
    GateView,
    ItemList,
    JobSpec,
    PipelineOptions,
    PipelineRequest,
    PipelineState,
    PublishOutcome,
    PublishPost,
    RejectedTopic,
    Schedule,
    ScheduledPost,
    ScheduleRequest,
    SelectPersonas,
    TenantNotice,
    TopicDecision,
    TopicVerdicts,
)
from models.records import BranchRecord, GateOpening, PipelineRecord, compose
from workflows.branch import TopicBranchWorkflow
from workflows.pipeline import ContentPipelineWorkflow
from workflows.policies import AI_QUEUE, MEDIA_QUEUE, PIPELINE_QUEUE, PUBLISH_QUEUE


def asked(spec: JobSpec) -> dict[str, Any]:
    """A job's params as its row stores them."""
    return stored_params(spec.params)


@dataclass
class Fake:
    """What the stand-in activities saw and what they should do."""

    specs: dict[uuid.UUID, JobSpec] = field(default_factory=dict)
    ran: list[JobType] = field(default_factory=list)
    titles: dict[uuid.UUID, str] = field(default_factory=dict)
    revisions: dict[uuid.UUID, int] = field(default_factory=dict)
    records: list["Composed"] = field(default_factory=list)
    parts: dict[str, Any] = field(default_factory=lambda: {"pipeline": {"seq": 0}, "branches": {}})
    notices: list[TenantNotice] = field(default_factory=list)
    published: list[uuid.UUID] = field(default_factory=list)
    verdicts: list[Any] = field(default_factory=list)
    fail: Callable[[JobSpec, int], Exception | None] = lambda spec, attempt: None
    block: set[JobType] = field(default_factory=set)
    cancelled: list[JobType] = field(default_factory=list)
    handles: list[WorkflowHandle[Any, PipelineState]] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    held: dict[JobType, asyncio.Event] = field(default_factory=dict)  # stages of these types wait for the event

    def jobs(self, job_type: JobType) -> list[JobSpec]:
        return [s for s in self.specs.values() if s.job_type == job_type]

    def items(self, opening: GateOpening | None) -> ItemList:
        if opening is None:
            return ItemList()
        found = [
            GateItem(id=i, title=self.titles.get(i, f"item {i}"), revision=self.revisions.get(i, 0))
            for i in opening.ids
        ]
        return ItemList(items=opening.items(found))

    def write(self, key: str | None, part: dict[str, Any], opening: GateOpening | None, items: ItemList) -> None:
        """What the store does: keeps each part (the newest by its seq) and composes the row from them."""
        known = self.parts["pipeline"] if key is None else self.parts["branches"].get(key, {"seq": 0})
        if known["seq"] >= part["seq"]:
            return
        if opening is not None and opening.show and items.items:
            shown = GateView(
                gate=opening.gate, items=items.items, deadline=opening.deadline, opened_at=opening.opened_at
            )
            part["gates"].append(shown.model_dump(mode="json", by_alias=True))
        if key is None:
            self.parts["pipeline"] = part
        else:
            self.parts["branches"][key] = part
        self.records.append(Composed(**compose(self.parts["pipeline"], self.parts["branches"]), finished=self.finished))

    finished: bool = False

    def activities(self) -> list[Callable[..., Any]]:
        fake = self

        @activity.defn(name="record_pipeline")
        async def record_pipeline(record: PipelineRecord) -> ItemList:
            items = fake.items(record.opening)
            if record.personas is not None:
                fake.verdicts.append(record.personas)
            if record.topics is not None:
                fake.verdicts.append(record.topics)
            fake.finished = fake.finished or record.finished
            keep = {"seq", "status", "stage", "reason", "gates", "counts"}
            fake.write(None, record.model_dump(mode="json", by_alias=True, include=keep), record.opening, items)
            return items

        @activity.defn(name="record_branch")
        async def record_branch(record: BranchRecord) -> ItemList:
            items = fake.items(record.opening)
            if record.verdict is not None:
                fake.verdicts.append(record.verdict)
                if not record.verdict.approved:
                    post = record.verdict.blog_post_id
                    fake.revisions[post] = fake.revisions.get(post, 0) + 1
            fake.requeued.extend(record.requeue)
            keep = {"seq", "slot", "view", "gates", "counts"}
            part = record.model_dump(mode="json", by_alias=True, include=keep)
            fake.write(str(record.topic_id), part, record.opening, items)
            return items

        @activity.defn(name="finish_job")
        async def finish_job(finish: JobFinish) -> bool:
            return True

        @activity.defn(name="schedule_posts")
        async def schedule_posts(request: ScheduleRequest) -> Schedule:
            start = request.not_before + timedelta(days=1)
            return Schedule(
                posts=[
                    ScheduledPost(social_post_id=p, platform=Platform.LINKEDIN, publish_at=start + timedelta(hours=i))
                    for i, p in enumerate(request.social_post_ids)
                ]
            )

        @activity.defn(name="publish_post")
        async def publish_post(post: PublishPost) -> PublishOutcome:
            fake.published.append(post.social_post_id)
            return PublishOutcome(social_post_id=post.social_post_id, state=PublishState.PUBLISHED, external_id="ext-1")

        @activity.defn(name="notify_tenant")
        async def notify_tenant(notice: TenantNotice) -> bool:
            fake.notices.append(notice)
            return True

        def stage(job_type: JobType) -> Callable[..., Any]:
            @activity.defn(name=job_type.value)
            async def run(stage_input: StageInput) -> StageResult:
                assert stage_input.spec is not None, "a pipeline's stage creates its own job row"
                spec = fake.specs.setdefault(stage_input.job_id, stage_input.spec)
                fake.ran.append(job_type)
                held = fake.held.get(job_type)
                while held is not None and not held.is_set():
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
                error = fake.fail(spec, activity.info().attempt)
                if error is not None:
                    raise error
                if job_type in fake.block:
                    try:
                        while True:
                            activity.heartbeat()
                            await asyncio.sleep(0.2)
                    except asyncio.CancelledError:
                        fake.cancelled.append(job_type)
                        raise
                count = {JobType.GENERATE_PERSONAS: 6, JobType.GENERATE_TOPICS: int(asked(spec).get("count", 1))}.get(
                    job_type, 1
                )
                if job_type == JobType.GENERATE_BLOGPOST and spec.blog_post_id:
                    ids = [spec.blog_post_id]
                else:
                    ids = [uuid.uuid4() for _ in range(count)]
                for i in ids:
                    fake.titles.setdefault(i, f"{job_type.value} {len(fake.titles)}")
                    if asked(spec).get("replaces_topic_id"):  # the DB's revision counter of a regenerated topic
                        fake.revisions[i] = fake.revisions.get(uuid.UUID(asked(spec)["replaces_topic_id"]), 0) + 1
                return StageResult(job_id=stage_input.job_id, artifact_ids=ids)

            return run

        stages = [stage(t) for t in JobType if t != JobType.GENERATE_VIDEO]
        make_video = stage(JobType.GENERATE_VIDEO)
        videos: dict[uuid.UUID, StageResult] = {}

        # A video job is a submit, then polls between workflow timers (workflows/job.py run_video): the stand-in
        # does the stage's work at the submit and answers the first poll with its result.
        @activity.defn(name="submit_video")
        async def submit_video(submit: VideoSubmit) -> VideoRender:
            videos[submit.job_id] = await make_video(StageInput(job_id=submit.job_id, spec=submit.spec))
            return VideoRender(job_id=submit.job_id, name=f"operations/{submit.job_id.hex[:8]}")

        @activity.defn(name="poll_video")
        async def poll_video(poll: VideoPoll) -> VideoRender:
            return poll.render.model_copy(update={"result": videos[poll.render.job_id]})

        return [
            submit_video,
            poll_video,
            record_pipeline,
            record_branch,
            finish_job,
            schedule_posts,
            publish_post,
            notify_tenant,
            *stages,
        ]


@pytest.fixture
async def env(skipping_temporal: WorkflowEnvironment) -> AsyncIterator[tuple[WorkflowEnvironment, str, Fake]]:
    fake = Fake()
    suffix = f"-{uuid.uuid4().hex[:8]}"
    activities = fake.activities()
    workers = [
        Worker(
            skipping_temporal.client,
            task_queue=queue + suffix,
            workflows=[ContentPipelineWorkflow, TopicBranchWorkflow] if queue == PIPELINE_QUEUE else [],
            activities=activities,
            max_heartbeat_throttle_interval=timedelta(seconds=1),
            default_heartbeat_throttle_interval=timedelta(seconds=1),
        )
        for queue in (PIPELINE_QUEUE, AI_QUEUE, MEDIA_QUEUE, PUBLISH_QUEUE)
    ]
    async with contextlib_workers(workers):
        yield skipping_temporal, PIPELINE_QUEUE + suffix, fake
        # A workflow left open on a queue without workers would keep the shared server from ever skipping time.
        for handle in fake.handles:
            with contextlib.suppress(Exception):
                await handle.terminate("test over")


class contextlib_workers:
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def __aenter__(self) -> None:
        self.tasks = [asyncio.create_task(w.run()) for w in self.workers]

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)
        await asyncio.gather(*self.tasks, return_exceptions=True)


def request(tier: Tier = Tier.ULTIMATE, platforms: list[Platform] | None = None, **options: Any) -> PipelineRequest:
    return PipelineRequest(
        pipeline_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        company_id=uuid.uuid4(),
        tier=tier,
        month="2026-12",
        platforms=platforms or [Platform.LINKEDIN, Platform.X],
        options=PipelineOptions(**{"topics_per_persona": 1, **options}),
    )


@dataclass
class Composed:
    """The Pipeline row after a write, as the store composes it from the pipeline's and the branches' parts."""

    status: PipelineStatus
    stage: PipelineStage
    pending_gate: dict[str, Any] | None
    summary: dict[str, Any]
    finished: bool


class PipelineRun:
    """A pipeline as a client sees it: reads compose the row like the API does, and a blog post or failure
    decision goes to the topic branch it belongs to, as the API sends it."""

    def __init__(self, handle: WorkflowHandle[Any, PipelineState], fake: Fake, client: Any) -> None:
        self.handle, self.fake, self.client = handle, fake, client
        self.id = handle.id

    async def query(self, _query: Any) -> PipelineState:
        row = self.fake.records[-1] if self.fake.records else None
        if row is None:
            return PipelineState(pipeline_id=uuid.UUID(int=0), status=PipelineStatus.RUNNING, stage=PipelineStage.DNA)
        gates = [GateView.model_validate(g) for g in row.summary["openGates"]]
        return PipelineState(
            pipeline_id=uuid.UUID(int=0),
            status=row.status,
            stage=row.stage,
            reason=row.summary["parts"]["pipeline"].get("reason"),
            pending_approval=gates[0] if gates else None,
            pending_approvals=gates,
            counts=row.summary["counts"],
            branches=[BranchView.model_validate(b) for b in row.summary["branches"]],
        )

    async def execute_update(self, update: Any, decision: Any) -> Any:
        if update in (TopicBranchWorkflow.decide_blogpost, TopicBranchWorkflow.decide_failure):
            return await self.client.get_workflow_handle(self.branch_for(decision)).execute_update(update, decision)
        return await self.handle.execute_update(update, decision)

    def branch_for(self, decision: Any) -> str:
        """The branch the item belongs to; an item of none goes to a branch with its gate open (which refuses
        it as not waiting there), or to any branch (no such gate open)."""
        gate = Gate.BLOGPOST if isinstance(decision, BlogPostDecision) else Gate.FAILURE
        item = decision.blog_post_id if gate == Gate.BLOGPOST else decision.topic_id
        branches = self.fake.parts["branches"].values()
        for part in branches:
            view = BranchView.model_validate(part["view"])
            if item in (view.blog_post_id if gate == Gate.BLOGPOST else view.topic_id,):
                return branch_workflow_id(self.id, view.topic_id)
        waiting = [p for p in branches if any(g["gate"] == gate for g in p["gates"])] or list(branches)
        return branch_workflow_id(self.id, uuid.UUID(waiting[0]["view"]["topicId"]))

    async def cancel(self) -> None:
        await self.handle.cancel()

    async def quiet(self) -> None:
        """Waits until neither the pipeline nor a branch has an activity in flight (the fake's record of a write
        shows before the workflow has its result): a cancel that races an activity's completion can make the
        time-skipping server reject the workflow task (ACTIVITY_UNKNOWN) and stop skipping time."""
        for _ in range(400):
            ids = [self.id] + [branch_workflow_id(self.id, uuid.UUID(t)) for t in self.fake.parts["branches"]]
            described = [await self.client.get_workflow_handle(i).describe() for i in ids]
            if not any(d.raw_description.pending_activities for d in described):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("activities stayed in flight")

    async def result(self) -> PipelineState:
        return await self.handle.result()


async def start(env: tuple[WorkflowEnvironment, str, Fake], req: PipelineRequest) -> PipelineRun:
    temporal, queue, fake = env
    handle = await temporal.client.start_workflow(
        ContentPipelineWorkflow.run, req, id=f"pipeline-test-{uuid.uuid4()}", task_queue=queue
    )
    fake.handles.append(handle)
    return PipelineRun(handle, fake, temporal.client)


def open_gates(row: Composed) -> list[str]:
    return [g["gate"] for g in row.summary["openGates"]]


async def gate_of(
    handle: PipelineRun, gate: Gate, count: int = 1, seen: list[uuid.UUID] | None = None
) -> PipelineState:
    """Waits (in real time; the server does not skip while we only query) until the gate holds `count` items,
    none of them among `seen` (the items of a round already decided). Other gates may be open beside it (the
    branches of approved topics run while rejected ones are rewritten): the state returned has this gate as
    its `pending_approval`."""
    for _ in range(400):
        state = await handle.query(ContentPipelineWorkflow.state)
        for pending in state.pending_approvals:
            if (
                pending.gate == gate
                and len(pending.items) >= count
                and not {i.id for i in pending.items} & set(seen or [])
            ):
                return state.model_copy(update={"pending_approval": pending})
        await asyncio.sleep(0.05)
    raise AssertionError(f"the {gate} gate never opened: {state}")


async def finished(handle: PipelineRun) -> PipelineState:
    """The workflow's result; a bound turns a stuck server into a failure instead of a hung suite."""
    return await asyncio.wait_for(handle.result(), timeout=120)


async def refused(handle: PipelineRun, update: Any, decision: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, decision)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return f"{cause.type}: {cause.message}"


async def test_happy_path_with_every_gate_decided_and_every_bad_decision_refused(env: Any) -> None:
    _, _, fake = env
    handle = await start(env, request(max_revisions=2))

    state = await gate_of(handle, Gate.PERSONAS, 6)
    personas = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    assert state.status == PipelineStatus.AWAITING_APPROVAL
    assert "GateNotPending" in await refused(handle, ContentPipelineWorkflow.decide_topics, TopicDecision())
    assert "InvalidDecision" in await refused(
        handle, ContentPipelineWorkflow.select_personas, SelectPersonas(selected_persona_ids=personas[:2])
    )
    assert "InvalidDecision" in await refused(
        handle,
        ContentPipelineWorkflow.select_personas,
        SelectPersonas(selected_persona_ids=[*personas[:2], uuid.uuid4()]),
    )
    assert "twice" in await refused(
        handle,
        ContentPipelineWorkflow.select_personas,
        SelectPersonas(selected_persona_ids=[personas[0], personas[0], personas[1]]),
    )
    assert fake.verdicts == []  # nothing changed
    await handle.execute_update(
        ContentPipelineWorkflow.select_personas, SelectPersonas(selected_persona_ids=personas[:3])
    )
    assert "AlreadyDecided" in await refused(
        handle, ContentPipelineWorkflow.select_personas, SelectPersonas(selected_persona_ids=personas[:3])
    )

    state = await gate_of(handle, Gate.TOPICS, 3)
    topics = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    assert len(fake.jobs(JobType.GENERATE_TOPICS)) == 3  # one per selected persona
    assert "undecided" in await refused(
        handle, ContentPipelineWorkflow.decide_topics, TopicDecision(approved_topic_ids=topics[:2])
    )
    assert "twice" in await refused(
        handle,
        ContentPipelineWorkflow.decide_topics,
        TopicDecision(approved_topic_ids=topics, rejected=[RejectedTopic(topic_id=topics[0], feedback="no")]),
    )
    feedback = "Too generic: make it about cold brew for offices"
    await handle.execute_update(
        ContentPipelineWorkflow.decide_topics,
        TopicDecision(approved_topic_ids=topics[:2], rejected=[RejectedTopic(topic_id=topics[2], feedback=feedback)]),
    )
    state = await gate_of(handle, Gate.TOPICS, 1, seen=topics)
    [replacement] = state.pending_approval.items  # type: ignore[union-attr]
    regenerated = [s for s in fake.jobs(JobType.GENERATE_TOPICS) if asked(s).get("replaces_topic_id")]
    assert len(regenerated) == 1
    assert asked(regenerated[0])["feedback"] == feedback
    assert asked(regenerated[0])["replaces_topic_id"] == str(topics[2])
    await handle.execute_update(
        ContentPipelineWorkflow.decide_topics, TopicDecision(approved_topic_ids=[replacement.id])
    )

    state = await gate_of(handle, Gate.BLOGPOST, 3)
    posts = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    assert "InvalidDecision" in await refused(
        handle,
        TopicBranchWorkflow.decide_blogpost,
        BlogPostDecision(blog_post_id=posts[0], decision="request_changes"),
    )
    assert "InvalidDecision" in await refused(
        handle, TopicBranchWorkflow.decide_blogpost, BlogPostDecision(blog_post_id=uuid.uuid4(), decision="approve")
    )
    await handle.execute_update(
        TopicBranchWorkflow.decide_blogpost,
        BlogPostDecision(blog_post_id=posts[0], decision="request_changes", feedback="Shorter intro, cite the study"),
    )
    for post in posts[1:]:
        await handle.execute_update(
            TopicBranchWorkflow.decide_blogpost, BlogPostDecision(blog_post_id=post, decision="approve")
        )
    for _ in range(400):
        state = await handle.query(ContentPipelineWorkflow.state)
        gate = state.pending_approval
        if gate and posts[0] in [i.id for i in gate.items] and gate.items[0].revision == 1:
            break
        await asyncio.sleep(0.05)
    rewrite = [s for s in fake.jobs(JobType.GENERATE_BLOGPOST) if s.blog_post_id == posts[0]]
    assert rewrite and asked(rewrite[0])["feedback"] == "Shorter intro, cite the study"
    await handle.execute_update(
        TopicBranchWorkflow.decide_blogpost, BlogPostDecision(blog_post_id=posts[0], decision="approve")
    )

    result = await finished(handle)
    assert result.status == PipelineStatus.COMPLETED, result.reason
    assert result.counts["blogPosts"] == 3 and result.counts["socialPosts"] == 6
    assert result.counts["images"] == 6 and result.counts["videos"] == 3
    assert result.counts["published"] == 6
    assert sorted(fake.published) == sorted(set(fake.published))  # each post once
    assert fake.records[-1].finished and fake.records[-1].status == PipelineStatus.COMPLETED
    assert any(n.event == "pipeline.finished" for n in fake.notices)


async def test_revision_limit_leaves_only_approve(env: Any) -> None:
    _, _, fake = env
    handle = await start(env, request(max_revisions=1, auto_approve_personas=True))
    state = await gate_of(handle, Gate.TOPICS, 3)
    topics = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    await handle.execute_update(
        ContentPipelineWorkflow.decide_topics,
        TopicDecision(approved_topic_ids=topics[1:], rejected=[RejectedTopic(topic_id=topics[0], feedback="again")]),
    )
    state = await gate_of(handle, Gate.TOPICS, 1, seen=topics)
    [replacement] = state.pending_approval.items  # type: ignore[union-attr]
    assert replacement.revision == 1 and not replacement.can_reject
    message = await refused(
        handle,
        ContentPipelineWorkflow.decide_topics,
        TopicDecision(rejected=[RejectedTopic(topic_id=replacement.id, feedback="no")]),
    )
    assert "RevisionLimit" in message and "approve or drop them" in message
    await handle.execute_update(
        ContentPipelineWorkflow.decide_topics, TopicDecision(approved_topic_ids=[replacement.id])
    )
    # All three posts at the gate: no stage is running when the cancel comes. (A cancel racing a stage's completion
    # can make the time-skipping server reject the workflow task, ACTIVITY_UNKNOWN, and stop skipping time.)
    await gate_of(handle, Gate.BLOGPOST, 3)
    assert TopicVerdicts(approved=[replacement.id]) in fake.verdicts
    await handle.quiet()
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await finished(handle)


async def test_a_dropped_topic_gets_no_post_and_is_not_planned_again(env: Any) -> None:
    _, _, fake = env
    handle = await start(env, request(max_revisions=1, auto_approve_personas=True))
    state = await gate_of(handle, Gate.TOPICS, 3)
    topics = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    twice = TopicDecision(approved_topic_ids=topics, dropped_topic_ids=topics[:1])
    assert "appears twice" in await refused(handle, ContentPipelineWorkflow.decide_topics, twice)
    accepted = await handle.execute_update(
        ContentPipelineWorkflow.decide_topics,
        TopicDecision(approved_topic_ids=topics[1:], dropped_topic_ids=topics[:1]),
    )
    assert accepted.message == "2 approved, 0 sent back for regeneration, 1 dropped"
    state = await gate_of(handle, Gate.BLOGPOST, 2)
    assert TopicVerdicts(approved=topics[1:], dropped=topics[:1]) in fake.verdicts
    assert state.counts["topicsDropped"] == 1 and state.counts["topicsApproved"] == 2
    assert not any(p.gate == Gate.TOPICS for p in state.pending_approvals)  # nothing is planned again
    await handle.quiet()
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await finished(handle)


async def test_deadline_expires_the_pipeline_after_a_reminder(env: Any) -> None:
    _, _, fake = env
    handle = await start(env, request(approval_deadline_seconds=7 * 24 * 3600))
    await gate_of(handle, Gate.PERSONAS, 6)
    result = await finished(handle)  # the server skips the 7 days
    assert result.status == PipelineStatus.EXPIRED
    assert "personas approval was not decided" in (result.reason or "")
    events = [n.event for n in fake.notices]
    assert events[:2] == ["approval.reminder", "approval.expired"]
    assert fake.records[-1].status == PipelineStatus.EXPIRED and fake.records[-1].finished


async def test_cancel_during_a_gate_and_during_a_running_stage(env: Any) -> None:
    _, _, fake = env
    handle = await start(env, request())
    await gate_of(handle, Gate.PERSONAS, 6)
    await handle.quiet()
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await finished(handle)
    assert fake.records[-1].status == PipelineStatus.CANCELLED and fake.records[-1].finished

    fake.block = {JobType.GENERATE_TOPICS}
    handle = await start(env, request(auto_approve_personas=True))
    for _ in range(200):
        if JobType.GENERATE_TOPICS in fake.ran:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await finished(handle)
    assert JobType.GENERATE_TOPICS in fake.cancelled  # the running stage heard the cancel
    assert fake.records[-1].status == PipelineStatus.CANCELLED


@pytest.mark.parametrize(("tier", "images", "videos"), [(Tier.FREE, 0, 0), (Tier.PRO, 2, 0), (Tier.ULTIMATE, 2, 1)])
async def test_tiers_gate_images_and_video(env: Any, tier: Tier, images: int, videos: int) -> None:
    _, _, fake = env
    handle = await start(
        env,
        request(
            tier, auto_approve_personas=True, auto_approve_topics=True, auto_approve_blogposts=True, auto_select_count=3
        ),
    )
    result = await finished(handle)
    assert result.status == PipelineStatus.COMPLETED
    assert len(fake.jobs(JobType.GENERATE_IMAGE)) == images * 3
    assert len(fake.jobs(JobType.GENERATE_VIDEO)) == videos * 3


async def test_a_failed_branch_waits_for_a_supervisor_who_retries_it_then_drops_it(env: Any) -> None:
    _, _, fake = env
    doomed: list[uuid.UUID] = []

    def fail(spec: JobSpec, attempt: int) -> Exception | None:
        if spec.job_type == JobType.GENERATE_SOCIAL and attempt == 1:
            return ApplicationError("rate limited", type="AIRateLimitError", next_retry_delay=timedelta(seconds=60))
        if spec.job_type == JobType.GENERATE_BLOGPOST:
            if not doomed:
                doomed.append(spec.topic_id)  # type: ignore[arg-type]
            if spec.topic_id == doomed[0]:
                return ApplicationError("the model refused the topic", type="AIContentBlockedError", non_retryable=True)
        return None

    fake.fail = fail
    handle = await start(
        env, request(Tier.FREE, auto_approve_personas=True, auto_approve_topics=True, auto_approve_blogposts=True)
    )
    state = await gate_of(handle, Gate.FAILURE)
    [item] = state.pending_approval.items  # type: ignore[union-attr]
    assert item.id == doomed[0] and "the model refused the topic" in item.detail and item.revision == 0
    assert state.status == PipelineStatus.AWAITING_APPROVAL
    assert "InvalidDecision" in await refused(
        handle, TopicBranchWorkflow.decide_failure, FailureDecision(topic_id=uuid.uuid4(), decision="retry")
    )

    # The retried blog stage waits until the second decision was refused: it would fail again at once otherwise,
    # and the branch would be waiting for a new decision.
    fake.held[JobType.GENERATE_BLOGPOST] = asyncio.Event()
    await handle.execute_update(TopicBranchWorkflow.decide_failure, FailureDecision(topic_id=item.id, decision="retry"))
    # Read your writes: the decision left the record before the update answered.
    assert str(item.id) not in str(fake.records[-1].summary.get("openGates"))
    assert "AlreadyDecided" in await refused(
        handle, TopicBranchWorkflow.decide_failure, FailureDecision(topic_id=item.id, decision="drop")
    )
    fake.held[JobType.GENERATE_BLOGPOST].set()
    for _ in range(400):
        state = await handle.query(ContentPipelineWorkflow.state)
        gate = state.pending_approval
        if gate and gate.gate == Gate.FAILURE and gate.items[0].revision == 1:
            break
        await asyncio.sleep(0.05)
    assert [s.topic_id for s in fake.jobs(JobType.GENERATE_BLOGPOST)].count(
        doomed[0]
    ) == 2  # retried from the blog stage
    await handle.execute_update(TopicBranchWorkflow.decide_failure, FailureDecision(topic_id=item.id, decision="drop"))

    result = await finished(handle)
    assert result.status == PipelineStatus.PARTIAL, result.reason
    states = sorted(b.state for b in result.branches)
    assert states == ["done", "done", "dropped"]
    failed = next(b for b in result.branches if b.state == "dropped")
    assert "the model refused the topic" in (failed.error or "") and failed.retries == 1
    assert "1 of 3 topics failed" in (result.reason or "")
    assert result.counts["published"] == 4  # two branches x two platforms
    assert fake.ran.count(JobType.GENERATE_SOCIAL) == 8  # every social job retried once after its rate limit
    assert any(n.event == "branch.failed" for n in fake.notices)


async def test_a_retried_branch_runs_only_what_failed_and_then_completes(env: Any) -> None:
    _, _, fake = env
    videos: list[int] = []

    def fail(spec: JobSpec, attempt: int) -> Exception | None:
        if spec.job_type == JobType.GENERATE_VIDEO:
            videos.append(1)
            if len(videos) == 1:
                return ApplicationError("the video model is down", type="AIProviderError", non_retryable=True)
        return None

    fake.fail = fail
    handle = await start(
        env, request(auto_approve_personas=True, auto_approve_topics=True, auto_approve_blogposts=True)
    )
    state = await gate_of(handle, Gate.FAILURE)
    [item] = state.pending_approval.items  # type: ignore[union-attr]
    assert "generate_video failed: the video model is down" in item.detail
    await handle.execute_update(TopicBranchWorkflow.decide_failure, FailureDecision(topic_id=item.id, decision="retry"))
    result = await finished(handle)
    assert result.status == PipelineStatus.COMPLETED, result.reason
    # One image per post: the failed branch made its images beside the failing video and kept them.
    assert len(fake.jobs(JobType.GENERATE_IMAGE)) == 6
    assert len(fake.jobs(JobType.GENERATE_VIDEO)) == 4  # three videos, one of them twice
    assert result.counts["published"] == 6 and result.counts["videos"] == 3


async def test_a_decision_is_recorded_before_the_update_answers(env: Any) -> None:
    _, _, fake = env
    handle = await start(env, request())
    state = await gate_of(handle, Gate.PERSONAS, 6)
    personas = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    # Nothing else writes while the gate waits: the first record after the decision is the one it answered after
    # (the workflow goes on at once, and its next records may already show the topics gate).
    before = len(fake.records)
    await handle.execute_update(
        ContentPipelineWorkflow.select_personas, SelectPersonas(selected_persona_ids=personas[:3])
    )
    last = fake.records[before]
    assert last.pending_gate is None and last.stage == PipelineStage.TOPICS and last.status == PipelineStatus.RUNNING

    state = await gate_of(handle, Gate.TOPICS, 3)
    topics = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    before = len(fake.records)
    await handle.execute_update(
        ContentPipelineWorkflow.decide_topics,
        TopicDecision(approved_topic_ids=topics[1:], rejected=[RejectedTopic(topic_id=topics[0], feedback="again")]),
    )
    # The approved topics' branches start once the decision has answered: their blog posts may then wait at their
    # gate beside the rewritten topic, so the record the decision answered after is checked for the topics gate.
    last = fake.records[before]
    assert Gate.TOPICS not in open_gates(last) and last.stage == PipelineStage.TOPICS
    state = await gate_of(handle, Gate.TOPICS, 1, seen=topics)
    assert state.pending_approval is not None
    await handle.execute_update(
        ContentPipelineWorkflow.decide_topics, TopicDecision(approved_topic_ids=[state.pending_approval.items[0].id])
    )
    assert Gate.TOPICS not in open_gates(fake.records[-1])

    state = await gate_of(handle, Gate.BLOGPOST, 3)
    posts = [item.id for item in state.pending_approval.items]  # type: ignore[union-attr]
    await handle.execute_update(
        TopicBranchWorkflow.decide_blogpost, BlogPostDecision(blog_post_id=posts[0], decision="approve")
    )
    waiting = [i["id"] for g in fake.records[-1].summary["openGates"] for i in g["items"]]
    assert str(posts[0]) not in waiting and len(waiting) == 2
    assert "AlreadyDecided" in await refused(
        handle, TopicBranchWorkflow.decide_blogpost, BlogPostDecision(blog_post_id=posts[0], decision="approve")
    )
    for post in posts[1:]:
        await handle.execute_update(
            TopicBranchWorkflow.decide_blogpost, BlogPostDecision(blog_post_id=post, decision="approve")
        )
    result = await finished(handle)  # no cancel while stages run: the time-skipping server would stop skipping
    assert result.status == PipelineStatus.COMPLETED, result.reason


async def test_blog_posts_left_undecided_expire_their_branches_with_a_reason(env: Any) -> None:
    _, _, fake = env
    handle = await start(
        env, request(auto_approve_personas=True, auto_approve_topics=True, approval_deadline_seconds=3600)
    )
    await gate_of(handle, Gate.BLOGPOST, 3)
    result = await finished(handle)  # the server skips the hour
    assert result.status == PipelineStatus.EXPIRED
    assert [b.state for b in result.branches] == ["expired"] * 3
    assert "3 blog posts were not approved in time" in (result.reason or "")
    events = [n.event for n in fake.notices]
    assert events.count("approval.reminder") == 3 and events.count("approval.expired") == 3
    assert fake.jobs(JobType.GENERATE_SOCIAL) == []  # nothing went on without an approval


async def test_the_largest_pipeline_stays_far_below_the_history_limits(env: Any) -> None:
    """Six personas with eight topics each make 48 branches, each a history of its own; a branch at its largest has
    every platform on ULTIMATE. The pipeline's history grows with its branches, a branch's with its platforms, so
    each is measured at its own largest (all of it at once would only make the test slow on a busy machine)."""
    temporal, _, _ = env
    auto = {"auto_approve_personas": True, "auto_approve_topics": True, "auto_approve_blogposts": True}
    handle = await start(
        env, request(Tier.FREE, [Platform.LINKEDIN], auto_select_count=6, topics_per_persona=8, **auto)
    )
    result = await finished(handle)
    assert result.status == PipelineStatus.COMPLETED, result.reason
    assert len(result.branches) == 48 and result.counts["published"] == 48
    parent = await handle.handle.fetch_history()

    handle = await start(env, request(Tier.ULTIMATE, list(Platform), **auto))
    result = await finished(handle)
    assert result.status == PipelineStatus.COMPLETED, result.reason
    assert result.counts["published"] == len(result.branches) * len(Platform)
    history = await handle.handle.fetch_history()
    children = [
        e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        for e in history.events
        if e.HasField("child_workflow_execution_started_event_attributes")
    ]
    sizes = [len((await temporal.client.get_workflow_handle(c).fetch_history()).events) for c in children]
    print(f"\nlargest pipeline: {len(parent.events)} events; largest branch: {max(sizes)} events")
    # Temporal warns at 10,240 events and ends a workflow at 51,200.
    assert len(parent.events) < 2_000 and max(sizes) < 1_000
