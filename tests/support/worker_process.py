"""`worker.py` as a real OS process beside an in-process API: it can be killed with SIGKILL mid-stage and
started again, as a crash, an OOM kill or a lost machine would do it. For crash tests and the crash bench.

Each start writes a log file of its own (`<log_dir>/worker-NN.log`), so that what one worker did on starting
(e.g. failing the attempts its killed predecessor left in the ledger) can be read per start. The methods block;
async callers run them with `asyncio.to_thread`."""

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cli.stack import WORKER_READY_LINE, settings_as_env
from models.settings import PROJECT_ROOT, Settings

# What worker.py logs for each attempt of a dead worker that it fails at start (activities/ledger.py).
LOST_ATTEMPT_LINE = "left by a lost worker: it runs again now"


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: every setting as `settings` has it (the same database, Temporal, queues,
    provider, data and media dirs...), not only those set explicitly, so that the `.env` file the worker would
    read cannot change any of them; DATABASE_URL and MEDIA_DIR resolved as this process resolves them."""
    pinned = {name: getattr(settings, name) for name in Settings.model_fields}
    pinned.update(database_url=settings.resolved_database_url(), media_dir=settings.resolved_media_dir)
    return {**os.environ, **settings_as_env(settings.model_copy(update=pinned)), "PYTHONUNBUFFERED": "1"}


def lost_attempts_failed(log_path: Path) -> int:
    """How many attempts of a lost worker the worker logging to `log_path` failed when it started."""
    with contextlib.suppress(OSError):
        return log_path.read_text(errors="replace").count(LOST_ATTEMPT_LINE)
    return 0


class WorkerProcess:
    """One `worker.py` at a time, in a session (and process group) of its own, so that it and any ffmpeg it runs
    die together, and Ctrl-C on the terminal reaches only the caller. spawn() returns at once, wait_ready() until
    it serves its queues, start() does both; kill() is SIGKILL, no goodbye; stop() lets it drain first.
    `settings` may be replaced between starts (the next start uses it). No worker outlives the calling process."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.logs: list[Path] = []  # one per start, in order
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        atexit.register(self._end)

    @property
    def starts(self) -> int:
        return len(self.logs)

    @property
    def log_path(self) -> Path:
        """The current (last) start's log."""
        return self.logs[-1] if self.logs else self.log_dir / "worker-00.log"

    def spawn(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.logs.append(self.log_dir / f"worker-{len(self.logs) + 1:02d}.log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "worker.py")],
                cwd=PROJECT_ROOT,
                env=worker_env(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until this start's worker logged that it serves its queues; raises if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while WORKER_READY_LINE not in self.log_text():
            if not self.alive():
                raise RuntimeError(f"the worker exited before it was ready; {self.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the worker was not ready within {timeout:g} s; {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def died(self) -> int | None:
        """The exit code of a worker that exited on its own (neither kill() nor stop() ended it), else None."""
        return self.process.returncode if self.process is not None and not self.alive() else None

    def kill(self) -> None:
        """SIGKILL to the process group: in-flight activities get no chance to report; the next worker started
        on this machine fails them from its ledger, else Temporal notices through the heartbeat timeout."""
        if self.alive():
            self.kills += 1
        self._end()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM: the worker drains its in-flight activities and exits; SIGKILL if that takes over `grace` s."""
        if self.process is not None and self.alive():
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        self._end()

    def _end(self) -> None:
        """SIGKILL to whatever is left of the process group (of a worker that died on its own too), reaped."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def log_text(self) -> str:
        """The current start's log."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def lost_attempts_failed(self) -> list[int]:
        """Per start, how many attempts of a lost worker it failed when it started."""
        return [lost_attempts_failed(log) for log in self.logs]


@contextlib.contextmanager
def worker_process(settings: Settings, log_dir: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings, log_dir)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
