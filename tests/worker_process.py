"""`worker.py` as a real OS process beside an in-process API: it can be killed with SIGKILL mid-stage and
started again, as a crash, an OOM kill or a lost machine would do it. For crash tests and the crash bench."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from models.settings import PROJECT_ROOT, Settings

READY_LINE = "worker ready"


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: the same database, Temporal, queues, provider and media store as `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLINE_", "AI_", "WORKER_"))}
    env.update(
        {
            "DATABASE_URL": settings.resolved_database_url(),
            "TEMPORAL_ADDRESS": settings.temporal_address,
            "TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "TASK_QUEUE_SUFFIX": settings.task_queue_suffix,
            "AI_PROVIDER": settings.ai_provider,
            "OFFLINE_LATENCY_MS": str(settings.offline_latency_ms),
            "PUBLIC_BASE_URL": settings.public_base_url,
            "DATA_DIR": str(settings.data_dir),
            "MEDIA_DIR": str(settings.resolved_media_dir),
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": str(settings.webhook_allow_private_networks).lower(),
            "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class WorkerProcess:
    """One `worker.py` at a time: start() waits until it serves its queues; kill() is SIGKILL, no goodbye."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        offset = log.tell()
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "worker.py")],
            cwd=PROJECT_ROOT,
            env=worker_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.log_tail(offset)}")
            if READY_LINE in self.log_tail(offset, chars=10**7):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the worker was not ready within {timeout:g} s:\n{self.log_tail(offset)}")

    def kill(self) -> None:
        """SIGKILL: in-flight activities get no chance to report; Temporal notices only through timeouts."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.kills += 1
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def log_tail(self, offset: int = 0, chars: int = 4000) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")[-chars:]
        return ""


@contextlib.contextmanager
def worker_process(settings: Settings, log_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings, log_path)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
