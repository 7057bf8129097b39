"""Records the histories the replay tests check: run it after an intended, compatible workflow change.

    .venv/bin/python -m tests.workflows.histories.record [case ...]   # every case, or only those named

Runs real job workflows (completed, permanently failed, cancelled) and real pipelines (completed with every
kind of decision, cancelled at a gate, expired at a gate) on a local dev server against a scratch database,
then writes each history as JSON next to this file.
"""

import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowHandle

from models.enums import Role
from tests.support.stack import RunningStack, Tenant, dev_server, migrated_database_with_tenant, running_stack

HERE = Path(__file__).parent
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


# Each pipeline case, recorded by the workflow code of its time (all re-recorded for the shape with a child
# workflow per approved topic). Re-record only the cases you name: the others prove that runs started before a
# change still replay. A case with branches also records its first topic branch as `branch_<case>`.
PIPELINE_CASES = (
    "pipeline_completed",  # every gate decided by the demo's supervisor
    "pipeline_cancelled",  # cancelled at the first gate
    "pipeline_expired",  # left to expire at the first gate
    "pipeline_decisions_recorded",  # every gate decided, with a rejected topic rewritten beside running branches
    "pipeline_failure_retried",  # posts not delivered (no webhook yet): the branches wait, are retried, publish
)
BRANCH_CASES = {"pipeline_completed": "branch_completed", "pipeline_failure_retried": "branch_failure_retried"}


async def record(only: set[str]) -> None:
    async with dev_server() as env, migrated_database_with_tenant(SERVER) as (url, tenant):
        cases: dict[str, dict[str, object]] = {
            "job_dna_completed": {},
            "job_dna_failed": {"offline_fault": "auth", "offline_fault_every": 1},
            "job_dna_cancelled": {"offline_latency_ms": 60_000},
        }
        for name, overrides in cases.items():
            if only and name not in only:
                continue
            async with running_stack(url, env.client, **overrides) as stack:
                headers = tenant.headers()
                company = (await stack.http.post("/api/v1/companies", json={"name": name}, headers=headers)).json()
                job_id = (
                    await stack.http.post(f"/api/v1/ai/companies/{company['id']}/scrape-dna/", headers=headers)
                ).json()["jobId"]
                handle: WorkflowHandle = env.client.get_workflow_handle(f"job-{job_id}")
                if name == "job_dna_cancelled":
                    await asyncio.sleep(2)
                    await handle.cancel()
                with contextlib.suppress(Exception):
                    await handle.result()
                history = await handle.fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")
        async with running_stack(url, env.client) as stack:
            for name in PIPELINE_CASES:
                if only and name not in only:
                    continue
                handle = await record_pipeline(stack, tenant, name)
                history = await handle.fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")
                children = [
                    e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                    for e in history.events
                    if e.HasField("child_workflow_execution_started_event_attributes")
                ]
                if name in BRANCH_CASES and children:
                    branch = await stack.client.get_workflow_handle(children[0]).fetch_history()
                    (HERE / f"{BRANCH_CASES[name]}.json").write_text(branch.to_json())
                    print(f"recorded {BRANCH_CASES[name]}: {len(branch.events)} events")


async def record_pipeline(stack: RunningStack, tenant: Tenant, name: str) -> WorkflowHandle:
    """A pipeline through the API: decided like the demo's supervisor, cancelled at the first gate, or left to
    expire."""
    from cli.demo import DEMO_OPTIONS, PLATFORMS, Supervisor
    from cli.receiver import DemoReceiver, receiving
    from models.pipeline import month_after

    http = stack.http
    receiver = DemoReceiver()
    admin = tenant.headers(Role.ADMIN)
    async with receiving(receiver) as webhook_url:
        if name == "pipeline_failure_retried":
            await http.delete("/api/v1/tenant/webhook", headers=admin)  # set only once the branches wait
        else:
            hook = await http.put("/api/v1/tenant/webhook", json={"url": webhook_url}, headers=admin)
            receiver.secret = hook.json()["secret"]
        company = (await http.post("/api/v1/companies", json={"name": name}, headers=tenant.headers())).json()
        options = {**DEMO_OPTIONS, "compressScheduleSeconds": 3}
        if name == "pipeline_expired":
            options["approvalDeadlineSeconds"] = 60
        if name == "pipeline_failure_retried":
            options.update(autoApprovePersonas=True, autoApproveTopics=True, autoApproveBlogposts=True)
        started = await http.post(
            f"/api/v1/ai/companies/{company['id']}/pipelines/",
            json={"month": month_after(datetime.now(UTC)), "platforms": PLATFORMS[:2], "options": options},
            headers=tenant.headers(),
        )
        pipeline_id = started.json()["pipelineId"]
        handle: WorkflowHandle = stack.client.get_workflow_handle(started.json()["workflowId"])
        supervisor = Supervisor(http, tenant, print)  # type: ignore[arg-type]
        while True:
            state = (await http.get(f"/api/v1/ai/pipelines/{pipeline_id}/", headers=tenant.headers())).json()
            if state["status"] in ("COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"):
                break
            if state["pendingApproval"] and name == "pipeline_cancelled":
                await http.post(f"/api/v1/ai/pipelines/{pipeline_id}/cancel/", headers=tenant.headers())
            elif name == "pipeline_failure_retried" and state["pendingApproval"]:
                if not receiver.secret:
                    hook = await http.put("/api/v1/tenant/webhook", json={"url": webhook_url}, headers=admin)
                    receiver.secret = hook.json()["secret"]
                await supervisor.decide(state)
            elif name in ("pipeline_completed", "pipeline_decisions_recorded"):
                await supervisor.decide(state)
            await asyncio.sleep(0.3)
        with contextlib.suppress(Exception):
            await handle.result()
        print(f"{name}: {state['status']} {state['reason'] or ''}")
        return handle


if __name__ == "__main__":
    asyncio.run(record(set(sys.argv[1:])))
