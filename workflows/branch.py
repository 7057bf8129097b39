"""TopicBranchWorkflow: one approved topic's way to published posts, a child of its pipeline: the blog post and
its gate, the social posts, images and video, the schedule, and each post published at its time. A stage that
fails for good waits for a supervisor, who retries the branch from there or drops it."""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.channels import ChannelHealthReport, ChannelHealthRequest
    from models.enums import BranchState, Count, Gate, JobType, PipelineStage, Platform, PublishState, Tier
    from models.job_params import BlogPostParams, ImageParams, SocialParams, VideoParams
    from models.names import PIPELINE_STAGE, Activity, ErrorType, Patch, Refusal, WorkflowName
    from models.pipeline import (
        BlogPostDecision,
        BlogVerdict,
        BranchView,
        DecisionAccepted,
        FailureDecision,
        GateItem,
        ItemList,
        PublishOutcome,
        PublishPost,
        Rescheduled,
        ReschedulePost,
        Schedule,
        ScheduledPost,
        ScheduleRequest,
        month_bounds,
    )
    from models.records import BranchOutcome, BranchRecord, BranchRequest, GateOpening, branches_stage
    from workflows.decisions import check_blog_decision, check_failure_decision
    from workflows.gates import GateExpired, Gates, refuse
    from workflows.job import failure_message
    from workflows.policies import (
        CHANNEL_CHECK_AHEAD,
        CHANNEL_CHECK_RETRY,
        CHANNEL_CHECK_TIMEOUT,
        DEFAULT_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        PUBLISH_QUEUE,
        PUBLISH_RETRY,
        priority_for,
    )
    from workflows.stages import StageFailed, Stages, all_or_fail, queue, settle

SETTLED = (PublishState.PUBLISHED, PublishState.UNCONFIRMED)


@dataclass
class Progress:
    """What of the branch is done: a retry after a failure starts from the first stage that is not."""

    approved: bool = False
    verdict: BlogVerdict | None = None  # the decision on the revision waiting at the gate
    feedback: str | None = None  # changes requested and not yet written
    social: dict[Platform, list[uuid.UUID]] = field(default_factory=dict)
    media_done: set[str] = field(default_factory=set)
    settled: set[uuid.UUID] = field(default_factory=set)  # posts PUBLISHED or UNCONFIRMED: never sent again
    unsent: list[uuid.UUID] = field(default_factory=list)  # posts FAILED (nothing delivered): a retry re-sends them
    failed_in: BranchState = BranchState.WRITING  # the state the failure interrupted
    failure: FailureDecision | None = None


