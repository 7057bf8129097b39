"""Records the histories the replay tests check: run it after an intended, compatible workflow change.

    .venv/bin/python -m tests.histories.record

Runs real job workflows (completed, permanently failed, cancelled) on a local dev server against a
scratch database, then writes each history as JSON next to this file.
"""

import asyncio
import contextlib
from pathlib import Path

from temporalio.client import WorkflowHandle

from tests.conftest import dev_server, migrated_database_with_tenant, running_stack

HERE = Path(__file__).parent
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def record() -> None:
    async with dev_server() as env, migrated_database_with_tenant(SERVER) as (url, tenant):
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


if __name__ == "__main__":
    asyncio.run(record())
