"""PublishAgainWorkflow: a post that ended UNCONFIRMED or FAILED, sent again because a person checked the receiver
and asked for it (POST .../socialposts/{id}/publish-again/). Its only way back into publishing: the pipeline never
re-sends such a post by itself (UNCONFIRMED may have arrived), and this one sends it through the same
publish_post as the pipeline, with its claim, its send budget and its delivery id."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.names import Activity, WorkflowName
    from models.pipeline import PublishAgain, PublishOutcome, PublishPost
    from workflows.policies import (
        DEFAULT_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        PUBLISH_QUEUE,
        PUBLISH_RETRY,
        QUICK_RETRY,
        QUICK_TIMEOUT,
    )
    from workflows.stages import queue


def publish_again_workflow_id(social_post_id: object) -> str:
    return f"publish-again-{social_post_id}"


@workflow.defn(name=WorkflowName.PUBLISH_AGAIN)
class PublishAgainWorkflow:
    @workflow.run
    async def run(self, request: PublishAgain) -> PublishOutcome:
        # Back to SCHEDULED with a fresh budget; a retry of this step after the post moved on changes nothing.
        await workflow.execute_activity(
            Activity.REOPEN_POST,
            request,
            task_queue=queue(PUBLISH_QUEUE),
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary="open the post for one more publish",
        )
        outcome: PublishOutcome = await workflow.execute_activity(
            Activity.PUBLISH_POST,
            PublishPost(social_post_id=request.social_post_id),
            result_type=PublishOutcome,
            task_queue=queue(PUBLISH_QUEUE),
            start_to_close_timeout=DEFAULT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=PUBLISH_RETRY,
            summary="publish the post again",
        )
        return outcome
