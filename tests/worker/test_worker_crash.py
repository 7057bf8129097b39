"""A worker killed with SIGKILL mid-stage, again and again: the next worker fails the lost attempt at once so the
stage runs again, the kills never use up the seed's budget for provider errors, and nothing is made twice."""

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from models.db import Database
from models.enums import JobStatus, MediaKind
from models.settings import Settings
from models.tables import AIJob, MediaAsset
from tests.support.stack import Tenant, serving
from tests.support.stage_rows import add_dna, add_persona, add_topic, blog_post_with_revision, job_row, rows
from tests.support.worker_process import WorkerProcess

KILLS = 4


async def test_four_kills_during_one_video_stage_cost_no_provider_attempt(
    database_url: str, dev_temporal: WorkflowEnvironment, tenant: Tenant, db: Database, tmp_path: Path
) -> None:
    from tests.support.stage_rows import new_company

    company = await new_company(db, tenant)
    await add_dna(db, company)
    topic = await add_topic(db, await add_persona(db, company))
    post = await blog_post_with_revision(db, topic, "# Halve your downtime\n\n## Why\n\nBecause [1].\n")
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_temporal.client.service_client.config.target_host,
        task_queue_suffix=f"-{uuid.uuid4().hex[:8]}",
        ai_provider="offline",
        offline_latency_ms=1500,  # each provider call takes 1.5 s: the video stage runs long enough to be hit
        data_dir=tmp_path,
        _env_file=None,  # type: ignore[call-arg]
    )
    worker = WorkerProcess(settings, tmp_path / "logs")
    async with serving(create_app(settings)) as base_url:
        import httpx

        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            await asyncio.to_thread(worker.start)
            try:
                started = await http.post(
                    f"/api/v1/ai/companies/{company.id}/generate-video/",
                    json={"blogPostId": str(post.id)},
                    headers=tenant.headers(),
                )
                assert started.status_code == 202, started.text
                job_id = uuid.UUID(started.json()["jobId"])
                resumed_after: list[float] = []
                for kill in range(KILLS):
                    # Kill only once the stage is running on this worker (after the first kill: it came back).
                    await until(db, job_id, kill, 90, f"the video stage running before kill {kill + 1}")
                    await asyncio.sleep(0.5 + kill * 0.7)  # at different moments of the stage
                    await asyncio.to_thread(worker.kill)
                    killed_at = time.monotonic()
                    await asyncio.sleep(1)
                    await asyncio.to_thread(worker.start)
                    await until(db, job_id, kill + 1, 60, f"the stage resuming after kill {kill + 1}")
                    resumed_after.append(time.monotonic() - killed_at)
                deadline = time.monotonic() + 120
                while (job := await job_row(db, job_id)).status not in (JobStatus.COMPLETED, JobStatus.FAILED):
                    assert time.monotonic() < deadline, job
                    await asyncio.sleep(0.2)
            finally:
                await asyncio.to_thread(worker.stop)
    assert worker.kills == KILLS
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.provider_failures == 0  # four lost workers cost nothing of the provider budget
    videos = await rows(db, MediaAsset, MediaAsset.blog_post_id == post.id, MediaAsset.kind == MediaKind.VIDEO.value)
    assert len(videos) == 1  # one video, not one per attempt
    # Each new worker found the attempt its killed predecessor left in the ledger and failed it at once, instead
    # of waiting for the heartbeat timeout (how soon is measured by bench/bench_crashes.py, not asserted here).
    assert worker.lost_attempts_failed() == [0] + [1] * KILLS, worker.log_tail()
    print(f"the video stage ran again {', '.join(f'{s:.1f}' for s in resumed_after)} s after each kill")


async def running(db: Database, job_id: uuid.UUID, after_kill: int) -> bool:
    """The job is PROCESSING in attempt `after_kill + 1` or later (its start message names a resumption)."""
    async with db.session() as session:
        job = await session.get(AIJob, job_id)
    if job is None or job.status != JobStatus.PROCESSING:
        return False
    attempts = [r for r in await events(db, job_id) if r.startswith(("started", "resumed"))]
    return len(attempts) >= after_kill + 1


async def events(db: Database, job_id: uuid.UUID) -> list[str]:
    from sqlmodel import col, select

    from models.tables import JobEvent

    async with db.session() as session:
        found = await session.exec(
            select(JobEvent.message).where(col(JobEvent.job_id) == job_id).order_by(col(JobEvent.id))
        )
        return list(found.all())


async def until(db: Database, job_id: uuid.UUID, kills: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await running(db, job_id, kills):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
