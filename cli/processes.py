"""Owned child processes for the local stack: start in order, wait until ready, watch, and stop in reverse."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from rich.console import Console

POLL_SECONDS = 0.1


class StackError(RuntimeError):
    """The stack could not start or stopped unexpectedly; the message says what to do."""


class PortInUseError(StackError):
    def __init__(self, port: int, wanted_by: str) -> None:
        self.port = port
        super().__init__(
            f"port {port} on 127.0.0.1 (wanted by {wanted_by}) is already in use. "
            "Is another `make dev` / `content-pipeline dev` running? Stop it or choose other ports."
        )


class ChildExitedError(StackError):
    def __init__(self, name: str, returncode: int | None, log_path: Path | None, log_tail: str) -> None:
        self.name = name
        self.returncode = returncode
        self.log_path = log_path
        self.log_tail = log_tail
        where = f" (log: {log_path})" if log_path else ""
        how = f"with code {returncode}"
        if returncode is not None and returncode < 0:
            with contextlib.suppress(ValueError):
                how = f"killed by {signal.Signals(-returncode).name}"
        super().__init__(f"{name} exited unexpectedly {how}{where}")


class StopRequested(StackError):
    """A signal asked the stack to stop while it was still starting."""

    def __init__(self) -> None:
        super().__init__("stop requested while starting")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (TIME_WAIT leftovers of a stopped server do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_ports_free(ports: Sequence[int], timeout: float = 5.0) -> list[int]:
    """Waits until every port is free; returns the ones still taken after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        taken = [port for port in ports if not port_is_free(port)]
        if not taken or time.monotonic() > deadline:
            return taken
        time.sleep(POLL_SECONDS)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64_000))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


ReadyCheck = Callable[["ChildProcess"], bool]


class Component:
    """One piece of the stack. The supervisor calls start, then is_ready until it says yes, then stop."""

    # Declared, not defaulted: ChildProcess is a dataclass and would take class-level defaults as its own.
    name: str
    log_path: Path | None
    ports: Sequence[int]

    def start(self, env: Mapping[str, str]) -> None:
        raise NotImplementedError

    def is_ready(self) -> bool:
        return True

    def exit_code(self) -> int | None:
        """None while it is running (or when it is not a process we watch)."""
        return None

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        raise NotImplementedError


