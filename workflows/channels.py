"""Channel workflows: one operation a person waits for (connect, authorize, test, disconnect), and the daily check
of every channel that a Temporal Schedule starts."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.channels import ChannelHealthReport, ChannelHealthRequest, ChannelTask, ChannelTaskResult
    from models.names import Activity, WorkflowName
    from workflows.policies import (
        CHANNEL_CHECK_RETRY,
        CHANNEL_CHECK_TIMEOUT,
        CHANNEL_TASK_RETRY,
        CHANNEL_TASK_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        PUBLISH_QUEUE,
        sibling_queue,
    )


def _publish_queue() -> str:
    """This deployment's publish queue (the workflows run on its pipeline queue)."""
    return sibling_queue(workflow.info().task_queue, PUBLISH_QUEUE)


@workflow.defn(name=WorkflowName.CHANNEL_TASK)
class ChannelTaskWorkflow:
    @workflow.run
    async def run(self, task: ChannelTask) -> ChannelTaskResult:
        # Ids only: the credentials stay encrypted in PostgreSQL and never enter this history.
        result: ChannelTaskResult = await workflow.execute_activity(
            Activity.RUN_CHANNEL_TASK,
            task,
            result_type=ChannelTaskResult,
            task_queue=_publish_queue(),
            start_to_close_timeout=CHANNEL_TASK_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CHANNEL_TASK_RETRY,
            summary=f"channel: {task.kind.value}",
        )
        return result


@workflow.defn(name=WorkflowName.CHANNEL_HEALTH)
class ChannelHealthWorkflow:
    @workflow.run
    async def run(self, request: ChannelHealthRequest) -> ChannelHealthReport:
        report: ChannelHealthReport = await workflow.execute_activity(
            Activity.CHECK_CHANNELS,
            request,
            result_type=ChannelHealthReport,
            task_queue=_publish_queue(),
            start_to_close_timeout=CHANNEL_CHECK_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CHANNEL_CHECK_RETRY,
            summary="check every channel",
        )
        return report
