"""Records the histories the replay tests check: run it after an intended, compatible workflow change.

    .venv/bin/python -m tests.histories.record

Runs real job workflows (completed, permanently failed, cancelled) on a local dev server against a
scratch database, then writes each history as JSON next to this file.
"""

import asyncio
import contextlib
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.db import Database
from tests.conftest import BIN, SEARCH_ATTRIBUTES, make_tenant, running_stack, scratch_database

HERE = Path(__file__).parent
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def record() -> None:
    from cli.migrate import upgrade_to_head

    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    try:
        with scratch_database(SERVER) as url:
            upgrade_to_head(url)
            db = Database.from_url(url, pool_size=2)
            tenant = await make_tenant(db)
            await db.close()
            cases: dict[str, dict[str, object]] = {
                "job_dna_completed": {},
                "job_dna_failed": {"offline_fault": "auth", "offline_fault_every": 1},
                "job_dna_cancelled": {"offline_latency_ms": 60_000},
            }
            for name, overrides in cases.items():
                async with running_stack(url, env.client, **overrides) as stack:
                    headers = tenant.headers()
                    company = (await stack.http.post("/api/v1/companies", json={"name": name}, headers=headers)).json()
                    job_id = (await stack.http.post(f"/api/v1/ai/companies/{company['id']}/scrape-dna/", headers=headers)).json()["jobId"]
                    handle: WorkflowHandle = env.client.get_workflow_handle(f"job-{job_id}")
                    if name == "job_dna_cancelled":
                        await asyncio.sleep(2)
                        await handle.cancel()
                    with contextlib.suppress(Exception):
                        await handle.result()
                    history = await handle.fetch_history()
                    (HERE / f"{name}.json").write_text(history.to_json())
                    print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
