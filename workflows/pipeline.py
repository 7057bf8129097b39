"""ContentPipelineWorkflow: one company, one month of content, from research to published posts, with a
supervisor's decision at three gates (personas, topics, each blog post)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.contracts import JobFinish, StageResult
    from models.enums import (
        Gate,
        JobStatus,
        JobType,
        PipelineStage,
        PipelineStatus,
        Platform,
        PublishState,
        Tier,
    )
    from models.pipeline import (
        BlogPostDecision,
        BlogVerdict,
        BranchView,
        DecisionAccepted,
        FailureDecision,
        GateItem,
        GateView,
        IdList,
        ItemList,
        ItemRequest,
        JobRef,
        JobSpec,
        PersonaSelection,
        PipelineRecord,
        PipelineRequest,
        PipelineState,
        PublishOutcome,
        PublishPost,
        Schedule,
        ScheduleRequest,
        SelectPersonas,
        TenantNotice,
        TopicDecision,
        TopicVerdicts,
        month_bounds,
    )
    from workflows.job import failure_message, run_stage
    from workflows.policies import (
        DEFAULT_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        PIPELINE_QUEUE,
        PUBLISH_QUEUE,
        PUBLISH_RETRY,
        QUICK_RETRY,
        QUICK_TIMEOUT,
        priority_for,
        sibling_queue,
    )

T = TypeVar("T")

PIPELINE_STAGE = SearchAttributeKey.for_keyword("PipelineStage")

# Persona and topic gates: what the supervisor may do to each item.
MIN_PERSONAS, MAX_PERSONAS = 3, 6
# Gates whose items come and go one by one, as branches reach them; the others hold one round of items.
ITEM_GATES = (Gate.BLOGPOST, Gate.FAILURE)
# A decision is written to the Pipeline row before the update answers, so every read after a 2xx reflects it.
DECISIONS_RECORDED = "decisions-recorded-before-the-answer"


class StageFailed(Exception):
    """A stage's job ended FAILED: the branch (or, before the branches, the pipeline) stops with this reason."""


class GateExpired(Exception):
    """No decision came before the gate's deadline."""


