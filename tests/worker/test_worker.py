"""worker.py as a real process: it serves every task queue, and on SIGTERM lets an in-flight activity finish."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import IO

from temporalio.common import Priority
from temporalio.testing import WorkflowEnvironment

from models.contracts import JobRequest
from models.db import Database
from models.enums import JobStatus, JobType, Tier
from models.tables import AIJob, Company
from tests.support.stack import Tenant
from workflows.job import GenerationJobWorkflow

ROOT = Path(__file__).resolve().parents[2]


async def start_worker(env: dict[str, str], log: IO[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def test_sigterm_lets_the_running_activity_finish(
    dev_temporal: WorkflowEnvironment, database_url: str, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    suffix = f"-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": dev_temporal.client.service_client.config.target_host,
        "TASK_QUEUE_SUFFIX": suffix,
        "AI_PROVIDER": "offline",
        "OFFLINE_LATENCY_MS": "1500",  # each provider call takes 1.5 s: the stage is in flight for 3 s
        "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "20",
    }
    log = (tmp_path / "worker.log").open("w+")
    worker = await start_worker(env, log)
    try:
        for _ in range(200):
            log.seek(0)
            if "worker ready" in log.read():
                break
            assert worker.returncode is None, "the worker died at start"
            await asyncio.sleep(0.05)

        async with db.session() as session:
            company = Company(tenant_id=tenant.id, name="Graceful Co")
            session.add(company)
            await session.flush()
            job = AIJob(
                tenant_id=tenant.id,
                company_id=company.id,
                job_type=JobType.GENERATE_DNA,
                workflow_id=f"job-{uuid.uuid4()}",
            )
            session.add(job)
            await session.commit()
        handle = await dev_temporal.client.start_workflow(
            GenerationJobWorkflow.run,
            JobRequest(
                job_id=job.id, job_type=JobType.GENERATE_DNA, tenant_id=tenant.id, company_id=company.id, tier=Tier.FREE
            ),
            id=job.workflow_id or "",
            task_queue="pipeline" + suffix,
            priority=Priority(priority_key=3),
        )
        for _ in range(200):
            async with db.session() as session:
                row = await session.get(AIJob, job.id)
                assert row is not None
                if row.status == JobStatus.PROCESSING:
                    break
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(worker.wait(), 30)
        log.seek(0)
        output = log.read()
        assert exit_code == 0, output
        assert "worker stopping" in output and "worker stopped" in output

        async with db.session() as session:
            row = await session.get(AIJob, job.id)
            assert row is not None
            assert row.status == JobStatus.COMPLETED, f"{row.status}: {row.progress_message}\n{output}"
        # The workflow finishes once any worker serves its queue again: nothing was lost.
        again = await start_worker(env, log)
        try:
            outcome = await asyncio.wait_for(handle.result(), timeout=30)
            assert outcome.status == JobStatus.COMPLETED
        finally:
            again.send_signal(signal.SIGTERM)
            await asyncio.wait_for(again.wait(), 30)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        log.close()
