"""The reconciler: workflows terminated from outside (the Web UI, an operator's CLI) end their rows in the worker,
without anyone reading them; other deployments' workflows and rows are left alone; one process sweeps at a time;
an unreachable database is survived."""

import asyncio
import logging
import uuid
from typing import Any

import psycopg
import pytest
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from activities.reconciler import LOCK_CLASS, Reconciler, start_reconciler, stop_reconciler
from models.db import Database
from models.enums import JobStatus, JobType, PipelineStatus
from models.names import WorkflowName
from models.pipeline import month_after
from models.tables import AIJob, Pipeline, utcnow
from tests.support.stack import RunningStack, Tenant, free_port, running_stack

TERMINATED_PIPELINE = "the pipeline's workflow was terminated (by an operator or a deployment)"
TERMINATED_JOB = "the job's workflow was terminated (by an operator or a deployment)"


async def start_work(stack: RunningStack, tenant: Tenant) -> tuple[uuid.UUID, str, uuid.UUID]:
    """A company of the tenant with a running pipeline and a DNA job started alone: (pipeline, its workflow, job)."""
    http, headers = stack.http, tenant.headers()
    company = (
        await http.post("/api/v1/companies", json={"name": f"Reconciled {uuid.uuid4().hex[:6]}"}, headers=headers)
    ).json()["id"]
    body = {"month": month_after(utcnow()), "platforms": ["linkedin"]}
    started = await http.post(f"/api/v1/ai/companies/{company}/pipelines/", json=body, headers=headers)
    assert started.status_code == 202, started.text
    job = await http.post(f"/api/v1/ai/companies/{company}/scrape-dna/", headers=headers)
    assert job.status_code == 202, job.text
    return uuid.UUID(started.json()["pipelineId"]), started.json()["workflowId"], uuid.UUID(job.json()["jobId"])


async def row(db: Database, table: Any, row_id: uuid.UUID) -> Any:
    async with db.session() as session:
        return (await session.exec(select(table).where(col(table.id) == row_id))).one()


async def until_ended(db: Database, table: Any, row_id: uuid.UUID, seconds: float = 90) -> Any:
    """Waits (reading the database, never the API) until the row has ended."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await row(db, table, row_id)
        if found.completed_at is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{table.__name__} {row_id} still {found.status} after {seconds} s")
        await asyncio.sleep(0.2)


async def test_terminated_workflows_end_their_rows_without_a_read(
    database_url: str, dev_temporal: WorkflowEnvironment, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    client = dev_temporal.client
    overrides = {"offline_latency_ms": 30_000, "reconcile_every_seconds": 0.5, "worker_graceful_shutdown_seconds": 2}
    async with running_stack(database_url, client, **overrides) as stack:  # type: ignore[arg-type]
        pipeline_id, pipeline_workflow, job_id = await start_work(stack, tenant)
        others = await start_work(stack, other_tenant)

        # Another deployment sharing the namespace: its workflow has the id of one of our rows but runs on its
        # own task queue. Terminated first, so the sweep that sees ours has it in its window too.
        company_id = (await row(db, AIJob, job_id)).company_id
        foreign = AIJob(tenant_id=tenant.id, company_id=company_id, job_type=JobType.GENERATE_DNA)
        foreign.workflow_id = f"job-{foreign.id}"
        async with db.session() as session:
            session.add(foreign)
            await session.commit()
        elsewhere = await client.start_workflow(
            WorkflowName.JOB.value, id=foreign.workflow_id, task_queue=f"pipeline-elsewhere-{uuid.uuid4().hex[:8]}"
        )
        await elsewhere.terminate("another deployment's operator")

        await client.get_workflow_handle(pipeline_workflow).terminate("operator stopped it")
        await client.get_workflow_handle(f"job-{job_id}").terminate("operator stopped it")

        pipeline = await until_ended(db, Pipeline, pipeline_id)
        assert (pipeline.status, pipeline.status_reason) == (PipelineStatus.FAILED, TERMINATED_PIPELINE)
        assert pipeline.pending_gate is None
        job = await until_ended(db, AIJob, job_id)
        assert (job.status, job.error_message, job.progress_message) == (
            JobStatus.FAILED,
            TERMINATED_JOB,
            TERMINATED_JOB,
        )

        assert (await row(db, AIJob, foreign.id)).status == JobStatus.PENDING
        other_pipeline, _, other_job = others
        assert (await row(db, Pipeline, other_pipeline)).status == PipelineStatus.RUNNING
        assert not JobStatus((await row(db, AIJob, other_job)).status).is_terminal

        # The API shows the ended row as it is, without asking Temporal.
        read = await stack.http.get(f"/api/v1/ai/pipelines/{pipeline_id}/", headers=tenant.headers())
        assert (read.json()["status"], read.json()["reason"]) == ("FAILED", TERMINATED_PIPELINE)


async def test_one_process_sweeps_at_a_time(
    stack: RunningStack, dev_temporal: WorkflowEnvironment, database_url: str
) -> None:
    queue = f"pipeline{stack.settings.task_queue_suffix}"
    db = Database.from_url(database_url, pool_size=2)
    reconciler = Reconciler(dev_temporal.client, db, queue)
    try:
        with psycopg.connect(database_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, queue))
            assert await reconciler.sweep() is None  # another process is sweeping this queue
            holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, queue))
        assert await reconciler.sweep() is not None  # the query is one the server accepts
    finally:
        await db.close()


async def test_an_unreachable_database_is_logged_and_tried_again(
    dev_temporal: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="activities.reconciler")
    nowhere = Database.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1)
    task = start_reconciler(dev_temporal.client, nowhere, "pipeline-unreachable", every_seconds=0.05)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while sum("trying again" in r.getMessage() for r in caplog.records) < 3:
            assert not task.done(), task
            assert asyncio.get_running_loop().time() < deadline, caplog.text
            await asyncio.sleep(0.05)
        assert not task.done()
    finally:
        await stop_reconciler(task)
        await nowhere.close()
    assert task.cancelled()
