"""Gates: what a workflow waits on a person for. The open gates of one workflow, the refusals its update
validators answer with, and the wait itself: a reminder at half time, then the deadline."""

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.enums import Gate
    from models.names import Refusal
    from models.pipeline import GateItem, GateView

# Gates whose items come and go one by one; the others hold one round of items.
ITEM_GATES = (Gate.BLOGPOST, Gate.FAILURE)


class GateExpired(Exception):
    """No decision came before the gate's deadline."""


def refuse(message: str, kind: Refusal) -> ApplicationError:
    """An update refused by its validator: nothing changed. The API maps `kind` to 409 or 422."""
    return ApplicationError(message, type=kind.value, non_retryable=True)


@dataclass
class OpenGate:
    gate: Gate
    items: dict[uuid.UUID, GateItem]
    opened_at: datetime
    deadline: datetime
    reminded: bool = False

    def view(self) -> GateView:
        return GateView(
            gate=self.gate,
            items=list(self.items.values()),
            deadline=self.deadline,
            opened_at=self.opened_at,
            reminded=self.reminded,
        )


Notify = Callable[[str, Mapping[str, object]], Awaitable[None]]


@dataclass
class Gates:
    """The gates a workflow has open now, and the round gates it has already decided."""

    open: dict[Gate, OpenGate] = field(default_factory=dict)
    decided: set[Gate] = field(default_factory=set)
    # Gates whose items are being shown: the row shows them a moment before the workflow has them, so a decision
    # that comes in between is checked by its handler once the gate is open, not refused by its validator.
    opening: set[Gate] = field(default_factory=set)

    def is_opening(self, gate: Gate) -> bool:
        return gate in self.opening

    async def opened(self, gate: Gate) -> None:
        await workflow.wait_condition(lambda: gate not in self.opening)

    def views(self) -> list[GateView]:
        """Every open gate, the earliest deadline first."""
        return sorted((g.view() for g in self.open.values()), key=lambda view: view.deadline)

    def open_round(self, gate: Gate, items: list[GateItem], deadline: datetime) -> None:
        for item in items:
            item.deadline = deadline
        self.open[gate] = OpenGate(gate, {i.id: i for i in items}, workflow.now(), deadline)

    def close_round(self, gate: Gate) -> None:
        self.open.pop(gate, None)
        self.decided.add(gate)

    def open_item(self, gate: Gate, item: GateItem) -> None:
        deadline = item.deadline or workflow.now()
        open_gate = self.open.setdefault(gate, OpenGate(gate, {}, workflow.now(), deadline))
        open_gate.items[item.id] = item
        open_gate.deadline = min(i.deadline or deadline for i in open_gate.items.values())

    def close_item(self, gate: Gate, item_id: uuid.UUID) -> None:
        open_gate = self.open.get(gate)
        if open_gate is None:
            return
        open_gate.items.pop(item_id, None)
        if not open_gate.items:
            del self.open[gate]
        else:
            open_gate.deadline = min(i.deadline or open_gate.deadline for i in open_gate.items.values())

    # ---- for the validators ---------------------------------------------------------------------------

    def require(self, gate: Gate) -> OpenGate:
        """The open gate a decision is for, or the refusal that says why there is none."""
        open_gate = self.open.get(gate)
        if open_gate is None:
            if gate in self.decided and gate not in ITEM_GATES:
                raise refuse(f"the {gate.value} approval was already decided", Refusal.ALREADY_DECIDED)
            current = ", ".join(f"the {g.value} gate is open" for g in self.open) or "no gate is open"
            raise refuse(f"no {gate.value} approval is pending ({current})", Refusal.GATE_NOT_PENDING)
        return open_gate

    def require_item(self, gate: Gate, item_id: uuid.UUID, known: bool) -> GateItem:
        """The item waiting at a per-item gate; one of this workflow's that no longer waits was decided."""
        open_gate = self.open.get(gate)
        item = open_gate.items.get(item_id) if open_gate is not None else None
        if item is not None:
            return item
        if known:
            raise refuse(f"{item_id} is not waiting for a decision: it was already decided", Refusal.ALREADY_DECIDED)
        if open_gate is None:
            self.require(gate)
        raise refuse(f"{item_id} is not awaiting a {gate.value} decision in this pipeline", Refusal.INVALID_DECISION)

    # ---- the wait -------------------------------------------------------------------------------------

    async def wait(
        self, decided: Callable[[], bool], deadline: datetime, what: str, items: list[GateItem], notify: Notify
    ) -> None:
        """Until `decided()`, with a reminder at half time; GateExpired at the deadline."""
        half = (deadline - workflow.now()) / 2
        try:
            await workflow.wait_condition(decided, timeout=half, timeout_summary=f"reminder: {what}")
            return
        except TimeoutError:
            pass
        for open_gate in self.open.values():
            if any(i.id in open_gate.items for i in items):
                open_gate.reminded = True
        ids = [str(i.id) for i in items]
        await notify("approval.reminder", {"what": what, "deadline": deadline.isoformat(), "items": ids})
        try:
            remaining = max(timedelta(seconds=1), deadline - workflow.now())
            await workflow.wait_condition(decided, timeout=remaining, timeout_summary=f"deadline: {what}")
        except TimeoutError:
            await notify("approval.expired", {"what": what, "deadline": deadline.isoformat()})
            raise GateExpired(
                f"{what} was not decided by its deadline {deadline.isoformat()}; everything produced is kept"
            ) from None
