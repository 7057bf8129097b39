"""The pipeline workflow's state in one structure: what its `state` query shows and its record writes are views
of it."""

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.enums import Count, PipelineStage, PipelineStatus
    from models.pipeline import (
        PersonaSelection,
        PipelineRequest,
        PipelineState,
        SelectPersonas,
        TopicDecision,
        TopicVerdicts,
    )
    from models.records import GateOpening, PipelineRecord, add_counts
    from workflows.children import Branches
    from workflows.gates import Gates
    from workflows.stages import Stages


@dataclass
class PipelineRun:
    """Everything the workflow knows, in one place: its state query and its record are views of this."""

    request: PipelineRequest
    stages: Stages
    status: PipelineStatus = PipelineStatus.RUNNING
    stage: PipelineStage = PipelineStage.DNA
    reason: str | None = None
    gates: Gates = field(default_factory=Gates)
    personas: SelectPersonas | None = None  # the supervisor's decision at gate 1
    topics: TopicDecision | None = None  # the decision on the current round at gate 2
    counts: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    branches: Branches = field(default_factory=Branches)
    topics_expired: str | None = None

    def count(self, name: Count, by: int = 1) -> None:
        self.counts[name.value] = self.counts.get(name.value, 0) + by

    def note(self, text: str) -> None:
        self.reason = f"{self.reason} | {text}" if self.reason else text

    def all_counts(self) -> dict[str, int]:
        """The pipeline's own counts and those of the branches that have ended."""
        return add_counts(self.counts, *(o.counts for o in self.branches.outcomes.values()))

    def view(self) -> PipelineState:
        views = self.gates.views()
        branches = self.branches.views()
        return PipelineState(
            pipeline_id=self.request.pipeline_id,
            status=self.status,
            stage=self.stage,
            reason=self.reason,
            pending_approval=views[0] if views else None,
            pending_approvals=views,
            jobs=list(self.stages.jobs),
            counts=self.all_counts(),
            branches=branches,
        )

    def record(
        self,
        *,
        finished: bool = False,
        personas: PersonaSelection | None = None,
        topics: TopicVerdicts | None = None,
        opening: GateOpening | None = None,
    ) -> PipelineRecord:
        """The pipeline's own part of its row (the branches write theirs), with the decisions it carries."""
        self.seq += 1
        return PipelineRecord(
            pipeline_id=self.request.pipeline_id,
            seq=self.seq,
            status=self.status,
            stage=self.stage,
            reason=self.reason,
            gates=self.gates.views(),
            counts=dict(self.counts),
            finished=finished,
            personas=personas,
            topics=topics,
            opening=opening,
        )