@dataclass(eq=False)
class ChildProcess(Component):
    """A child process in its own process group, logging stdout and stderr to one file."""

    name: str
    argv: Sequence[str]
    log_path: Path | None
    cwd: Path
    ready: ReadyCheck | None = None
    ports: Sequence[int] = ()
    stop_timeout: float = 10.0
    kill_timeout: float = 5.0
    announce_stop: bool = True
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)
    log_offset: int = field(default=0, init=False)
    # Set by a second Ctrl-C: stop waiting for a graceful exit and kill at once.
    hurry: threading.Event = field(default_factory=threading.Event, init=False)

    def start(self, env: Mapping[str, str]) -> None:
        assert self.log_path is not None
        self.hurry.clear()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            # Own session and process group: Ctrl-C in the terminal reaches only the supervisor, which
            # stops the children in order instead of all of them dying at once.
            self.popen = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def new_log_text(self) -> str:
        """What the process has logged since this start (the log file is shared across runs)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        # Only this run's lines: the log file is appended to across runs.
        return "\n".join(self.new_log_text().splitlines()[-lines:])

    def is_ready(self) -> bool:
        return self.ready(self) if self.ready is not None else True

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def stop(self) -> None:
        if self.popen is None:
            return
        pgid = self.popen.pid  # the leader of its own group (start_new_session)
        if self.popen.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while self.popen.poll() is None and time.monotonic() < deadline and not self.hurry.is_set():
                time.sleep(POLL_SECONDS / 2)
            if self.popen.poll() is None:
                _signal_group(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(self.kill_timeout)
        # Grandchildren the leader left behind go too.
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + self.kill_timeout
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)


@dataclass(eq=False)
class OneShotCommand(ChildProcess):
    """A step that must run to completion with exit code 0 before the next component starts (migrations)."""

    announce_stop: bool = False

    def is_ready(self) -> bool:
        code = None if self.popen is None else self.popen.poll()
        if code is None:
            return False
        if code != 0:
            raise ChildExitedError(self.name, code, self.log_path, self.log_tail())
        return True

    def exit_code(self) -> int | None:
        # Once finished it is not watched any more: exit 0 is its success, not a crash.
        code = super().exit_code()
        return None if code == 0 else code


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts for killpg; reap-free check via /proc where available.
    proc = Path("/proc")
    if not proc.exists():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Supervisor:
    """Starts components in order, each ready before the next; stops them in reverse; notices early deaths."""

    def __init__(
        self,
        components: Sequence[Component],
        *,
        env: Callable[[], Mapping[str, str]] | None = None,
        ready_timeout: float = 90.0,
        console: Console | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.components = list(components)
        self.state_file = state_file
        self._env = env or (lambda: dict(os.environ))
        self.ready_timeout = ready_timeout
        self.console = console or Console(stderr=True)
        self.started: list[Component] = []
        self._running: list[Component] = []  # started and not yet stopped, in start order
        self.stop_event = threading.Event()

    def check_ports(self) -> None:
        for component in self.components:
            for port in component.ports:
                if not port_is_free(port):
                    raise PortInUseError(port, component.name)

    def start(self) -> None:
        """Everything up and ready, or nothing left running and the reason raised."""
        self.started = []
        self.stop_event.clear()
        try:
            if self.state_file is not None:
                reap_leftovers(self.state_file, self.console)
            self.check_ports()
            for component in self.components:
                begun = time.monotonic()
                self.started.append(component)
                self._running.append(component)
                component.start(self._env())
                self._write_state()
                self._wait_ready(component)
                self.console.print(f"[green]✓[/] {component.name} ready ({time.monotonic() - begun:.1f} s)")
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, component: Component) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.stop_event.is_set():
                raise StopRequested()
            code = component.exit_code()
            if code is not None:
                raise ChildExitedError(component.name, code, component.log_path, component.log_tail())
            if component.is_ready():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{component.name} was not ready after {self.ready_timeout:.0f} s"
                    + (f"; see {component.log_path}:\n{component.log_tail()}" if component.log_path else "")
                )
            time.sleep(POLL_SECONDS)

    def _write_state(self) -> None:
        """Records who runs what, so that a later start can clean up after a supervisor that was killed."""
        if self.state_file is None:
            return
        children = [
            {"name": c.name, "pid": c.pid, "argv0": str(c.argv[0])}
            for c in self._running
            if isinstance(c, ChildProcess) and c.popen is not None and c.popen.poll() is None
        ]
        if children:
            self.state_file.write_text(json.dumps({"supervisor": os.getpid(), "children": children}))
        else:
            self.state_file.unlink(missing_ok=True)

    def hurry(self) -> None:
        """Skips the graceful part of stopping: whatever is still running is killed."""
        for component in self.components:
            if isinstance(component, ChildProcess):
                component.hurry.set()

    def dead_component(self) -> ChildExitedError | None:
        for component in self.started:
            code = component.exit_code()
            if code is not None:
                return ChildExitedError(component.name, code, component.log_path, component.log_tail())
        return None

    def check_alive(self) -> None:
        """Raises ChildExitedError if a started component has died (for callers using the context manager)."""
        dead = self.dead_component()
        if dead is not None:
            raise dead

    def wait(self) -> ChildExitedError | None:
        """Blocks until stop is requested (None) or a component dies (its error)."""
        while not self.stop_event.wait(0.25):
            dead = self.dead_component()
            if dead is not None:
                return dead
        return None

    def stop(self) -> None:
        """Stops whatever is running, in reverse order of start. Safe to call again, also after an
        interruption half-way: it carries on with what is left."""
        if not self._running:
            return
        ports = [port for component in self._running for port in component.ports]
        errors: list[BaseException] = []
        while self._running:
            component = self._running[-1]
            begun = time.monotonic()
            try:
                component.stop()
            except Exception as exc:  # keep stopping the rest; report at the end
                errors.append(exc)
                self.console.print(f"[red]✗[/] stopping {component.name} failed: {exc}")
            else:
                if getattr(component, "announce_stop", True):
                    self.console.print(f"[dim]■ {component.name} stopped ({time.monotonic() - begun:.1f} s)[/]")
            self._running.pop()
            self._write_state()
        taken = wait_ports_free(ports)
        if taken:
            self.console.print(f"[red]✗[/] ports still in use after stop: {', '.join(map(str, taken))}")
        if errors:
            raise StackError(f"stopping failed: {errors[0]}") from errors[0]

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def reap_leftovers(state_file: Path, console: Console, grace: float = 10.0) -> None:
    """Stops the children of an earlier supervisor that died without stopping them (SIGKILL, power cut).

    Raises StackError if that supervisor is still alive: two stacks must not share one data directory.
    """
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return
    supervisor = int(state.get("supervisor", 0))
    if supervisor and supervisor != os.getpid() and process_alive(supervisor):
        raise StackError(
            f"another dev stack (pid {supervisor}) is running on {state_file.parent}. "
            "Is another `make dev` running? Stop it first."
        )
    for child in reversed(state.get("children", [])):
        pid, name = int(child["pid"]), str(child["name"])
        if not process_alive(pid) or child["argv0"] not in _cmdline(pid):
            continue  # gone, or the pid now belongs to something else
        console.print(f"[yellow]! stopping {name} (pid {pid}) left running by a stack that did not stop cleanly[/]")
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if _group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
    state_file.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    if not Path("/proc").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def report_death(console: Console, dead: ChildExitedError) -> None:
    console.print(f"[red bold]✗ {dead}[/]")
    if dead.log_tail:
        console.print(f"[dim]last lines of {dead.log_path} (this run):[/]")
        console.print(dead.log_tail, markup=False, highlight=False)


def run_supervised(supervisor: Supervisor, on_ready: Callable[[], None] | None = None) -> int:
    """Starts, blocks until SIGINT/SIGTERM or a death, stops. 0 after a requested stop, 1 otherwise."""
    previous: dict[signal.Signals, Any] = {}
    in_main_thread = threading.current_thread() is threading.main_thread()

    def request_stop(signum: int, _frame: object) -> None:
        if supervisor.stop_event.is_set():
            supervisor.hurry()  # a second Ctrl-C: no more waiting for graceful shutdowns
        supervisor.stop_event.set()

    if in_main_thread:
        # SIGHUP too: closing the terminal must not orphan the children, which live in their own sessions.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, request_stop)
    try:
        try:
            supervisor.start()
        except StopRequested:
            supervisor.console.print("[yellow]stopped while starting[/]")
            return 0
        except ChildExitedError as early:
            report_death(supervisor.console, early)
            return 1
        except StackError as exc:
            supervisor.console.print(f"[red bold]✗ {exc}[/]")
            return 1
        if on_ready is not None:
            on_ready()
        dead = supervisor.wait()
        if dead is not None:
            report_death(supervisor.console, dead)
            supervisor.console.print("[yellow]stopping the rest of the stack[/]")
        else:
            supervisor.console.print("[yellow]stopping…[/]")
        try:
            supervisor.stop()
        except StackError as exc:
            supervisor.console.print(f"[red bold]✗ {exc}[/]")
            return 1
        return 0 if dead is None else 1
    finally:
        with contextlib.suppress(StackError):
            supervisor.stop()
        if in_main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
