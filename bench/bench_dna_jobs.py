"""Benchmark: DNA jobs through the API, the Temporal dev server, the worker and PostgreSQL, with the offline
provider at a given latency. Reports throughput, end-to-end latency (202 -> COMPLETED) and peak memory.

    .venv/bin/python bench/bench_dna_jobs.py --jobs 40 --latency-ms 200 --ai-concurrency 4

Talks only to 127.0.0.1 and stops by itself. Figures go to stdout and bench/results/ (git-ignored).
"""

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.stack import dev_server, migrated_database_with_tenant, running_stack


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of the values, by linear interpolation between the closest ranks.

    The values are sorted here: indexing the list in arrival order (as this script once did with the accept
    times) gives whichever request happened to come at that position, not the 95th percentile."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def bench(jobs: int, latency_ms: int, ai_concurrency: int, server_url: str) -> dict[str, object]:
    async with dev_server() as env, migrated_database_with_tenant(server_url) as (url, tenant):
        overrides = {"offline_latency_ms": latency_ms, "worker_ai_concurrency": ai_concurrency}
        async with running_stack(url, env.client, **overrides) as stack:
            headers = tenant.headers()
            company = (await stack.http.post("/api/v1/companies", json={"name": "Bench Co"}, headers=headers)).json()
            accept_ms: list[float] = []
            started_at: dict[str, float] = {}
            begin = time.perf_counter()
            for _ in range(jobs):
                t0 = time.perf_counter()
                response = await stack.http.post(f"/api/v1/ai/companies/{company['id']}/scrape-dna/", headers=headers)
                accept_ms.append((time.perf_counter() - t0) * 1000)
                started_at[response.json()["jobId"]] = t0
            done: dict[str, float] = {}
            while len(done) < jobs:
                page = (
                    await stack.http.get(f"/api/v1/ai/companies/{company['id']}/jobs/?limit=200", headers=headers)
                ).json()
                now = time.perf_counter()
                for job in page["data"]:
                    if job["status"] in ("COMPLETED", "FAILED") and job["id"] not in done:
                        done[job["id"]] = now
                        if job["status"] == "FAILED":
                            raise RuntimeError(f"job failed: {job['errorMessage']}")
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - begin
    latencies = [(done[j] - started_at[j]) * 1000 for j in done]
    return {
        "jobs": jobs,
        "offline_latency_ms": latency_ms,
        "ai_concurrency": ai_concurrency,
        "wall_seconds": round(elapsed, 2),
        "jobs_per_second": round(jobs / elapsed, 2),
        "accept_ms_p50": round(statistics.median(accept_ms), 1),
        "accept_ms_p95": round(percentile(accept_ms, 95), 1),
        "end_to_end_ms_p50": round(statistics.median(latencies), 1),
        "end_to_end_ms_p95": round(percentile(latencies, 95), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--latency-ms", type=int, default=200, help="offline provider latency per call")
    parser.add_argument("--ai-concurrency", type=int, default=4)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    result = asyncio.run(bench(args.jobs, args.latency_ms, args.ai_concurrency, args.database))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"dna_jobs_{int(time.time())}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
