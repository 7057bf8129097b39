"""Replays stored histories of the job workflow, the pipeline workflow and topic branches: fails when a change to
the workflow code would break runs already in flight (non-determinism). Re-record with
`python -m tests.workflows.histories.record` only for an intended change that is compatible, or version the
change with `workflow.patched`."""

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.branch import TopicBranchWorkflow
from workflows.job import GenerationJobWorkflow
from workflows.pipeline import ContentPipelineWorkflow

HISTORIES = {p.stem: p.read_text() for p in sorted((Path(__file__).parent / "histories").glob("*.json"))}


def test_there_are_histories_for_each_ending() -> None:
    assert set(HISTORIES) >= {"job_dna_completed", "job_dna_failed", "job_dna_cancelled"}
    assert set(HISTORIES) >= {"pipeline_completed", "pipeline_cancelled", "pipeline_expired"}
    # Recorded by the workflow that records each decision before answering, and retries failed branches.
    assert set(HISTORIES) >= {"pipeline_decisions_recorded", "pipeline_failure_retried"}
    # Each approved topic's branch is a child workflow with a history of its own.
    assert set(HISTORIES) >= {"branch_completed", "branch_failure_retried"}


def recorded_workflow_id(name: str, text: str) -> str:
    """The id the workflow ran under, where its commands depend on it: a pipeline names its branches after it."""
    for event in json.loads(text)["events"]:
        child = event.get("startChildWorkflowExecutionInitiatedEventAttributes")
        if child:
            return str(child["workflowId"]).rsplit("-topic-", 1)[0]
    return f"replay-{name}"


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_workflows_replay(name: str) -> None:
    history = WorkflowHistory.from_json(recorded_workflow_id(name, HISTORIES[name]), HISTORIES[name])
    replayer = Replayer(
        workflows=[GenerationJobWorkflow, ContentPipelineWorkflow, TopicBranchWorkflow],
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"
