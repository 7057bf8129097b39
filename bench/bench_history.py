"""The shape of a pipeline run as an operator sees it in the Web UI: history events, activities by kind and the
share of bookkeeping, for the latest pipeline workflow and its topic branches.

Reads the Temporal database that `make run` leaves in `.data/temporal.db` (a copy, so the stack's own file is
never touched), on a dev server of its own on free ports:

    make run && .venv/bin/python bench/bench_history.py [--db .data/temporal.db]

"Bookkeeping" is every activity that only reads or writes our records (job rows, the pipeline row, verdicts,
gate items, notices); the rest is the work itself: the stages (provider calls), scheduling and publishing.
"""

import argparse
import asyncio
import collections
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli.stack import SEARCH_ATTRIBUTES, temporal_cli
from models.enums import JobType
from models.names import Activity

WORK = {Activity.stage(t) for t in JobType} | {Activity.SCHEDULE_POSTS, Activity.PUBLISH_POST}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(address: str, show_summaries: bool) -> None:
    client = await Client.connect(address)
    totals: collections.Counter[str] = collections.Counter()
    by_activity: collections.Counter[str] = collections.Counter()
    workflows: list[tuple[str, str, int, int]] = []
    pipelines = [w async for w in client.list_workflows("WorkflowType = 'ContentPipelineWorkflow'")]
    if not pipelines:
        print("no pipeline in this database: run `make run` first")
        return
    latest = max(pipelines, key=lambda w: w.start_time)
    ids = [(latest.workflow_type, latest.id)]
    parent = await client.get_workflow_handle(latest.id, run_id=latest.run_id).fetch_history()
    for event in parent.events:
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child = event.start_child_workflow_execution_initiated_event_attributes
            ids.append((child.workflow_type.name, child.workflow_id))
    for kind, workflow_id in ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        activities = 0
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                by_activity[name] += 1
                activities += 1
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                totals["timers"] += 1
        totals["events"] += len(history.events)
        totals["activities"] += activities
        workflows.append((kind, workflow_id, len(history.events), activities))
    print(f"{'workflow':<24} {'events':>7} {'activities':>10}  id")
    for kind, workflow_id, events, activities in sorted(workflows):
        print(f"{kind:<24} {events:>7} {activities:>10}  {workflow_id}")
    bookkeeping = sum(n for name, n in by_activity.items() if name not in WORK)
    print(f"\nworkflows {len(workflows)}, history events {totals['events']}, timers {totals['timers']}")
    print(f"activities {totals['activities']}, bookkeeping {bookkeeping} ({bookkeeping / totals['activities']:.0%})")
    for name, count in by_activity.most_common():
        print(f"  {name:<26} {count:>4}  {'work' if name in WORK else 'bookkeeping'}")
    if show_summaries:
        print(f"\nwhat the Web UI shows for {ids[-1][1]}:")
        for event in (await client.get_workflow_handle(ids[-1][1]).fetch_history()).events:
            if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
                print(
                    f"  {EventType.Name(event.event_type).removeprefix('EVENT_TYPE_').lower():<28} "
                    f"{json.loads(event.user_metadata.summary.data)}"
                )
    largest = max(events for _, _, events, _ in workflows)
    print(f"largest history: {largest} events (Temporal warns at 10,240 and stops at 51,200)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=".data/temporal.db", type=Path)
    parser.add_argument("--summaries", action="store_true", help="print the summaries of the last branch's steps")
    args = parser.parse_args()
    if not args.db.exists():
        sys.exit(f"{args.db} does not exist: run `make run` first")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "temporal.db"
        shutil.copy(args.db, copy)
        port = free_port()
        argv = [str(temporal_cli()), "server", "start-dev", "--headless", "--db-filename", str(copy)]
        argv += ["--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(free_port()), "--log-level", "error"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            time.sleep(1)
            asyncio.run(measure(f"127.0.0.1:{port}", args.summaries))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
