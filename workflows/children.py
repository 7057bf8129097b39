"""A pipeline's topic branches as child workflows: started the moment a topic is approved, waited for together,
cancelled together with the pipeline."""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models.enums import BranchState, PipelineStage
    from models.names import COMPANY_ID, PIPELINE_STAGE, TENANT_ID, WorkflowName, branch_workflow_id
    from models.pipeline import BranchView, GateItem, PipelineRequest
    from models.records import BranchOutcome, BranchRequest
    from workflows.policies import priority_for


@dataclass
class Branches:
    """The branches a pipeline started, in order, and how those that ended ended."""

    handles: dict[uuid.UUID, ChildWorkflowHandle[Any, BranchOutcome]] = field(default_factory=dict)
    titles: dict[uuid.UUID, str] = field(default_factory=dict)
    outcomes: dict[uuid.UUID, BranchOutcome] = field(default_factory=dict)
    slots: int = 1  # how many topics share the month's publishing slots
    epoch: datetime | None = None  # when the first branch could start: a compressed demo month counts from here

    async def start_all(self, request: PipelineRequest, topics: list[GateItem]) -> None:
        """The topics' branches started together: one workflow task sends every start, where one after another each
        waited for the last to be started (and the last branch, as long as the others, ended that much later)."""
        await asyncio.gather(*(self.start(request, topic) for topic in topics))

    async def start(self, request: PipelineRequest, topic: GateItem) -> None:
        branch = BranchRequest(
            pipeline=request,
            topic=topic,
            slot=len(self.titles),  # taken before the start is awaited: starts run together (start_all)
            slots=self.slots,
            publish_epoch=self.epoch or workflow.now(),
        )
        self.titles[topic.id] = topic.title
        self.handles[topic.id] = await workflow.start_child_workflow(
            WorkflowName.TOPIC_BRANCH,
            branch,
            id=branch_workflow_id(workflow.info().workflow_id, topic.id),
            result_type=BranchOutcome,
            static_summary=f"topic {topic.title!r}: blog post, social posts, media, publishing",
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID, str(request.tenant_id)),
                    SearchAttributePair(COMPANY_ID, str(request.company_id)),
                    SearchAttributePair(PIPELINE_STAGE, PipelineStage.BLOGPOSTS.value),
                ]
            ),
            priority=priority_for(request.tier),
        )

    async def all_ended(self) -> list[BranchOutcome]:
        """Every branch's outcome; a branch that ended in error (a bug, a terminate) counts as dropped with it.
        Waits without awaiting the handles: a cancel of the pipeline lands here, and `cancel` passes it on."""
        await workflow.wait(list(self.handles.values()))
        for topic_id, handle in self._in_order():
            try:
                self.outcomes[topic_id] = handle.result()
            except Exception as error:
                title = self.titles[topic_id]
                view = BranchView(topic_id=topic_id, title=title, state=BranchState.DROPPED, error=str(error))
                self.outcomes[topic_id] = BranchOutcome(view=view)
        return list(self.outcomes.values())

    async def cancel(self) -> None:
        """Cancels the running branches and waits until each has stopped its running stage."""
        running = [handle for handle in self.handles.values() if not handle.done()]
        for handle in running:
            handle.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def views(self) -> list[BranchView]:
        return [
            self.outcomes[t].view if t in self.outcomes else BranchView(topic_id=t, title=self.titles[t])
            for t, _ in self._in_order()
        ]

    def _in_order(self) -> list[tuple[uuid.UUID, ChildWorkflowHandle[Any, BranchOutcome]]]:
        """The started branches in the order of their topics, whichever start was answered first."""
        return [(t, self.handles[t]) for t in self.titles if t in self.handles]
