"""Which activity attempts a worker process is running, kept in a small file, so that the next worker started
on the same machine fails the attempts of one that died (SIGKILL, an OOM kill, a power cut) at once: they run
again within seconds of a worker coming back instead of after their heartbeat timeout.

Every worker process writes `<host>-<pid>.json` under the ledger folder (DATA_DIR/worker-attempts) as attempts
start and end, and removes it when it stops. A worker that starts looks for files of this host whose process
is gone (its pid no longer runs, or runs a later process) and fails each attempt they list through Temporal
(`WorkerLost`, retried by the activity's retry policy; the last heartbeat's details stay with the activity, so
a video resumes its operation). The failure names the attempt's task token: an attempt that Temporal already
timed out, retried or finished answers "not found" and is left alone, so a live attempt is never touched.
A worker lost on another machine is still noticed by the heartbeat timeout (policies.HEARTBEAT_TIMEOUT).
"""

import base64
import contextlib
import json
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

logger = logging.getLogger(__name__)

LEDGER_FOLDER = "worker-attempts"
WORKER_LOST = "WorkerLost"
RETRY_LOST_AFTER = timedelta(milliseconds=500)


def process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc): tells a live process from a later one that
    reuses its pid. None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields that follow start after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


class AttemptLedger:
    """This process's running attempts by task token, rewritten (atomically) whenever one starts or ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = process_start(self.pid)
        self.path = folder / f"{self.host}-{self.pid}.json"
        self.attempts: dict[str, dict[str, Any]] = {}
        folder.mkdir(parents=True, exist_ok=True)
        self._write()

    def add(self, info: activity.Info) -> None:
        self.attempts[_token(info.task_token)] = {
            "workflowId": info.workflow_id,
            "activityType": info.activity_type,
            "activityId": info.activity_id,
            "attempt": info.attempt,
        }
        self._write()

    def remove(self, info: activity.Info) -> None:
        self.attempts.pop(_token(info.task_token), None)
        self._write()

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        record = {"host": self.host, "pid": self.pid, "started": self.started, "attempts": self.attempts}
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(record))
        os.replace(partial, self.path)


def _token(task_token: bytes) -> str:
    return base64.b64encode(task_token).decode("ascii")


def lost_ledgers(folder: Path) -> list[Path]:
    """Ledgers of this host whose process is gone."""
    host = socket.gethostname()
    lost = []
    for path in sorted(folder.glob(f"{host}-*.json")):
        try:
            record = json.loads(path.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            lost.append(path)  # unreadable: nothing to fail, only to clear
            continue
        if pid == os.getpid():
            continue
        started = process_start(pid)
        if started is None or started != record.get("started"):
            lost.append(path)
    return lost


def lost_records(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The ledgers of this host's dead workers, with what they hold (an unreadable one holds nothing)."""
    if not folder.is_dir():
        return []
    found = []
    for path in lost_ledgers(folder):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        found.append((path, record if isinstance(record, dict) else {}))
    return found


def forget(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def fail_lost_attempts(client: Client, folder: Path) -> int:
    """Fails, through Temporal, every attempt that a dead worker of this host was running; answers how many."""
    failed = 0
    for path, record in lost_records(folder):
        attempts = record.get("attempts")
        for token, what in (attempts if isinstance(attempts, dict) else {}).items():
            error = ApplicationError(
                f"the worker running this attempt (process {record.get('pid')} on {record.get('host')}) was lost",
                type=WORKER_LOST,
                # At once, whatever the retry policy's backoff after earlier losses has grown to.
                next_retry_delay=RETRY_LOST_AFTER,
            )
            try:
                await client.get_async_activity_handle(task_token=base64.b64decode(token)).fail(error)
            except RPCError as rpc_error:
                if rpc_error.status != RPCStatusCode.NOT_FOUND:
                    logger.warning("could not fail the lost attempt of %s: %s", what, rpc_error)
                continue  # not found: Temporal already timed it out, retried it or saw it finish
            failed += 1
            logger.info(
                "failed attempt %s of %s (%s) left by a lost worker: it runs again now",
                what.get("attempt"),
                what.get("activityType"),
                what.get("workflowId"),
            )
        forget(path)
    return failed


class AttemptLedgerInterceptor(Interceptor):
    """Records every activity attempt of this worker process in the ledger while it runs."""

    def __init__(self, ledger: AttemptLedger) -> None:
        self.ledger = ledger

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Recorded(next, self.ledger)


class _Recorded(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, ledger: AttemptLedger) -> None:
        super().__init__(next)
        self.ledger = ledger

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        self.ledger.add(info)
        try:
            return await self.next.execute_activity(input)
        finally:
            self.ledger.remove(info)