@workflow.defn(name=WorkflowName.TOPIC_BRANCH)
class TopicBranchWorkflow:
    def __init__(self) -> None:
        self._request: BranchRequest | None = None
        self._view = BranchView(topic_id=uuid.UUID(int=0), title="")
        self._progress = Progress()
        self._gates = Gates()
        self._counts: dict[str, int] = {}
        self._seq = 0
        self._stage = PipelineStage.BLOGPOSTS  # the search attribute the pipeline started the branch with
        self._stages: Stages | None = None
        self._writes: list[asyncio.Task[ItemList]] = []  # records running beside the work (see _enter_beside)
        # Each waiting post's time and how often a person moved it: its timer starts again when it moves.
        self._post_times: dict[uuid.UUID, datetime] = {}
        self._local_times: dict[uuid.UUID, str] = {}
        self._moves: dict[uuid.UUID, int] = {}
        self._sending: set[uuid.UUID] = set()  # posts whose time came: no longer moved

    # ---- the story --------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: BranchRequest) -> BranchOutcome:
        self._request = request
        self._stages = Stages(request.pipeline)
        self._view = BranchView(topic_id=request.topic.id, title=request.topic.title)
        while True:
            try:
                post_id = await self._write_and_approve()
                social = await self._posts_and_media(post_id)
                schedule = await self._schedule(social)
                await self._publish(schedule)
                await self._enter(BranchState.DONE)
                break
            except StageFailed as failed:
                self._view.error = str(failed)
                if not await self._failure_decision():
                    break
            except GateExpired as expired:
                self._view.error = str(expired)
                await self._enter(BranchState.EXPIRED)
                break
        await workflow.wait_condition(workflow.all_handlers_finished)  # a decision's record is written first
        return BranchOutcome(view=self._view, counts=dict(self._counts))

    async def _write_and_approve(self) -> uuid.UUID:
        """Gate 3: approve the post, or request changes with feedback (rewritten up to the revision limit)."""
        options, progress, view = self.request.pipeline.options, self._progress, self._view
        params = BlogPostParams(target_words=options.target_words, language=options.language)
        if view.blog_post_id is None:
            self._enter_beside(BranchState.WRITING)
            written = await self.stages.run(
                JobType.GENERATE_BLOGPOST, f"blog post {self._title}", params, topic_id=view.topic_id
            )
            view.blog_post_id = written.artifact_ids[0]
            self._count(Count.BLOG_POSTS)
        post_id = view.blog_post_id
        while not progress.approved:
            if progress.feedback is not None:
                await self._enter(BranchState.WRITING)
                revised = params.model_copy(update={"feedback": progress.feedback})
                what = f"blog post {self._title}, revision {view.revision + 1}"
                await self.stages.run(
                    JobType.GENERATE_BLOGPOST, what, revised, topic_id=view.topic_id, blog_post_id=post_id
                )
                progress.feedback = None
            if options.auto_approve_blogposts:
                progress.verdict = BlogVerdict(blog_post_id=post_id, approved=True)
                await self._enter(BranchState.SOCIAL, verdict=progress.verdict)
            else:
                await self._await_decision(post_id)
            verdict = progress.verdict
            if verdict is None:  # only a cancel ends the wait without a verdict
                raise StageFailed("no decision")
            if verdict.approved:
                progress.approved = True
            else:
                self._count(Count.BLOG_REVISIONS)
                progress.feedback = verdict.feedback or ""
        return post_id

    async def _await_decision(self, post_id: uuid.UUID) -> None:
        """The post waits at the blog gate with its own deadline; the decision records itself (decide_blogpost)."""
        options, view = self.request.pipeline.options, self._view
        deadline = workflow.now() + timedelta(seconds=options.approval_deadline_seconds)
        self._progress.verdict = None
        [item] = await self._open_item(Gate.BLOGPOST, post_id, deadline)  # can_reject set by the revision limit
        view.revision = item.revision
        try:
            what = f"the approval of {item.title!r}"
            await self._gates.wait(
                lambda: self._progress.verdict is not None, deadline, what, [item], self.stages.notify
            )
        finally:
            self._gates.close_item(Gate.BLOGPOST, post_id)

    async def _social_posts(self, post_id: uuid.UUID) -> list[uuid.UUID]:
        """One social post per platform, each its own job, in parallel; a retry makes only the missing ones."""
        pipeline, progress = self.request.pipeline, self._progress
        await self._enter(BranchState.SOCIAL)

        async def for_platform(platform: Platform) -> None:
            params = SocialParams(platforms=[platform], link_url=pipeline.options.blog_url_template)
            what = f"{platform.label} post for {self._title}"
            result = await self.stages.run(JobType.GENERATE_SOCIAL, what, params, blog_post_id=post_id)
            progress.social[platform] = result.artifact_ids
            self._count(Count.SOCIAL_POSTS, len(result.artifact_ids))

        await all_or_fail(for_platform(p) for p in pipeline.platforms if p not in progress.social)
        ids = [i for p in pipeline.platforms for i in progress.social[p]]
        self._view.social_post_ids = ids
        return ids

    async def _posts_and_media(self, post_id: uuid.UUID) -> list[uuid.UUID]:
        """The social posts then their images and, beside them on ULTIMATE, the blog post's video: it needs only
        the blog post, so its render (the branch's longest job) starts at once and waits for nothing else. A
        failure of either side fails the branch once the other side has finished what it could."""
        social: list[uuid.UUID] = []

        async def posts_and_images() -> None:
            social.extend(await self._social_posts(post_id))
            await self._media(post_id, social)

        work = [posts_and_images()]
        if self.request.pipeline.tier == Tier.ULTIMATE:
            work.append(self._video(post_id))
        await all_or_fail(work)
        return social

    async def _video(self, post_id: uuid.UUID) -> None:
        """One video per blog post (ULTIMATE); a retry after it was made makes no other."""
        done = f"{JobType.GENERATE_VIDEO.value}:None"
        if done in self._progress.media_done:
            return
        result = await self.stages.run(
            JobType.GENERATE_VIDEO, f"video for {self._title}", VideoParams(), blog_post_id=post_id
        )
        self._count(Count.VIDEOS, len(result.artifact_ids))
        self._progress.media_done.add(done)
        self._view.media_ids.extend(result.artifact_ids)

    async def _media(self, post_id: uuid.UUID, social_ids: list[uuid.UUID]) -> None:
        """Images on PRO and up, one per social post, all together (the video was started with the social posts);
        a retry makes only the missing ones."""
        tier = self.request.pipeline.tier
        if tier == Tier.FREE:
            return
        self._enter_beside(BranchState.MEDIA)

        async def image(social_post_id: uuid.UUID) -> None:
            what = f"image {social_ids.index(social_post_id) + 1} for {self._title}"
            result = await self.stages.run(
                JobType.GENERATE_IMAGE, what, ImageParams(), blog_post_id=post_id, social_post_id=social_post_id
            )
            self._count(Count.IMAGES, len(result.artifact_ids))
            self._progress.media_done.add(f"{JobType.GENERATE_IMAGE.value}:{social_post_id}")
            self._view.media_ids.extend(result.artifact_ids)

        done = self._progress.media_done
        await all_or_fail(image(s) for s in social_ids if f"{JobType.GENERATE_IMAGE.value}:{s}" not in done)

    async def _schedule(self, social_ids: list[uuid.UUID]) -> Schedule:
        """Publish times for the branch's posts; idempotent, so a retry gets the same times back."""
        request = self.request
        schedule: Schedule = await self.stages.quick(
            Activity.SCHEDULE_POSTS,
            ScheduleRequest(
                pipeline_id=request.pipeline.pipeline_id,
                social_post_ids=social_ids,
                slot=request.slot,
                slots=request.slots,
                month=request.pipeline.month,
                not_before=workflow.now(),
            ),
            Schedule,
            summary=f"schedule the posts of {self._title}",
        )
        self._enter_beside(BranchState.SCHEDULED)
        return schedule

    async def _check_channel(self, post_id: uuid.UUID, platform: Platform) -> None:
        """The post's channel checked with its platform before the post is due: one that needs reconnecting shows
        in the studio and reaches the tenant's webhook now, not when the post fails to go. Never fails the branch."""
        try:
            await workflow.execute_activity(
                Activity.CHECK_CHANNELS,
                ChannelHealthRequest(social_post_id=post_id),
                result_type=ChannelHealthReport,
                task_queue=queue(PUBLISH_QUEUE),
                start_to_close_timeout=CHANNEL_CHECK_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=CHANNEL_CHECK_RETRY,
                summary=f"check the {platform.label} channel before its post",
            )
        except ActivityError as error:
            workflow.logger.warning("the %s channel check before post %s failed: %s", platform.label, post_id, error)

    async def _publish(self, schedule: Schedule) -> None:
        """Each post on its own durable timer, published at its time through the publisher. A post that was
        not delivered fails the branch (a person decides); an UNCONFIRMED one is counted, never re-sent."""
        progress, view = self._progress, self._view

        async def at_its_time(post: ScheduledPost) -> PublishOutcome:
            post_id, platform = post.social_post_id, post.platform
            self._post_times.setdefault(post_id, post.publish_at)
            self._local_times.setdefault(post_id, post.local_time or f"{post.publish_at:%Y-%m-%d %H:%M} UTC")
            checked = False
            while True:
                when = self._local_times[post_id]
                wait = self._wait_until(self._post_times[post_id])
                if wait <= timedelta(0):  # a post already due goes now: a zero timer still costs a round trip
                    break

                def moved(seen: int = self._moves.get(post_id, 0)) -> bool:
                    return self._moves.get(post_id, 0) != seen

                # An hour before the post is due its channel is checked, so that a person has time to reconnect it.
                check_first = not checked and wait > CHANNEL_CHECK_AHEAD and workflow.patched(Patch.CHANNEL_CHECK)
                try:
                    # The post's timer; a person moving the post (reschedule_post) ends it and a new one starts.
                    await workflow.wait_condition(
                        moved,
                        timeout=wait - CHANNEL_CHECK_AHEAD if check_first else wait,
                        timeout_summary=(
                            f"until the channel check before the {platform.label} post at {when}"
                            if check_first
                            else f"until the {platform.label} post at {when}"
                        ),
                    )
                except TimeoutError:
                    if not check_first:
                        break
                    checked = True
                    await self._check_channel(post_id, platform)
            self._sending.add(post_id)
            when = self._local_times[post_id]
            if view.state != BranchState.PUBLISHING:
                self._enter_beside(BranchState.PUBLISHING)
            outcome: PublishOutcome = await workflow.execute_activity(
                Activity.PUBLISH_POST,
                PublishPost(social_post_id=post_id),
                result_type=PublishOutcome,
                task_queue=queue(PUBLISH_QUEUE),
                start_to_close_timeout=DEFAULT_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=PUBLISH_RETRY,
                priority=priority_for(self.request.pipeline.tier),
                summary=f"publish {platform.label} post at {when}: {self._title}",
            )
            if outcome.state == PublishState.PUBLISHED:
                progress.settled.add(post_id)
                view.published += 1
                self._count(Count.PUBLISHED)
            elif outcome.state == PublishState.UNCONFIRMED:
                progress.settled.add(post_id)
                view.unconfirmed += 1
                self._count(Count.UNCONFIRMED)
            else:
                self._count(Count.PUBLISH_FAILED)
            return outcome

        waiting = [p for p in schedule.posts if p.social_post_id not in progress.settled]
        outcomes, errors = await settle(at_its_time(p) for p in waiting)
        await self._written()
        unsent = [o for o in outcomes if o.state not in SETTLED]
        progress.unsent = [o.social_post_id for o in unsent]
        problems = [failure_message(error) for error in errors] + [o.message or o.state.value for o in unsent]
        if problems:
            distinct = "; ".join(dict.fromkeys(problems))  # one reason for all posts of a tenant without a webhook
            raise StageFailed(f"{len(problems)} of {len(waiting)} posts were not published: {distinct}")

    async def _failure_decision(self) -> bool:
        """The failed branch waits, with the gate deadline, for a supervisor: True to run it again from the
        stage that failed, False when it is dropped (by the supervisor, or because the deadline passed)."""
        progress, view = self._progress, self._view
        deadline = workflow.now() + timedelta(seconds=self.request.pipeline.options.approval_deadline_seconds)
        progress.failed_in = view.state
        progress.failure = None
        item = GateItem(
            id=view.topic_id,
            title=view.title,
            detail=(view.error or "")[:600],
            revision=view.retries,
            deadline=deadline,
        )
        self._gates.open_item(Gate.FAILURE, item)
        self._count(Count.BRANCH_FAILURES)
        await self._enter(BranchState.FAILED)
        data = {"topicId": str(item.id), "title": item.title, "error": item.detail, "deadline": deadline.isoformat()}
        await self.stages.notify("branch.failed", data)
        try:
            what = f"the failed topic {item.title!r}"
            await self._gates.wait(lambda: progress.failure is not None, deadline, what, [item], self.stages.notify)
        except GateExpired as expired:
            view.error = f"{view.error} | {expired}"
        finally:
            self._gates.close_item(Gate.FAILURE, item.id)
        if progress.failure is not None and progress.failure.decision == "retry":
            view.retries += 1
            view.error = None
            progress.unsent = []
            return True
        await self._enter(BranchState.DROPPED)
        return False

    # ---- gates: Updates with validators -----------------------------------------------------------------
    # Each handler records the decision with its visible effect (the item gone, the next state) before it
    # answers: after a 2xx, every read of the pipeline or the inbox reflects it.

    @workflow.update
    async def decide_blogpost(self, decision: BlogPostDecision) -> DecisionAccepted:
        if self._gates.is_opening(Gate.BLOGPOST):
            await self._gates.opened(Gate.BLOGPOST)
            self._check_blogpost(decision)
        approved = decision.decision == "approve"
        verdict = BlogVerdict(blog_post_id=decision.blog_post_id, approved=approved, feedback=decision.feedback)
        self._progress.verdict = verdict
        self._gates.close_item(Gate.BLOGPOST, decision.blog_post_id)
        await self._enter(BranchState.SOCIAL if approved else BranchState.WRITING, verdict=verdict)
        message = "approved" if approved else "changes requested; a new revision is being written"
        return DecisionAccepted(gate=Gate.BLOGPOST, message=message)

    @decide_blogpost.validator
    def _check_blogpost(self, decision: BlogPostDecision) -> None:
        if self._gates.is_opening(Gate.BLOGPOST):
            return  # checked by the handler once the gate is open
        ours = decision.blog_post_id == self._view.blog_post_id
        limit = self.request.pipeline.options.max_revisions
        check_blog_decision(self._gates, ours, self._progress.verdict is not None, decision, limit)

    @workflow.update
    async def decide_failure(self, decision: FailureDecision) -> DecisionAccepted:
        progress = self._progress
        progress.failure = decision
        retry = decision.decision == "retry"
        self._gates.close_item(Gate.FAILURE, decision.topic_id)
        requeue = progress.unsent if retry else []
        if requeue:
            self._count(Count.PUBLISH_FAILED, -len(requeue))
        await self._enter(progress.failed_in if retry else BranchState.DROPPED, requeue=requeue)
        if retry:
            return DecisionAccepted(gate=Gate.FAILURE, message=f"retrying from where it failed ({progress.failed_in})")
        return DecisionAccepted(gate=Gate.FAILURE, message="dropped; its posts will not be published")

    @decide_failure.validator
    def _check_failure(self, decision: FailureDecision) -> None:
        ours = decision.topic_id == self._view.topic_id
        check_failure_decision(self._gates, ours, self._progress.failure is not None, decision)

    # ---- a person moves a waiting post --------------------------------------------------------------------

    @workflow.update
    async def reschedule_post(self, request: ReschedulePost) -> Rescheduled:
        """The post's timer follows at once; then its row records the new time."""
        post_id = request.social_post_id
        self._post_times[post_id] = request.publish_at
        self._moves[post_id] = self._moves.get(post_id, 0) + 1
        done: Rescheduled = await workflow.execute_activity(
            Activity.RESCHEDULE_POST,
            request,
            result_type=Rescheduled,
            task_queue=queue(PUBLISH_QUEUE),
            start_to_close_timeout=DEFAULT_TIMEOUT,
            summary=f"record the new time of a post of {self._title}",
        )
        self._local_times[post_id] = done.local_time
        return done

    @reschedule_post.validator
    def _check_reschedule(self, request: ReschedulePost) -> None:
        post_id = request.social_post_id
        if post_id in self._sending or post_id in self._progress.settled:
            raise refuse("this post is already being published; it can no longer be moved", Refusal.ALREADY_DECIDED)
        if post_id not in self._post_times:
            raise refuse(
                "this post is not waiting for its time in this branch (it is not scheduled yet)",
                Refusal.GATE_NOT_PENDING,
            )
        if request.publish_at <= workflow.now():
            raise refuse("the new time has passed; choose a time in the future", Refusal.INVALID_DECISION)

    # ---- state: the query and the branch's part of the Pipeline row ---------------------------------------

    @workflow.query
    def state(self) -> BranchRecord:
        return self._record()

    def _record(self, verdict: BlogVerdict | None = None, requeue: list[uuid.UUID] | None = None) -> BranchRecord:
        request = self._request
        return BranchRecord(
            pipeline_id=request.pipeline.pipeline_id if request else uuid.UUID(int=0),
            topic_id=self._view.topic_id,
            slot=request.slot if request else 0,
            seq=self._seq,
            view=self._view,
            gates=self._gates.views(),
            counts=dict(self._counts),
            verdict=verdict,
            requeue=requeue or [],
        )

    async def _enter(
        self, state: BranchState, *, verdict: BlogVerdict | None = None, requeue: list[uuid.UUID] | None = None
    ) -> None:
        if state == self._view.state and verdict is None and not requeue:
            await self._written()
            return  # a decision's handler has shown it already
        self._view.state = state
        await self._written()
        await self._write(verdict=verdict, requeue=requeue)

    def _enter_beside(self, state: BranchState) -> None:
        """A state shown while the work it names goes on: a record that carries no decision is bookkeeping the
        work does not wait for (a round trip on the pipeline queue per stage, on the critical path otherwise).
        The row keeps the newest record by `seq` whichever lands first; the next awaited record, or the end of
        the publishing, waits for these first, so a failed write still fails the branch."""
        if state == self._view.state:
            return
        self._view.state = state
        self._writes.append(asyncio.create_task(self._write()))

    async def _written(self) -> None:
        """Waits for the records started beside the work."""
        writes, self._writes = self._writes, []
        for write in writes:
            await write

    async def _open_item(self, gate: Gate, item_id: uuid.UUID, deadline: datetime) -> list[GateItem]:
        """Shows the item at the gate with its display fields, fetched by the same write."""
        await self._written()
        self._view.state = BranchState.AWAITING_APPROVAL
        limit = self.request.pipeline.options.max_revisions
        opening = GateOpening(
            gate=gate, ids=[item_id], opened_at=workflow.now(), deadline=deadline, max_revisions=limit
        )
        self._gates.opening.add(gate)
        try:
            listing = await self._write(opening=opening, what=f"show {self._title} at the {gate.value} gate")
            for item in listing.items:
                self._gates.open_item(gate, item)
        finally:
            self._gates.opening.discard(gate)
        return listing.items

    async def _write(
        self,
        *,
        verdict: BlogVerdict | None = None,
        requeue: list[uuid.UUID] | None = None,
        opening: GateOpening | None = None,
        what: str | None = None,
    ) -> ItemList:
        """The branch's part of the Pipeline row, and its stage as the branch's search attribute."""
        self._seq += 1
        stage = branches_stage({self._view.state})
        if stage != self._stage:
            self._stage = stage
            workflow.upsert_search_attributes([PIPELINE_STAGE.value_set(stage.value)])
        record = self._record(verdict, requeue)
        record.opening = opening
        summary = f"record: {what or self._title + ' is ' + self._view.state.value.replace('_', ' ')}"
        listing: ItemList = await self.stages.quick(Activity.RECORD_BRANCH, record, ItemList, summary=summary)
        return listing

    # ---- small things -----------------------------------------------------------------------------------

    @property
    def request(self) -> BranchRequest:
        if self._request is None:
            raise ApplicationError("the branch has not started", type=ErrorType.NOT_STARTED, non_retryable=True)
        return self._request

    @property
    def stages(self) -> Stages:
        if self._stages is None:
            raise ApplicationError("the branch has not started", type=ErrorType.NOT_STARTED, non_retryable=True)
        return self._stages

    @property
    def _title(self) -> str:
        return repr(self._view.title) if self._view.title else str(self._view.topic_id)

    def _count(self, name: Count, by: int = 1) -> None:
        self._counts[name.value] = self._counts.get(name.value, 0) + by

    def _wait_until(self, publish_at: datetime) -> timedelta:
        """How long to sleep before publishing: until the post's time, or its place in a compressed demo month."""
        now = workflow.now()
        options = self.request.pipeline.options
        if options.compress_schedule_seconds is None:
            return max(timedelta(0), publish_at - now)
        start, end = month_bounds(self.request.pipeline.month)
        fraction = min(1.0, max(0.0, (publish_at - start) / (end - start)))
        return max(
            timedelta(0),
            self.request.publish_epoch + timedelta(seconds=options.compress_schedule_seconds * fraction) - now,
        )
