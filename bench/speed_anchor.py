"""The anchors of bench_speed.py: the least a Temporal workflow can do on the same dev server.

A module of its own (not bench_speed.py, which runs as ``__main__``) because the workflow sandbox imports a
workflow's module again by name; this one imports nothing but temporalio, so that import is cheap and safe.
"""

from datetime import timedelta

from temporalio import activity, workflow

TRIVIAL_WORKFLOW = "BenchTrivialWorkflow"
ONE_ACTIVITY_WORKFLOW = "BenchOneActivityWorkflow"


@activity.defn(name="bench_noop")
async def noop() -> None:
    """Does nothing: what is left is the cost of scheduling, dispatching and recording an activity."""


@workflow.defn(name=TRIVIAL_WORKFLOW)
class TrivialWorkflow:
    """Returns at once: the anchor for starting a workflow (the server's accept, nothing of ours)."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name=ONE_ACTIVITY_WORKFLOW)
class OneActivityWorkflow:
    """One no-op activity: the anchor for a one-stage job (two workflow tasks and one activity task)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))
