"""What the pipeline workflow and its topic branches write to the Pipeline row, and how the row is composed.

The pipeline workflow and each TopicBranchWorkflow report their own part (status and stage, open gates,
counts, the branch's view); `compose` turns the parts into what the API reads: one status, one stage, every
open gate with the earliest deadline first, the branches in order, the counts summed. Each part carries its
own sequence number, so a part that arrives late never overwrites a newer one.
"""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.enums import BRANCH_STAGES, BranchState, Gate, PipelineStage, PipelineStatus
from models.pipeline import (
    BlogVerdict,
    BranchView,
    GateItem,
    GateView,
    PersonaSelection,
    PipelineRequest,
    TopicVerdicts,
)

# The stages before the branches: while the pipeline is in one of them, it shows its own stage.
BEFORE_BRANCHES = (
    PipelineStage.DNA,
    PipelineStage.PERSONAS,
    PipelineStage.AWAITING_PERSONA_SELECTION,
    PipelineStage.TOPICS,
    PipelineStage.AWAITING_TOPIC_APPROVAL,
)


class GateOpening(BaseModel):
    """Items about to wait at a gate: the store fills in their display fields and, when `show`, shows them at
    the gate in the same write; the workflow gets the items back and waits on them."""

    gate: Gate
    ids: list[uuid.UUID]
    opened_at: datetime
    deadline: datetime
    max_revisions: int | None = None  # an item at this many revisions can no longer be rejected
    show: bool = True

    def items(self, found: list[GateItem]) -> list[GateItem]:
        for item in found:
            item.deadline = self.deadline
            if self.max_revisions is not None:
                item.can_reject = item.revision < self.max_revisions
        return found


class PipelineRecord(BaseModel):
    """The pipeline workflow's own part of the row, with the decisions it applies in the same transaction."""

    pipeline_id: uuid.UUID
    seq: int
    status: PipelineStatus
    stage: PipelineStage
    reason: str | None = None
    gates: list[GateView] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    finished: bool = False
    personas: PersonaSelection | None = None
    topics: TopicVerdicts | None = None
    opening: GateOpening | None = None


class BranchRecord(BaseModel):
    """One topic branch's part of the row, with the blog verdict or the re-queued posts it applies."""

    pipeline_id: uuid.UUID
    topic_id: uuid.UUID
    slot: int
    seq: int
    view: BranchView
    gates: list[GateView] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    verdict: BlogVerdict | None = None
    requeue: list[uuid.UUID] = Field(default_factory=list)  # FAILED posts to schedule again (a retried branch)
    opening: GateOpening | None = None


class BranchRequest(BaseModel):
    """What a TopicBranchWorkflow needs: its pipeline, its topic, and its place in the month."""

    pipeline: PipelineRequest
    topic: GateItem
    slot: int
    slots: int
    publish_epoch: datetime  # when the branches began: a compressed demo month counts from here


class BranchOutcome(BaseModel):
    """How a branch ended: its view (state done, dropped or expired, with the reason) and its counts."""

    view: BranchView
    counts: dict[str, int] = Field(default_factory=dict)


def add_counts(*parts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total


def branches_stage(states: set[BranchState]) -> PipelineStage:
    for state, stage in BRANCH_STAGES:
        if state in states:
            return stage
    return PipelineStage.DONE


def compose(own: dict[str, Any], branches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The row's status, stage, pending_gate and summary from the stored parts (JSON, as the store keeps them)."""
    ordered = sorted(branches.values(), key=lambda part: part["slot"])
    gates = [GateView.model_validate(g) for g in own.get("gates", [])]
    gates += [GateView.model_validate(g) for part in ordered for g in part.get("gates", [])]
    views = merge_gates(gates)
    status = PipelineStatus(own["status"])
    if not status.is_terminal:
        status = PipelineStatus.AWAITING_APPROVAL if views else PipelineStatus.RUNNING
    stage = PipelineStage(own["stage"])
    if stage not in BEFORE_BRANCHES and ordered and not (status.is_terminal and stage == PipelineStage.DONE):
        stage = branches_stage({BranchState(part["view"]["state"]) for part in ordered})
    dumped = [v.model_dump(mode="json", by_alias=True) for v in views]
    return {
        "status": status,
        "stage": stage,
        "pending_gate": None if status.is_terminal or not dumped else dumped[0],
        "summary": {
            "counts": add_counts(own.get("counts", {}), *(part.get("counts", {}) for part in ordered)),
            "branches": [part["view"] for part in ordered],
            "openGates": [] if status.is_terminal else dumped,
            "parts": {"pipeline": own, "branches": branches},
        },
    }


def merge_gates(gates: list[GateView]) -> list[GateView]:
    """One view per gate (blog posts of several branches wait at one gate), the earliest deadline first."""
    merged: dict[str, GateView] = {}
    for view in gates:
        known = merged.get(view.gate)
        if known is None:
            merged[view.gate] = view.model_copy(deep=True)
            continue
        known.items.extend(view.items)
        known.deadline = min(known.deadline, view.deadline)
        known.opened_at = min(known.opened_at, view.opened_at)
        known.reminded = known.reminded or view.reminded
    return sorted(merged.values(), key=lambda view: view.deadline)
