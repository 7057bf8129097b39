"""Paid tiers first: under contention on a shared queue, ULTIMATE work is dispatched before PRO, and PRO before FREE
(Temporal task priorities on the dev server, which the Web UI shows)."""

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contracts import JobFinish, JobRequest, StageInput, StageResult
from models.enums import JobType, Tier
from workflows.job import GenerationJobWorkflow
from workflows.policies import AI_QUEUE, PIPELINE_QUEUE, priority_for


async def test_paid_tiers_are_dispatched_first_under_contention(dev_temporal: WorkflowEnvironment) -> None:
    client = dev_temporal.client
    suffix = f"-{uuid.uuid4().hex[:8]}"
    order: list[Tier] = []
    tiers: dict[uuid.UUID, Tier] = {}

    @activity.defn(name="generate_dna")
    async def generate_dna(stage: StageInput) -> StageResult:
        order.append(tiers[stage.job_id])
        await asyncio.sleep(0.05)
        return StageResult(job_id=stage.job_id)

    @activity.defn(name="finish_job")
    async def finish_job(finish: JobFinish) -> bool:
        return True

    pipeline_worker = Worker(
        client, task_queue=PIPELINE_QUEUE + suffix, workflows=[GenerationJobWorkflow], activities=[finish_job]
    )
    handles = []
    async with pipeline_worker:
        # Queue the free work first, then the paid work, with no AI worker running: the backlog is contended.
        for tier in [Tier.FREE] * 4 + [Tier.PRO] * 4 + [Tier.ULTIMATE] * 4:
            job_id = uuid.uuid4()
            tiers[job_id] = tier
            request = JobRequest(
                job_id=job_id, job_type=JobType.GENERATE_DNA, tenant_id=uuid.uuid4(), company_id=uuid.uuid4(), tier=tier
            )
            handles.append(
                await client.start_workflow(
                    GenerationJobWorkflow.run,
                    request,
                    id=f"job-{job_id}",
                    task_queue=PIPELINE_QUEUE + suffix,
                    priority=priority_for(tier),
                )
            )
        # Every workflow has scheduled its activity before the AI worker starts.
        for _ in range(200):
            described = [await h.describe() for h in handles]
            if all(d.raw_description.pending_activities for d in described):
                break
            await asyncio.sleep(0.05)
        ai_worker = Worker(
            client,
            task_queue=AI_QUEUE + suffix,
            activities=[generate_dna],
            max_concurrent_activities=1,
            max_concurrent_activity_task_polls=1,
        )
        async with ai_worker:
            await asyncio.wait_for(
                asyncio.gather(*(h.result() for h in handles)), timeout=timedelta(seconds=60).total_seconds()
            )
    assert order == [Tier.ULTIMATE] * 4 + [Tier.PRO] * 4 + [Tier.FREE] * 4, order