async def settle(work: Iterable[Awaitable[T]]) -> tuple[list[T], list[BaseException]]:
    """Runs independent work together and splits what came back into results (in order) and failures;
    a cancellation is never taken for a failure."""
    results: list[T] = []
    failures: list[BaseException] = []
    for outcome in await asyncio.gather(*work, return_exceptions=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            failures.append(outcome)
        else:
            results.append(outcome)
    return results, failures


def refuse(message: str, kind: str) -> ApplicationError:
    """An update refused by its validator: nothing changed. The API maps `kind` to 409 or 422."""
    return ApplicationError(message, type=kind, non_retryable=True)


@dataclass
class OpenGate:
    gate: Gate
    items: dict[uuid.UUID, GateItem]
    opened_at: datetime
    deadline: datetime
    reminded: bool = False


@dataclass
class Branch:
    """One approved topic's way to published posts, and what of it is done: a retry after a failure starts
    from the first stage that is not."""

    view: BranchView
    slot: int
    verdict: BlogVerdict | None = None
    pending: GateItem | None = None
    approved: bool = False
    feedback: str | None = None  # changes requested and not yet written
    social: dict[Platform, list[uuid.UUID]] = field(default_factory=dict)
    media_done: set[str] = field(default_factory=set)
    settled: set[uuid.UUID] = field(default_factory=set)  # posts PUBLISHED or UNCONFIRMED: never sent again
    unsent: list[uuid.UUID] = field(default_factory=list)  # posts FAILED (nothing delivered): a retry re-sends them
    failed_in: str = ""  # the branch state the failure interrupted
    failure: FailureDecision | None = None


@workflow.defn
class ContentPipelineWorkflow:
    def __init__(self) -> None:
        self._request: PipelineRequest | None = None
        self._status = PipelineStatus.RUNNING
        self._stage = PipelineStage.DNA
        self._reason: str | None = None
        self._gates: dict[Gate, OpenGate] = {}
        self._persona_decision: SelectPersonas | None = None
        self._topic_decision: TopicDecision | None = None
        self._branches: dict[uuid.UUID, Branch] = {}
        self._jobs: list[JobRef] = []
        self._counts: dict[str, int] = {}
        self._seq = 0
        self._publish_epoch: datetime | None = None
        self._decided: set[Gate] = set()

    # ---- the story --------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: PipelineRequest) -> PipelineState:
        self._request = request
        try:
            await self._enter(PipelineStage.DNA)
            await self._run_job(JobType.GENERATE_DNA)

            await self._enter(PipelineStage.PERSONAS)
            personas = await self._run_job(JobType.GENERATE_PERSONAS, params={"language": self._language})
            self._counts["personas"] = len(personas.artifact_ids)
            selected = await self._persona_gate(personas.artifact_ids)

            await self._enter(PipelineStage.TOPICS)
            topics = await self._plan_topics(selected)
            approved = await self._topic_gate(topics)

            await self._run_branches(approved)
            await self._finish_after_branches()
        except StageFailed as failed:
            await self._end(PipelineStatus.FAILED, str(failed))
        except GateExpired as expired:
            await self._end(PipelineStatus.EXPIRED, str(expired))
        except asyncio.CancelledError:
            await self._end(PipelineStatus.CANCELLED, "cancelled; everything produced so far is kept", cancelled=True)
            raise
        return self.state()

    async def _persona_gate(self, persona_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Gate 1: the supervisor selects 3 to 6 of the 6 personas."""
        options = self.request.options
        items = await self._gate_items(Gate.PERSONAS, persona_ids)
        if options.auto_approve_personas:
            chosen = persona_ids[: options.auto_select_count]
        else:
            await self._wait_for_gate(Gate.PERSONAS, items, lambda: self._persona_decision is not None)
            decision = self._persona_decision or SelectPersonas(selected_persona_ids=[])
            chosen = list(decision.selected_persona_ids)
        await self._quick(
            "apply_persona_selection",
            PersonaSelection(pipeline_id=self.request.pipeline_id, persona_ids=chosen, all_persona_ids=persona_ids),
        )
        self._counts["personasSelected"] = len(chosen)
        return chosen

    async def _plan_topics(self, persona_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Topics for the month, one job per selected persona, in parallel; a persona whose job fails is skipped."""
        options = self.request.options

        async def for_persona(persona_id: uuid.UUID) -> list[uuid.UUID]:
            result = await self._run_job(
                JobType.GENERATE_TOPICS,
                persona_id=persona_id,
                params={"month": self.request.month, "count": options.topics_per_persona, "language": self._language},
            )
            return result.artifact_ids

        planned, errors = await settle(for_persona(p) for p in persona_ids)
        topics = [topic for ids in planned for topic in ids]
        failures = [str(error) for error in errors]
        if not topics:
            raise StageFailed("no topics could be planned: " + "; ".join(failures))
        if failures:
            self._reason = f"{len(failures)} of {len(persona_ids)} personas got no topics: " + "; ".join(failures)
        self._counts["topics"] = len(topics)
        return topics

    async def _topic_gate(self, topic_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Gate 2: approve a subset, reject the others with feedback; a rejected topic comes back regenerated
        with the feedback until it is approved or reaches the revision limit."""
        options = self.request.options
        pending = await self._gate_items(Gate.TOPICS, topic_ids)
        approved: list[uuid.UUID] = []
        while pending:
            if options.auto_approve_topics:
                decision = TopicDecision(approved_topic_ids=[item.id for item in pending])
            else:
                self._topic_decision = None
                await self._wait_for_gate(Gate.TOPICS, pending, lambda: self._topic_decision is not None)
                decision = self._topic_decision or TopicDecision()
            rejected = {r.topic_id: r.feedback for r in decision.rejected}
            await self._quick(
                "apply_topic_verdicts", TopicVerdicts(approved=decision.approved_topic_ids, rejected=rejected)
            )
            approved.extend(decision.approved_topic_ids)
            self._counts["topicsApproved"] = len(approved)
            self._counts["topicsRejected"] = self._counts.get("topicsRejected", 0) + len(rejected)
            by_id = {item.id: item for item in pending}
            pending = await self._regenerate_topics(by_id, rejected) if rejected else []
        return approved

    async def _regenerate_topics(
        self, by_id: dict[uuid.UUID, GateItem], rejected: dict[uuid.UUID, str]
    ) -> list[GateItem]:
        await self._enter(PipelineStage.TOPICS)

        async def regenerate(topic_id: uuid.UUID, feedback: str) -> list[uuid.UUID]:
            result = await self._run_job(
                JobType.GENERATE_TOPICS,
                persona_id=by_id[topic_id].persona_id,
                params={
                    "month": self.request.month,
                    "count": 1,
                    "language": self._language,
                    "replaces_topic_id": str(topic_id),
                    "feedback": feedback,
                },
            )
            return result.artifact_ids

        regenerated, errors = await settle(regenerate(t, f) for t, f in rejected.items())
        for error in errors:
            self._note(f"a rejected topic could not be regenerated: {error}")
        new_ids = [topic for ids in regenerated for topic in ids]
        return await self._gate_items(Gate.TOPICS, new_ids) if new_ids else []

    async def _run_branches(self, topic_ids: list[uuid.UUID]) -> None:
        """One branch per approved topic, in parallel: a failed branch does not stop the others."""
        titles = {item.id: item.title for item in await self._gate_items(Gate.TOPICS, topic_ids)}
        for slot, topic_id in enumerate(topic_ids):
            self._branches[topic_id] = Branch(
                view=BranchView(topic_id=topic_id, title=titles.get(topic_id, "")), slot=slot
            )
        self._publish_epoch = workflow.now()
        await self._enter(PipelineStage.BLOGPOSTS)
        await asyncio.gather(*(self._branch(self._branches[t]) for t in topic_ids))

    async def _branch(self, branch: Branch) -> None:
        """A stage that fails for good is a decision for a person: the branch waits in the supervisor's inbox,
        then runs again from the stage that failed, or is dropped."""
        while True:
            try:
                post_id = await self._write_and_approve(branch)
                social = await self._social_posts(branch, post_id)
                await self._media(branch, post_id, social)
                schedule = await self._schedule(branch, social)
                await self._publish(branch, schedule)
                await self._branch_state(branch, "done")
                return
            except StageFailed as failed:
                branch.view.error = str(failed)
                if not await self._failure_decision(branch):
                    return
            except GateExpired as expired:
                branch.view.error = str(expired)
                await self._branch_state(branch, "expired")
                return

    async def _write_and_approve(self, branch: Branch) -> uuid.UUID:
        """Gate 3, per post: approve, or request changes with feedback (regenerated up to the revision limit)."""
        options = self.request.options
        params = {"target_words": options.target_words, "language": self._language}
        if branch.view.blog_post_id is None:
            await self._branch_state(branch, "writing")
            written = await self._run_job(JobType.GENERATE_BLOGPOST, topic_id=branch.view.topic_id, params=params)
            branch.view.blog_post_id = written.artifact_ids[0]
            self._count("blogPosts")
        post_id = branch.view.blog_post_id
        while not branch.approved:
            if branch.feedback is not None:
                await self._branch_state(branch, "writing")
                await self._run_job(
                    JobType.GENERATE_BLOGPOST,
                    topic_id=branch.view.topic_id,
                    blog_post_id=post_id,
                    params={**params, "feedback": branch.feedback},
                )
                branch.feedback = None
            if options.auto_approve_blogposts:
                branch.verdict = BlogVerdict(blog_post_id=post_id, approved=True)
            else:
                [item] = await self._gate_items(Gate.BLOGPOST, [post_id])
                item.can_reject = item.revision < options.max_revisions
                branch.view.revision = item.revision
                branch.verdict = None
                await self._await_blog_decision(branch, item)
            verdict = branch.verdict
            if verdict is None:  # only a cancel ends the wait without a verdict
                raise StageFailed("no decision")
            await self._quick("apply_blog_verdict", verdict)
            if verdict.approved:
                branch.approved = True
            else:
                self._count("blogRevisions")
                branch.feedback = verdict.feedback or ""
        return post_id

    async def _social_posts(self, branch: Branch, post_id: uuid.UUID) -> list[uuid.UUID]:
        """One social post per platform, each its own job, in parallel; a retry makes only the missing ones."""
        await self._branch_state(branch, "social")

        async def for_platform(platform: Platform) -> None:
            params = {"platforms": [platform.value], "link_url": self.request.options.blog_url_template}
            result = await self._run_job(JobType.GENERATE_SOCIAL, blog_post_id=post_id, params=params)
            branch.social[platform] = result.artifact_ids
            self._count("socialPosts", len(result.artifact_ids))

        await self._all_or_fail(for_platform(p) for p in self.request.platforms if p not in branch.social)
        ids = [i for p in self.request.platforms for i in branch.social[p]]
        branch.view.social_post_ids = ids
        return ids

    async def _media(self, branch: Branch, post_id: uuid.UUID, social_ids: list[uuid.UUID]) -> None:
        """Images on PRO and up (one per social post), a video on ULTIMATE (one per blog post); a retry makes
        only the missing ones."""
        tier = self.request.tier
        if tier == Tier.FREE:
            return
        await self._branch_state(branch, "media")
        wanted: list[tuple[JobType, uuid.UUID | None]] = [(JobType.GENERATE_IMAGE, s) for s in social_ids]
        if tier == Tier.ULTIMATE:
            wanted.append((JobType.GENERATE_VIDEO, None))

        async def make(job_type: JobType, social_post_id: uuid.UUID | None) -> None:
            result = await self._run_job(job_type, blog_post_id=post_id, social_post_id=social_post_id)
            branch.media_done.add(f"{job_type.value}:{social_post_id}")
            branch.view.media_ids.extend(result.artifact_ids)
            self._count("images" if job_type == JobType.GENERATE_IMAGE else "videos", len(result.artifact_ids))

        await self._all_or_fail(make(t, s) for t, s in wanted if f"{t.value}:{s}" not in branch.media_done)

    async def _schedule(self, branch: Branch, social_ids: list[uuid.UUID]) -> Schedule:
        """Publish times for the branch's posts; idempotent, so a retry gets the same times back."""
        schedule: Schedule = await workflow.execute_activity(
            "schedule_posts",
            ScheduleRequest(
                pipeline_id=self.request.pipeline_id,
                social_post_ids=social_ids,
                slot=branch.slot,
                slots=max(1, len(self._branches)),
                month=self.request.month,
                not_before=workflow.now(),
            ),
            result_type=Schedule,
            task_queue=self._queue_of(PIPELINE_QUEUE),
            start_to_close_timeout=QUICK_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        await self._branch_state(branch, "scheduled")
        return schedule

    async def _publish(self, branch: Branch, schedule: Schedule) -> None:
        """Each post on its own durable timer, published at its time through the publisher. A post that was
        not delivered fails the branch (a person decides); an UNCONFIRMED one is counted, never re-sent."""

        async def at_its_time(social_post_id: uuid.UUID, publish_at: datetime) -> PublishOutcome:
            await workflow.sleep(self._wait_until(publish_at))
            if branch.view.state != "publishing":
                await self._branch_state(branch, "publishing")
            outcome: PublishOutcome = await workflow.execute_activity(
                "publish_post",
                PublishPost(social_post_id=social_post_id),
                result_type=PublishOutcome,
                task_queue=self._queue_of(PUBLISH_QUEUE),
                start_to_close_timeout=DEFAULT_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=PUBLISH_RETRY,
                priority=priority_for(self.request.tier),
            )
            if outcome.state == PublishState.PUBLISHED:
                branch.settled.add(social_post_id)
                branch.view.published += 1
                self._count("published")
            elif outcome.state == PublishState.UNCONFIRMED:
                branch.settled.add(social_post_id)
                branch.view.unconfirmed += 1
                self._count("unconfirmed")
            else:
                self._count("publishFailed")
            return outcome

        waiting = [p for p in schedule.posts if p.social_post_id not in branch.settled]
        outcomes, errors = await settle(at_its_time(p.social_post_id, p.publish_at) for p in waiting)
        unsent = [o for o in outcomes if o.state not in (PublishState.PUBLISHED, PublishState.UNCONFIRMED)]
        branch.unsent = [o.social_post_id for o in unsent]
        problems = [failure_message(error) for error in errors] + [o.message or o.state.value for o in unsent]
        if problems:
            distinct = "; ".join(dict.fromkeys(problems))  # one reason for all posts of a tenant without a webhook
            raise StageFailed(f"{len(problems)} of {len(waiting)} posts were not published: {distinct}")

    async def _failure_decision(self, branch: Branch) -> bool:
        """The failed branch waits, with the gate deadline, for a supervisor: True to run it again from the
        stage that failed, False when it is dropped (by the supervisor, or because the deadline passed)."""
        deadline = workflow.now() + timedelta(seconds=self.request.options.approval_deadline_seconds)
        branch.failed_in = branch.view.state
        item = GateItem(
            id=branch.view.topic_id,
            title=branch.view.title,
            detail=(branch.view.error or "")[:600],
            revision=branch.view.retries,
            deadline=deadline,
        )
        branch.failure = None
        self._open_item(Gate.FAILURE, item)
        self._count("branchFailures")
        await self._branch_state(branch, "failed")
        await self._notify(
            "branch.failed",
            {"topicId": str(item.id), "title": item.title, "error": item.detail, "deadline": deadline.isoformat()},
        )
        try:
            await self._wait_with_reminder(
                lambda: branch.failure is not None, deadline, f"the failed topic {item.title!r}", [item]
            )
        except GateExpired as expired:
            branch.view.error = f"{branch.view.error} | {expired}"
        finally:
            self._close_item(Gate.FAILURE, item.id)
        if branch.failure is not None and branch.failure.decision == "retry":
            branch.view.retries += 1
            branch.view.error = None
            if branch.unsent:
                await self._quick("requeue_posts", IdList(ids=branch.unsent))
                self._count("publishFailed", -len(branch.unsent))
                branch.unsent = []
            await self._branch_state(branch, branch.failed_in)
            return True
        await self._branch_state(branch, "dropped")
        return False

    async def _finish_after_branches(self) -> None:
        """COMPLETED only when every approved topic's posts were all published; PARTIAL when some were;
        FAILED (or EXPIRED, when deadlines alone stopped it) when none were. `reason` names what was not."""
        views = [b.view for b in self._branches.values()]
        done = [v for v in views if v.state == "done"]
        dropped = [v for v in views if v.state == "dropped"]
        expired = [v for v in views if v.state == "expired"]
        published = self._counts.get("published", 0)
        unconfirmed = self._counts.get("unconfirmed", 0)
        notes = []
        if dropped:
            notes.append(
                f"{len(dropped)} of {len(views)} topics failed and were dropped: "
                + "; ".join(f"{v.title}: {v.error}" for v in dropped)
            )
        if expired:
            notes.append(f"{len(expired)} blog posts were not approved in time: " + "; ".join(v.title for v in expired))
        if unconfirmed:
            notes.append(
                f"{unconfirmed} posts are UNCONFIRMED: the receiver may hold them; check it before sending them again"
            )
        if self._reason:
            notes.append(self._reason)
        reason = " | ".join(notes) or None
        if views and len(done) == len(views) and not unconfirmed:
            await self._end(PipelineStatus.COMPLETED, reason)
        elif published == 0 and expired and not dropped:
            await self._end(PipelineStatus.EXPIRED, reason)
        elif published == 0:
            await self._end(PipelineStatus.FAILED, reason or "no topic made it to publishing")
        else:
            await self._end(PipelineStatus.PARTIAL, reason)

    # ---- gates: Updates with validators -----------------------------------------------------------------
    # Each handler writes the decision's visible effect (the gate closed or the item gone, the next stage) to
    # the Pipeline row before it answers: after a 2xx, every read of the pipeline or the inbox reflects it.

    @workflow.update
    async def select_personas(self, decision: SelectPersonas) -> DecisionAccepted:
        self._persona_decision = decision
        await self._decided_round(Gate.PERSONAS, PipelineStage.TOPICS)
        return DecisionAccepted(gate=Gate.PERSONAS, message=f"{len(decision.selected_persona_ids)} personas selected")

    @select_personas.validator
    def _check_personas(self, decision: SelectPersonas) -> None:
        gate = self._open(Gate.PERSONAS)
        if self._persona_decision is not None:
            raise refuse("the personas were already selected", "AlreadyDecided")
        chosen = decision.selected_persona_ids
        if len(set(chosen)) != len(chosen):
            raise refuse("a persona is selected twice", "InvalidDecision")
        unknown = [str(i) for i in chosen if i not in gate.items]
        if unknown:
            raise refuse(f"not a persona of this pipeline: {', '.join(unknown)}", "InvalidDecision")
        if not MIN_PERSONAS <= len(chosen) <= MAX_PERSONAS:
            raise refuse(f"select {MIN_PERSONAS} to {MAX_PERSONAS} personas, not {len(chosen)}", "InvalidDecision")

    @workflow.update
    async def decide_topics(self, decision: TopicDecision) -> DecisionAccepted:
        self._topic_decision = decision
        await self._decided_round(Gate.TOPICS, PipelineStage.TOPICS if decision.rejected else PipelineStage.BLOGPOSTS)
        return DecisionAccepted(
            gate=Gate.TOPICS,
            message=f"{len(decision.approved_topic_ids)} approved, {len(decision.rejected)} sent back for regeneration",
        )

    @decide_topics.validator
    def _check_topics(self, decision: TopicDecision) -> None:
        gate = self._open(Gate.TOPICS)
        if self._topic_decision is not None:
            raise refuse("this round of topics was already decided", "AlreadyDecided")
        approved = decision.approved_topic_ids
        rejected = [r.topic_id for r in decision.rejected]
        everything = approved + rejected
        if len(set(everything)) != len(everything):
            raise refuse("a topic appears twice (approved and rejected, or twice in one list)", "InvalidDecision")
        unknown = [str(i) for i in everything if i not in gate.items]
        if unknown:
            raise refuse(f"not a topic awaiting approval: {', '.join(unknown)}", "InvalidDecision")
        undecided = [str(i) for i in gate.items if i not in everything]
        if undecided:
            raise refuse(f"decide every topic awaiting approval; undecided: {', '.join(undecided)}", "InvalidDecision")
        limit = self.request.options.max_revisions
        spent = [str(i) for i in rejected if gate.items[i].revision >= limit]
        if spent:
            raise refuse(
                f"these topics reached the limit of {limit} revisions; approve them or cancel the pipeline: {', '.join(spent)}",
                "RevisionLimit",
            )

    @workflow.update
    async def decide_blogpost(self, decision: BlogPostDecision) -> DecisionAccepted:
        branch = self._branch_of_pending(decision.blog_post_id)
        approved = decision.decision == "approve"
        branch.verdict = BlogVerdict(blog_post_id=decision.blog_post_id, approved=approved, feedback=decision.feedback)
        await self._decided_item(Gate.BLOGPOST, decision.blog_post_id, branch, "approved" if approved else "writing")
        return DecisionAccepted(
            gate=Gate.BLOGPOST, message="approved" if approved else "changes requested; a new revision is being written"
        )

    @decide_blogpost.validator
    def _check_blogpost(self, decision: BlogPostDecision) -> None:
        ours = any(b.view.blog_post_id == decision.blog_post_id for b in self._branches.values())
        item = self._open_item_of(Gate.BLOGPOST, decision.blog_post_id, ours)
        if self._branch_of_pending(decision.blog_post_id).verdict is not None:
            raise refuse("this blog post revision was already decided", "AlreadyDecided")
        if decision.decision == "request_changes":
            if not (decision.feedback or "").strip():
                raise refuse("request_changes needs feedback for the next revision", "InvalidDecision")
            if not item.can_reject:
                raise refuse(
                    f"this post reached the limit of {self.request.options.max_revisions} revisions; approve it or cancel the pipeline",
                    "RevisionLimit",
                )

    @workflow.update
    async def decide_failure(self, decision: FailureDecision) -> DecisionAccepted:
        branch = self._branches[decision.topic_id]
        branch.failure = decision
        retry = decision.decision == "retry"
        await self._decided_item(Gate.FAILURE, decision.topic_id, branch, branch.failed_in if retry else "dropped")
        message = (
            f"retrying from where it failed ({branch.failed_in})"
            if retry
            else "dropped; its posts will not be published"
        )
        return DecisionAccepted(gate=Gate.FAILURE, message=message)

    @decide_failure.validator
    def _check_failure(self, decision: FailureDecision) -> None:
        self._open_item_of(Gate.FAILURE, decision.topic_id, decision.topic_id in self._branches)
        if self._branches[decision.topic_id].failure is not None:
            raise refuse("this failure was already decided", "AlreadyDecided")

    def _open(self, gate: Gate) -> OpenGate:
        open_gate = self._gates.get(gate)
        if open_gate is None:
            if gate in self._decided and gate not in ITEM_GATES:
                raise refuse(f"the {gate.value} approval was already decided", "AlreadyDecided")
            current = ", ".join(f"the {g.value} gate is open" for g in self._gates) or "no gate is open"
            raise refuse(f"no {gate.value} approval is pending ({current})", "GateNotPending")
        return open_gate

    def _open_item_of(self, gate: Gate, item_id: uuid.UUID, known: bool) -> GateItem:
        """The item waiting at a per-item gate; one of this pipeline's that no longer waits was decided."""
        open_gate = self._gates.get(gate)
        item = open_gate.items.get(item_id) if open_gate is not None else None
        if item is not None:
            return item
        if known:
            raise refuse(f"{item_id} is not waiting for a decision: it was already decided", "AlreadyDecided")
        if open_gate is None:
            self._open(gate)
        raise refuse(f"{item_id} is not awaiting a {gate.value} decision in this pipeline", "InvalidDecision")

    def _branch_of_pending(self, post_id: uuid.UUID) -> Branch:
        for branch in self._branches.values():
            if branch.pending is not None and branch.pending.id == post_id:
                return branch
        raise refuse(f"blog post {post_id} is not awaiting approval", "InvalidDecision")

    async def _decided_round(self, gate: Gate, next_stage: PipelineStage) -> None:
        """A persona or topic decision: the gate closes and the next stage shows before the update answers."""
        if not workflow.patched(DECISIONS_RECORDED):
            return
        self._gates.pop(gate, None)
        self._decided.add(gate)
        await self._enter(next_stage)

    async def _decided_item(self, gate: Gate, item_id: uuid.UUID, branch: Branch, state: str) -> None:
        """A blog post or failure decision: the item leaves the gate before the update answers."""
        if not workflow.patched(DECISIONS_RECORDED):
            return
        self._close_item(gate, item_id)
        await self._branch_state(branch, state)

    # ---- waiting on a gate: deadline and reminder -------------------------------------------------------

    async def _wait_for_gate(self, gate: Gate, items: list[GateItem], decided: Callable[[], bool]) -> None:
        options = self.request.options
        opened = workflow.now()
        deadline = opened + timedelta(seconds=options.approval_deadline_seconds)
        for item in items:
            item.can_reject = gate != Gate.TOPICS or item.revision < options.max_revisions
            item.deadline = deadline
        self._gates[gate] = OpenGate(gate=gate, items={i.id: i for i in items}, opened_at=opened, deadline=deadline)
        await self._enter(
            {
                Gate.PERSONAS: PipelineStage.AWAITING_PERSONA_SELECTION,
                Gate.TOPICS: PipelineStage.AWAITING_TOPIC_APPROVAL,
            }[gate]
        )
        try:
            await self._wait_with_reminder(decided, deadline, f"the {gate.value} approval", items)
            self._decided.add(gate)
        finally:
            self._gates.pop(gate, None)
            self._status = PipelineStatus.AWAITING_APPROVAL if self._gates else PipelineStatus.RUNNING
            await self._record()

    async def _await_blog_decision(self, branch: Branch, item: GateItem) -> None:
        """Blog posts are decided one by one as their branches reach the gate; each has its own deadline."""
        item.deadline = workflow.now() + timedelta(seconds=self.request.options.approval_deadline_seconds)
        branch.pending = item
        self._open_item(Gate.BLOGPOST, item)
        await self._branch_state(branch, "awaiting_approval")
        try:
            await self._wait_with_reminder(
                lambda: branch.verdict is not None, item.deadline, f"the approval of {item.title!r}", [item]
            )
        finally:
            branch.pending = None
            self._close_item(Gate.BLOGPOST, item.id)
            await self._branch_state(branch, "approved" if branch.verdict and branch.verdict.approved else "writing")

    def _open_item(self, gate: Gate, item: GateItem) -> None:
        now = workflow.now()
        deadline = item.deadline or now
        open_gate = self._gates.setdefault(gate, OpenGate(gate=gate, items={}, opened_at=now, deadline=deadline))
        open_gate.items[item.id] = item
        open_gate.deadline = min(i.deadline or deadline for i in open_gate.items.values())

    def _close_item(self, gate: Gate, item_id: uuid.UUID) -> None:
        open_gate = self._gates.get(gate)
        if open_gate is None:
            return
        open_gate.items.pop(item_id, None)
        if not open_gate.items:
            del self._gates[gate]
        else:
            open_gate.deadline = min(i.deadline or open_gate.deadline for i in open_gate.items.values())

    async def _wait_with_reminder(
        self, decided: Callable[[], bool], deadline: datetime, what: str, items: list[GateItem]
    ) -> None:
        half = (deadline - workflow.now()) / 2
        try:
            await workflow.wait_condition(decided, timeout=half)
            return
        except TimeoutError:
            pass
        for open_gate in self._gates.values():
            if any(i.id in open_gate.items for i in items):
                open_gate.reminded = True
        await self._notify(
            "approval.reminder", {"what": what, "deadline": deadline.isoformat(), "items": [str(i.id) for i in items]}
        )
        try:
            await workflow.wait_condition(decided, timeout=max(timedelta(seconds=1), deadline - workflow.now()))
        except TimeoutError:
            await self._notify("approval.expired", {"what": what, "deadline": deadline.isoformat()})
            raise GateExpired(
                f"{what} was not decided by its deadline {deadline.isoformat()}; everything produced is kept"
            ) from None

    # ---- running a stage as an AIJob --------------------------------------------------------------------

    async def _run_job(
        self,
        job_type: JobType,
        *,
        persona_id: uuid.UUID | None = None,
        topic_id: uuid.UUID | None = None,
        blog_post_id: uuid.UUID | None = None,
        social_post_id: uuid.UUID | None = None,
        params: dict[str, Any] | None = None,
    ) -> StageResult:
        request = self.request
        job_id = workflow.uuid4()
        ref = JobRef(job_id=job_id, job_type=job_type)
        self._jobs.append(ref)
        await self._quick(
            "create_job",
            JobSpec(
                job_id=job_id,
                job_type=job_type,
                tenant_id=request.tenant_id,
                company_id=request.company_id,
                pipeline_id=request.pipeline_id,
                workflow_id=workflow.info().workflow_id,
                persona_id=persona_id,
                topic_id=topic_id,
                blog_post_id=blog_post_id,
                social_post_id=social_post_id,
                params={k: v for k, v in (params or {}).items() if v is not None},
            ),
        )
        ref.status = JobStatus.PROCESSING
        try:
            result = await run_stage(job_type, job_id, request.tier)
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                ref.status = JobStatus.CANCELLED
                raise asyncio.CancelledError("the stage was cancelled") from error
            ref.status = JobStatus.FAILED
            message = failure_message(error)
            # The stage records its own failures; this covers the ones it could not (timeouts, a lost worker).
            await self._quick("finish_job", JobFinish(job_id=job_id, status=JobStatus.FAILED, message=message))
            raise StageFailed(f"{job_type.value} failed: {message}") from None
        ref.status = JobStatus.COMPLETED
        return result

    async def _quick(self, activity: str, argument: Any, result_type: type | None = None) -> Any:
        return await workflow.execute_activity(
            activity,
            argument,
            result_type=result_type,
            task_queue=self._queue_of(PIPELINE_QUEUE),
            start_to_close_timeout=QUICK_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )

    async def _gate_items(self, gate: Gate, ids: list[uuid.UUID]) -> list[GateItem]:
        listing: ItemList = await self._quick("gate_items", ItemRequest(gate=gate, ids=ids), ItemList)
        return listing.items

    async def _notify(self, event: str, data: dict[str, Any]) -> None:
        notice = TenantNotice(
            tenant_id=self.request.tenant_id, event=event, pipeline_id=self.request.pipeline_id, data=data
        )
        workflow.logger.info("pipeline %s: %s %s", self.request.pipeline_id, event, data)
        try:
            await workflow.execute_activity(
                "notify_tenant",
                notice,
                result_type=bool,
                task_queue=self._queue_of(PUBLISH_QUEUE),
                start_to_close_timeout=QUICK_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as error:  # a notification that cannot be delivered never stops the pipeline
            workflow.logger.warning("pipeline %s: %s not delivered: %s", self.request.pipeline_id, event, error)

    async def _all_or_fail(self, work: Iterable[Awaitable[T]]) -> list[T]:
        """Runs independent jobs together; if any fails, the branch fails with every reason."""
        results, errors = await settle(work)
        if errors:
            raise StageFailed("; ".join(str(error) for error in errors))
        return results

    # ---- state: the query, the Pipeline row, the search attribute ---------------------------------------

    @workflow.query
    def state(self) -> PipelineState:
        request = self._request
        views = self._gate_views()
        return PipelineState(
            pipeline_id=request.pipeline_id if request else uuid.UUID(int=0),
            status=self._status,
            stage=self._stage,
            reason=self._reason,
            pending_approval=views[0] if views else None,
            pending_approvals=views,
            jobs=list(self._jobs),
            counts=dict(self._counts),
            branches=[b.view for b in self._branches.values()],
        )

    def _gate_views(self) -> list[GateView]:
        """Every open gate, the earliest deadline first."""
        views = [
            GateView(
                gate=g.gate,
                items=list(g.items.values()),
                deadline=g.deadline,
                opened_at=g.opened_at,
                reminded=g.reminded,
            )
            for g in self._gates.values()
        ]
        return sorted(views, key=lambda view: view.deadline)

    async def _enter(self, stage: PipelineStage) -> None:
        self._stage = stage
        self._status = PipelineStatus.AWAITING_APPROVAL if self._gates else PipelineStatus.RUNNING
        workflow.upsert_search_attributes([PIPELINE_STAGE.value_set(stage.value)])
        await self._record()

    async def _branch_state(self, branch: Branch, state: str) -> None:
        branch.view.state = state
        await self._enter(self._branches_stage())

    def _branches_stage(self) -> PipelineStage:
        states = {b.view.state for b in self._branches.values()}
        for state, stage in (
            ("awaiting_approval", PipelineStage.AWAITING_BLOGPOST_APPROVAL),
            ("failed", PipelineStage.AWAITING_FAILURE_DECISION),
            ("writing", PipelineStage.BLOGPOSTS),
            ("waiting", PipelineStage.BLOGPOSTS),
            ("approved", PipelineStage.SOCIAL),
            ("social", PipelineStage.SOCIAL),
            ("media", PipelineStage.MEDIA),
            ("scheduled", PipelineStage.PUBLISHING),
            ("publishing", PipelineStage.PUBLISHING),
        ):
            if state in states:
                return stage
        return PipelineStage.DONE

    async def _record(self, finished: bool = False) -> None:
        self._seq += 1
        views = self._gate_views()
        view = views[0] if views else None
        summary = {
            "seq": self._seq,
            "counts": dict(self._counts),
            "branches": [b.view.model_dump(mode="json", by_alias=True) for b in self._branches.values()],
            "openGates": [v.model_dump(mode="json", by_alias=True) for v in views],
        }
        await self._quick(
            "record_pipeline",
            PipelineRecord(
                pipeline_id=self.request.pipeline_id,
                status=self._status,
                stage=self._stage,
                reason=self._reason,
                pending_gate=view.model_dump(mode="json", by_alias=True) if view else None,
                summary=summary,
                finished=finished,
            ),
        )

    async def _end(self, status: PipelineStatus, reason: str | None, cancelled: bool = False) -> None:
        self._status = status
        self._reason = reason
        self._gates.clear()
        if status == PipelineStatus.COMPLETED:
            self._stage = PipelineStage.DONE
        await self._record(finished=True)
        if not cancelled:
            await self._notify(
                "pipeline.finished", {"status": status.value, "reason": reason, "counts": dict(self._counts)}
            )

    # ---- small things -----------------------------------------------------------------------------------

    @property
    def request(self) -> PipelineRequest:
        if self._request is None:
            raise ApplicationError("the pipeline has not started", type="NotStarted", non_retryable=True)
        return self._request

    @property
    def _language(self) -> str | None:
        return self.request.options.language

    def _count(self, name: str, by: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + by

    def _note(self, text: str) -> None:
        self._reason = f"{self._reason} | {text}" if self._reason else text

    def _queue_of(self, base: str) -> str:
        return sibling_queue(workflow.info().task_queue, base)

    def _wait_until(self, publish_at: datetime) -> timedelta:
        """How long to sleep before publishing: until the post's time, or its place in a compressed demo month."""
        now = workflow.now()
        compress = self.request.options.compress_schedule_seconds
        if compress is None:
            return max(timedelta(0), publish_at - now)
        start, end = month_bounds(self.request.month)
        fraction = min(1.0, max(0.0, (publish_at - start) / (end - start)))
        epoch = self._publish_epoch or now
        return max(timedelta(0), epoch + timedelta(seconds=compress * fraction) - now)
