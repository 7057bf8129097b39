"""Benchmark: whole pipelines (research to published posts) through the API, the Temporal dev server, the
worker and PostgreSQL, with the offline provider at a given latency, the gates auto-approved and the month
compressed into a few seconds. Reports time to COMPLETED per pipeline, jobs, history size and peak memory.

    .venv/bin/python bench/bench_pipeline.py --pipelines 3 --latency-ms 100 --tier ultimate

Talks only to 127.0.0.1 (a local webhook receiver takes the posts) and stops by itself. Figures go to stdout
and bench/results/ (git-ignored).
"""

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli.receiver import DemoReceiver, receiving
from models.db import Database
from models.enums import Role, Tier
from models.pipeline import month_after
from tests.support.stack import dev_server, make_tenant, migrated_database_with_tenant, running_stack

OPTIONS = {
    "topicsPerPersona": 2,
    "autoApprovePersonas": True,
    "autoApproveTopics": True,
    "autoApproveBlogposts": True,
    "compressScheduleSeconds": 5,
}


async def bench(pipelines: int, latency_ms: int, tier: Tier, server_url: str) -> dict[str, object]:
    async with dev_server() as env, migrated_database_with_tenant(server_url) as (url, _):
        db = Database.from_url(url, pool_size=1)
        tenant = await make_tenant(db, tier, name=f"Bench {tier.value}")
        await db.close()
        overrides = {"offline_latency_ms": latency_ms}
        receiver = DemoReceiver()
        async with running_stack(url, env.client, **overrides) as stack, receiving(receiver) as hook_url:
            http = stack.http
            hook = await http.put("/api/v1/tenant/webhook", json={"url": hook_url}, headers=tenant.headers(Role.ADMIN))
            receiver.secret = hook.json()["secret"]
            started: dict[str, float] = {}
            workflows: dict[str, str] = {}
            begin = time.perf_counter()
            for n in range(pipelines):
                company = (
                    await http.post("/api/v1/companies", json={"name": f"Bench Co {n}"}, headers=tenant.headers())
                ).json()
                response = await http.post(
                    f"/api/v1/ai/companies/{company['id']}/pipelines/",
                    json={
                        "month": month_after(datetime.now(UTC)),
                        "platforms": ["linkedin", "x", "instagram"],
                        "options": OPTIONS,
                    },
                    headers=tenant.headers(),
                )
                body = response.json()
                started[body["pipelineId"]] = time.perf_counter()
                workflows[body["pipelineId"]] = body["workflowId"]
            done: dict[str, float] = {}
            finals: dict[str, dict[str, object]] = {}
            while len(done) < pipelines:
                for pipeline_id in started:
                    if pipeline_id in done:
                        continue
                    state = (await http.get(f"/api/v1/ai/pipelines/{pipeline_id}/", headers=tenant.headers())).json()
                    if state["status"] in ("COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"):
                        done[pipeline_id] = time.perf_counter()
                        finals[pipeline_id] = state
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - begin
            events = []
            for workflow_id in workflows.values():
                history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                events.append(len(history.events))
    seconds = sorted(done[p] - started[p] for p in done)
    statuses = sorted({str(f["status"]) for f in finals.values()})
    jobs = [len(f["jobs"]) for f in finals.values()]  # type: ignore[arg-type]
    return {
        "pipelines": pipelines,
        "tier": tier.value,
        "offline_latency_ms": latency_ms,
        "statuses": statuses,
        "wall_seconds": round(elapsed, 1),
        "pipeline_seconds_p50": round(statistics.median(seconds), 1),
        "pipeline_seconds_max": round(seconds[-1], 1),
        "jobs_per_pipeline": round(statistics.mean(jobs), 1),
        "posts_delivered": len(receiver.posts),
        "history_events_max": max(events),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pipelines", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=100, help="offline provider latency per call")
    parser.add_argument("--tier", choices=[t.value for t in Tier], default=Tier.ULTIMATE.value)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    result = asyncio.run(bench(args.pipelines, args.latency_ms, Tier(args.tier), args.database))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"pipeline_{int(time.time())}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
