"""ContentPipelineWorkflow: one company, one month of content. It researches the company, proposes personas and
topics for a supervisor to decide, and starts a TopicBranchWorkflow for each approved topic at once; the branches
write, publish and wait on their own gates, so an approved topic never waits for a rejected one."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.enums import Count, Gate, JobType, PipelineStage, PipelineStatus
    from models.job_params import DnaParams, PersonasParams, TopicsParams
    from models.names import PIPELINE_STAGE, Activity, ErrorType, WorkflowName
    from models.pipeline import (
        DecisionAccepted,
        GateItem,
        ItemList,
        PersonaSelection,
        PipelineRequest,
        PipelineState,
        SelectPersonas,
        TopicDecision,
        TopicVerdicts,
    )
    from models.records import BranchOutcome, GateOpening
    from workflows.decisions import check_persona_selection, check_topic_decision, pipeline_outcome
    from workflows.gates import GateExpired
    from workflows.stages import StageFailed, Stages, settle
    from workflows.state import PipelineRun

WAITING_AT = {
    Gate.PERSONAS: PipelineStage.AWAITING_PERSONA_SELECTION,
    Gate.TOPICS: PipelineStage.AWAITING_TOPIC_APPROVAL,
}


@workflow.defn(name=WorkflowName.PIPELINE)
class ContentPipelineWorkflow:
    def __init__(self) -> None:
        self._run: PipelineRun | None = None

    # ---- the story --------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: PipelineRequest) -> PipelineState:
        run = self._run = PipelineRun(request=request, stages=Stages(request))
        language = request.options.language
        try:
            await self._enter(PipelineStage.DNA)
            await run.stages.run(JobType.GENERATE_DNA, "research the company (DNA)", DnaParams())

            await self._enter(PipelineStage.PERSONAS)
            personas = await run.stages.run(
                JobType.GENERATE_PERSONAS, "propose 6 personas", PersonasParams(language=language)
            )
            run.count(Count.PERSONAS, len(personas.artifact_ids))
            selected = await self._persona_gate(personas.artifact_ids)

            topics = await self._plan_topics(selected)
            await self._topic_gate(topics)
            await self._finish(await self._branches_done())
        except StageFailed as failed:
            await self._end(PipelineStatus.FAILED, str(failed))
        except GateExpired as expired:
            await self._end(PipelineStatus.EXPIRED, str(expired))
        except asyncio.CancelledError:
            await run.branches.cancel()
            await self._end(PipelineStatus.CANCELLED, "cancelled; everything produced so far is kept", cancelled=True)
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _persona_gate(self, persona_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Gate 1: the supervisor selects 3 to 6 of the 6 personas (select_personas records the choice)."""
        run, options = self.pipeline, self.pipeline.request.options
        if options.auto_approve_personas:
            run.personas = SelectPersonas(selected_persona_ids=persona_ids[: options.auto_select_count])
            await self._decided_personas(persona_ids)
        else:
            items = await self._open(Gate.PERSONAS, persona_ids)
            await self._wait(Gate.PERSONAS, items, lambda: run.personas is not None)
        return list(run.personas.selected_persona_ids if run.personas else [])

    async def _plan_topics(self, persona_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Topics for the month, one job per selected persona, in parallel; a persona whose job fails is skipped."""
        run, request = self.pipeline, self.pipeline.request
        params = TopicsParams(
            month=request.month, count=request.options.topics_per_persona, language=request.options.language
        )
        planned, errors = await settle(
            run.stages.run(JobType.GENERATE_TOPICS, f"plan topics for persona {n + 1}", params, persona_id=p)
            for n, p in enumerate(persona_ids)
        )
        topics = [topic for result in planned for topic in result.artifact_ids]
        failures = [str(error) for error in errors]
        if not topics:
            raise StageFailed("no topics could be planned: " + "; ".join(failures))
        if failures:
            run.note(f"{len(failures)} of {len(persona_ids)} personas got no topics: " + "; ".join(failures))
        run.count(Count.TOPICS, len(topics))
        return topics

    async def _topic_gate(self, topic_ids: list[uuid.UUID]) -> None:
        """Gate 2: each approved topic starts its branch at once; a rejected topic comes back regenerated with the
        feedback, beside the running branches, until it is approved or reaches the revision limit."""
        run, options = self.pipeline, self.pipeline.request.options
        run.branches.slots, run.branches.epoch = max(1, len(topic_ids)), workflow.now()
        pending = topic_ids
        while pending:
            run.topics = None
            if options.auto_approve_topics:
                run.topics = TopicDecision(approved_topic_ids=pending)
                run.count(Count.TOPICS_APPROVED, len(pending))
                items = await self._write("approve the topics", topics=self._verdicts(), opening=self._fetch(pending))
            else:
                items = await self._open(Gate.TOPICS, pending)
                try:
                    await self._wait(Gate.TOPICS, items, lambda: run.topics is not None)
                except GateExpired as expired:
                    if not run.branches.handles:
                        raise
                    run.topics_expired = str(expired)  # the approved topics' branches go on
                    return
            decision = run.topics or TopicDecision()
            by_id = {item.id: item for item in items}
            await run.branches.start_all(run.request, [by_id[t] for t in decision.approved_topic_ids])
            rejected = {r.topic_id: r.feedback for r in decision.rejected}
            pending = await self._regenerate(by_id, rejected) if rejected else []

    async def _regenerate(self, by_id: dict[uuid.UUID, GateItem], rejected: dict[uuid.UUID, str]) -> list[uuid.UUID]:
        run, request = self.pipeline, self.pipeline.request

        options = request.options
        params = TopicsParams(month=request.month, count=1, language=options.language)
        regenerated, errors = await settle(
            run.stages.run(
                JobType.GENERATE_TOPICS,
                f"rewrite the topic {by_id[t].title!r}",
                params.model_copy(update={"replaces_topic_id": t, "feedback": f}),
                persona_id=by_id[t].persona_id,
            )
            for t, f in rejected.items()
        )
        for error in errors:
            run.note(f"a rejected topic could not be regenerated: {error}")
        return [topic for result in regenerated for topic in result.artifact_ids]

    async def _branches_done(self) -> list[BranchOutcome]:
        run = self.pipeline
        if run.stage in (*WAITING_AT.values(), PipelineStage.TOPICS):
            await self._enter(PipelineStage.BLOGPOSTS)
        return await run.branches.all_ended()

    async def _finish(self, outcomes: list[BranchOutcome]) -> None:
        run = self.pipeline
        status, reason = pipeline_outcome(outcomes, topics_expired=run.topics_expired, reason=run.reason)
        await self._end(status, reason)

    # ---- gates 1 and 2: Updates with validators ---------------------------------------------------------
    # Each handler records the decision with its visible effect (the gate closed, the next stage) before it
    # answers: after a 2xx, every read of the pipeline or the inbox reflects it.

    @workflow.update
    async def select_personas(self, decision: SelectPersonas) -> DecisionAccepted:
        run = self.pipeline
        if run.gates.is_opening(Gate.PERSONAS):
            await run.gates.opened(Gate.PERSONAS)
            self._check_personas(decision)
        run.personas = decision
        all_ids = list(run.gates.open[Gate.PERSONAS].items) if Gate.PERSONAS in run.gates.open else []
        run.gates.close_round(Gate.PERSONAS)
        await self._decided_personas(all_ids)
        return DecisionAccepted(gate=Gate.PERSONAS, message=f"{len(decision.selected_persona_ids)} personas selected")

    @select_personas.validator
    def _check_personas(self, decision: SelectPersonas) -> None:
        run = self.pipeline
        if not run.gates.is_opening(Gate.PERSONAS):  # else checked by the handler once the gate is open
            check_persona_selection(run.gates, run.personas is not None, decision)

    @workflow.update
    async def decide_topics(self, decision: TopicDecision) -> DecisionAccepted:
        run = self.pipeline
        if run.gates.is_opening(Gate.TOPICS):
            await run.gates.opened(Gate.TOPICS)
            self._check_topics(decision)
        run.topics = decision
        run.gates.close_round(Gate.TOPICS)
        run.count(Count.TOPICS_APPROVED, len(decision.approved_topic_ids))
        run.count(Count.TOPICS_REJECTED, len(decision.rejected))
        if decision.dropped_topic_ids:
            run.count(Count.TOPICS_DROPPED, len(decision.dropped_topic_ids))
        next_stage = PipelineStage.TOPICS if decision.rejected else PipelineStage.BLOGPOSTS
        await self._write("record the topic decision", stage=next_stage, topics=self._verdicts())
        approved, rejected = len(decision.approved_topic_ids), len(decision.rejected)
        message = f"{approved} approved, {rejected} sent back for regeneration"
        if decision.dropped_topic_ids:
            message += f", {len(decision.dropped_topic_ids)} dropped"
        return DecisionAccepted(gate=Gate.TOPICS, message=message)

    @decide_topics.validator
    def _check_topics(self, decision: TopicDecision) -> None:
        run = self.pipeline
        if not run.gates.is_opening(Gate.TOPICS):  # else checked by the handler once the gate is open
            check_topic_decision(run.gates, run.topics is not None, decision, run.request.options.max_revisions)

    async def _decided_personas(self, all_ids: list[uuid.UUID]) -> None:
        run = self.pipeline
        chosen = list(run.personas.selected_persona_ids if run.personas else [])
        run.count(Count.PERSONAS_SELECTED, len(chosen))
        selection = PersonaSelection(pipeline_id=run.request.pipeline_id, persona_ids=chosen, all_persona_ids=all_ids)
        await self._write("record the persona selection", stage=PipelineStage.TOPICS, personas=selection)

    def _verdicts(self) -> TopicVerdicts:
        decision = self.pipeline.topics or TopicDecision()
        return TopicVerdicts(
            approved=decision.approved_topic_ids,
            rejected={r.topic_id: r.feedback for r in decision.rejected},
            dropped=decision.dropped_topic_ids,
        )

    # ---- waiting at a gate ------------------------------------------------------------------------------

    def _deadline(self) -> datetime:
        return workflow.now() + timedelta(seconds=self.pipeline.request.options.approval_deadline_seconds)

    def _fetch(self, ids: list[uuid.UUID]) -> GateOpening:
        now = workflow.now()
        return GateOpening(gate=Gate.TOPICS, ids=ids, opened_at=now, deadline=now, show=False)

    async def _open(self, gate: Gate, ids: list[uuid.UUID]) -> list[GateItem]:
        """Shows the items at the gate with their display fields, fetched by the same write."""
        limit = self.pipeline.request.options.max_revisions if gate == Gate.TOPICS else None
        opening = GateOpening(
            gate=gate, ids=ids, opened_at=workflow.now(), deadline=self._deadline(), max_revisions=limit
        )
        gates = self.pipeline.gates
        gates.opening.add(gate)
        try:
            items = await self._write(
                f"show {len(ids)} items at the {gate.value} gate", stage=WAITING_AT[gate], opening=opening
            )
            gates.open_round(gate, items, opening.deadline)
        finally:
            gates.opening.discard(gate)
        return items

    async def _wait(self, gate: Gate, items: list[GateItem], decided: Callable[[], bool]) -> None:
        open_gate = self.pipeline.gates.open[gate]
        try:
            await self.pipeline.gates.wait(
                decided, open_gate.deadline, f"the {gate.value} approval", items, self.pipeline.stages.notify
            )
        finally:
            self.pipeline.gates.open.pop(gate, None)

    # ---- state: the query, the Pipeline row, the search attribute ---------------------------------------

    @workflow.query
    def state(self) -> PipelineState:
        if self._run is None:
            return PipelineState(pipeline_id=uuid.UUID(int=0), status=PipelineStatus.RUNNING, stage=PipelineStage.DNA)
        return self._run.view()

    async def _enter(self, stage: PipelineStage) -> None:
        await self._write(f"the pipeline is at {stage.value.replace('_', ' ')}", stage=stage)

    async def _write(
        self,
        what: str,
        *,
        stage: PipelineStage | None = None,
        finished: bool = False,
        personas: PersonaSelection | None = None,
        topics: TopicVerdicts | None = None,
        opening: GateOpening | None = None,
    ) -> list[GateItem]:
        """The pipeline's own part of its row (the branches write theirs), with the decisions it carries."""
        run = self.pipeline
        if stage is not None and stage != run.stage:
            run.stage = stage
            workflow.upsert_search_attributes([PIPELINE_STAGE.value_set(stage.value)])
        if not run.status.is_terminal:
            showing = opening is not None and opening.show
            run.status = PipelineStatus.AWAITING_APPROVAL if run.gates.open or showing else PipelineStatus.RUNNING
        record = run.record(finished=finished, personas=personas, topics=topics, opening=opening)
        listing: ItemList = await run.stages.quick(
            Activity.RECORD_PIPELINE, record, ItemList, summary=f"record: {what}"
        )
        return listing.items

    async def _end(self, status: PipelineStatus, reason: str | None, cancelled: bool = False) -> None:
        run = self.pipeline
        run.status, run.reason = status, reason
        run.gates.open.clear()
        await self._write(
            f"the pipeline ended {status.value}",
            stage=PipelineStage.DONE if status == PipelineStatus.COMPLETED else None,
            finished=True,
        )
        if not cancelled:
            data = {"status": status.value, "reason": reason, "counts": run.all_counts()}
            await run.stages.notify("pipeline.finished", data)

    @property
    def pipeline(self) -> PipelineRun:
        if self._run is None:
            raise ApplicationError("the pipeline has not started", type=ErrorType.NOT_STARTED, non_retryable=True)
        return self._run
