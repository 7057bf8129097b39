"""The demo against a stack that refuses webhooks on this machine (a `make dev` started without
WEBHOOK_ALLOW_PRIVATE_NETWORKS): it stops at once and says what to do, instead of failing on a bare 422."""

import pytest
from temporalio.testing import WorkflowEnvironment

from cli.demo import LocalWebhookRefused, demo_keys, revoke_demo_keys, run_pipeline
from tests.support.stack import running_stack


async def test_the_demo_says_how_to_start_a_stack_that_takes_its_local_receiver(
    database_url: str, dev_temporal: WorkflowEnvironment
) -> None:
    async with running_stack(database_url, dev_temporal.client, webhook_allow_private_networks=False) as stack:
        keys = await demo_keys(database_url)
        try:
            with pytest.raises(LocalWebhookRefused) as refused:
                await run_pipeline(stack.base_url, keys, wait_seconds=5)
        finally:
            await revoke_demo_keys(database_url, keys)
    message = str(refused.value)
    assert stack.base_url in message and "127.0.0.1 is a loopback address" in message
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true make dev" in message
