"""The local stack: the supervisor with stand-in children, the embedded PostgreSQL's lifetime, and the real
DevStack end to end (embedded PostgreSQL, Temporal dev server + Web UI, migrations, worker, API)."""

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from rich.console import Console

from cli.processes import (
    ChildExitedError,
    ChildProcess,
    PortInUseError,
    StackError,
    Supervisor,
    port_is_free,
    reap_leftovers,
    run_supervised,
)
from cli.stack import SEARCH_ATTRIBUTES, DevStack, EmbeddedPostgres, redact_url, resolve_database_url
from models.settings import PROJECT_ROOT, Settings

PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def quiet_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=False), out


# --- the supervisor with stand-in children -------------------------------------------------------------

SUPERVISED_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rich.console import Console
    from cli.processes import ChildProcess, Supervisor, http_ok, run_supervised

    logs, port, pids_file, state_file = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    py = sys.executable
    http = ChildProcess(
        name="http", argv=[py, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path=logs / "http.log", cwd=logs, ports=(port,),
        ready=lambda _: http_ok(f"http://127.0.0.1:{port}/"),
    )
    # Leaves a grandchild in its process group: stopping must take the whole group.
    parent = ChildProcess(
        name="parent",
        argv=[py, "-c", "import subprocess, sys, time; "
              "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
              "print('grandchild', g.pid, flush=True); print('parent up', flush=True); time.sleep(600)"],
        log_path=logs / "parent.log", cwd=logs,
        ready=lambda child: "parent up" in child.new_log_text(),
    )
    # Ignores SIGTERM: stopping must escalate to SIGKILL.
    stubborn = ChildProcess(
        name="stubborn",
        argv=[py, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print('stubborn up', flush=True); time.sleep(600)"],
        log_path=logs / "stubborn.log", cwd=logs, stop_timeout=1.0,
        ready=lambda child: "stubborn up" in child.new_log_text(),
    )
    supervisor = Supervisor(
        [http, parent, stubborn], ready_timeout=20, console=Console(width=200), state_file=state_file
    )

    def ready() -> None:
        grandchild = parent.new_log_text().split("grandchild ", 1)[1].split()[0]
        pids = [http.pid, parent.pid, stubborn.pid, int(grandchild)]
        pids_file.write_text(" ".join(map(str, pids)))
        print("ALL READY", flush=True)

    sys.exit(run_supervised(supervisor, on_ready=ready))
    """
)


def start_supervised(tmp_path: Path) -> tuple[subprocess.Popen[str], int, list[int], list[str]]:
    """The stand-in stack in a process of its own: (process, its HTTP port, every child pid, its output)."""
    script = tmp_path / "supervised.py"
    script.write_text(SUPERVISED_SCRIPT)
    port, pids_file = free_port(), tmp_path / "pids"
    proc = subprocess.Popen(
        [PY, str(script), str(tmp_path), str(port), str(pids_file), str(tmp_path / "stack.json")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "ALL READY" in line:
            break
    assert "ALL READY" in "".join(lines), "".join(lines)
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert all(alive(pid) for pid in pids)
    assert not port_is_free(port)
    return proc, port, pids, lines


def test_sigterm_stops_every_child_and_frees_every_port(tmp_path: Path) -> None:
    proc, port, pids, lines = start_supervised(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, "".join(lines) + output
        assert wait_gone(pids) == [], "children survived the stack"
        assert port_is_free(port)
        # Reverse order of start.
        assert output.index("stubborn stopped") < output.index("parent stopped") < output.index("http stopped")
        assert not (tmp_path / "stack.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_next_start_cleans_up_after_a_killed_supervisor(tmp_path: Path) -> None:
    proc, port, pids, _ = start_supervised(tmp_path)
    state_file = tmp_path / "stack.json"
    console, out = quiet_console()
    try:
        with pytest.raises(StackError, match=f"another dev stack \\(pid {proc.pid}\\)"):
            reap_leftovers(state_file, console)
        proc.kill()  # no chance to stop its children
        proc.wait()
        assert all(alive(pid) for pid in pids), "the children outlive a killed supervisor"
        reap_leftovers(state_file, console, grace=1.0)
        assert wait_gone(pids) == []
        assert port_is_free(port)
        assert not state_file.exists()
        assert "left running by a stack that did not stop cleanly" in out.getvalue()
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def http_child(tmp_path: Path, port: int) -> ChildProcess:
    """A stand-in service: ready once its port listens."""
    return ChildProcess(
        name="http",
        argv=[PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path=tmp_path / "http.log",
        cwd=tmp_path,
        ports=(port,),
        ready=lambda _: not port_is_free(port),
    )


def test_a_child_dying_stops_the_stack_with_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    http = http_child(tmp_path, port)
    doomed = ChildProcess(
        name="doomed",
        argv=[
            PY,
            "-c",
            "import time; print('about to fail: no such table', flush=True); time.sleep(0.5); raise SystemExit(3)",
        ],
        log_path=tmp_path / "doomed.log",
        cwd=tmp_path,
    )
    console, out = quiet_console()
    code = run_supervised(Supervisor([http, doomed], ready_timeout=20, console=console))
    text = out.getvalue()
    assert code == 1
    assert "doomed exited unexpectedly with code 3" in text
    assert str(tmp_path / "doomed.log") in text
    assert "about to fail: no such table" in text  # the tail of its log
    assert "http stopped" in text
    assert http.pid is not None and wait_gone([http.pid]) == []
    assert port_is_free(port)


def test_a_child_dying_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    port = free_port()
    http = http_child(tmp_path, port)
    broken = ChildProcess(
        name="broken",
        argv=[PY, "-c", "raise SystemExit('cannot connect to the database')"],
        log_path=tmp_path / "broken.log",
        cwd=tmp_path,
        ready=lambda _: False,
    )
    console, _ = quiet_console()
    with pytest.raises(ChildExitedError) as failure:
        Supervisor([http, broken], ready_timeout=20, console=console).start()
    assert failure.value.name == "broken"
    assert failure.value.returncode == 1
    assert "cannot connect to the database" in failure.value.log_tail
    assert http.pid is not None and wait_gone([http.pid]) == []
    assert port_is_free(port)


def test_a_taken_port_fails_fast_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        first = ChildProcess(
            name="first", argv=[PY, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "f.log", cwd=tmp_path
        )
        second = ChildProcess(
            name="API", argv=[PY, "-c", "pass"], log_path=tmp_path / "a.log", cwd=tmp_path, ports=(port,)
        )
        console, _ = quiet_console()
        begun = time.monotonic()
        with pytest.raises(PortInUseError) as failure:
            Supervisor([first, second], console=console).start()
    assert time.monotonic() - begun < 2
    assert str(port) in str(failure.value) and "API" in str(failure.value)
    assert "make dev" in str(failure.value)
    assert first.popen is None, "nothing starts when a port is taken"


def test_dev_stack_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        console, _ = quiet_console()
        stack = DevStack(
            Settings(_env_file=None),  # type: ignore[call-arg]
            data_dir=tmp_path / "data",
            temporal_port=free_port(),
            ui_port=free_port(),
            api_port=port,
            console=console,
        )
        with pytest.raises(PortInUseError, match=str(port)):
            stack.start()
    assert not (tmp_path / "data" / "pg").exists(), "PostgreSQL must not start when a port is taken"


def test_database_url_from_the_environment_wins(tmp_path: Path) -> None:
    url = "postgresql://app:secret@db.example.com:5432/content"
    settings = Settings(_env_file=None, database_url=url, data_dir=tmp_path)  # type: ignore[call-arg]
    assert resolve_database_url(settings) == url
    assert not (tmp_path / "pg").exists()
    assert redact_url(url) == "postgresql://app:***@db.example.com:5432/content"


# --- the embedded PostgreSQL's lifetime ----------------------------------------------------------------


def postmaster_pid(pg_dir: Path) -> int:
    return int((pg_dir / "postmaster.pid").read_text().split()[0])


def test_one_off_commands_leave_a_running_server_running(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    url, started = pg.acquire(stop_when_idle=True)  # like the dev stack
    assert started
    server_pid = postmaster_pid(pg.pg_dir)
    try:
        # A one-off command in another process finds the server, uses it and leaves it running.
        one_off = textwrap.dedent(
            f"""
            import psycopg
            from pathlib import Path
            from cli.stack import resolve_database_url
            from models.settings import Settings
            url = resolve_database_url(Settings(_env_file=None, data_dir=Path({str(tmp_path)!r})))
            with psycopg.connect(url) as conn:
                print(conn.execute("select 40 + 2").fetchone()[0])
            """
        )
        done = subprocess.run([PY, "-c", one_off], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "42"
        assert alive(server_pid)
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        assert pg.release() is True
    assert wait_gone([server_pid]) == []
    assert pg.running_url() is None


def test_a_one_off_command_stops_the_server_it_started(tmp_path: Path) -> None:
    one_off = textwrap.dedent(
        f"""
        import psycopg
        from pathlib import Path
        from cli.stack import resolve_database_url
        from models.settings import Settings
        url = resolve_database_url(Settings(_env_file=None, data_dir=Path({str(tmp_path)!r})))
        with psycopg.connect(url) as conn:
            conn.execute("create table if not exists kept (v int)")
            conn.execute("insert into kept values (7)")
        print(open(Path({str(tmp_path)!r}) / "pg" / "postmaster.pid").read().split()[0])
        """
    )
    done = subprocess.run([PY, "-c", one_off], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert wait_gone([int(done.stdout.split()[-1])]) == [], "the server it started must stop at exit"
    pg = EmbeddedPostgres(tmp_path / "pg")
    assert pg.running_url() is None
    url, started = pg.acquire()
    try:
        assert started
        with psycopg.connect(url) as conn:
            assert conn.execute("select v from kept").fetchall() == [(7,)]
    finally:
        assert pg.release() is True


# --- the real stack, end to end ------------------------------------------------------------------------

LEAD_FILES = [PROJECT_ROOT / "api" / "main.py", PROJECT_ROOT / "worker.py"]


def child_pids(stack: DevStack) -> list[int]:
    pids = [c.pid for c in stack.supervisor.started if isinstance(c, ChildProcess) and c.pid and c.name != "migrations"]
    pids.append(postmaster_pid(stack.data_dir / "pg"))
    return [pid for pid in pids if pid]


async def search_attribute_names(address: str, namespace: str) -> set[str]:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    return {name for name, kind in listed.custom_attributes.items() if kind == 2}  # 2: INDEXED_VALUE_TYPE_KEYWORD


async def start_parked_workflow(address: str, namespace: str, workflow_id: str) -> None:
    """A workflow nobody polls for: it stays Running, so it must still be there after a restart."""
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    await client.start_workflow("ParkedForRestartCheck", id=workflow_id, task_queue=f"tq-{uuid.uuid4()}")


async def workflow_status(address: str, namespace: str, workflow_id: str) -> str:
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    description = await client.get_workflow_handle(workflow_id).describe()
    return str(description.status.name if description.status else "")


@pytest.mark.e2e
@pytest.mark.skipif(
    not all(path.exists() for path in LEAD_FILES),
    reason="needs api/main.py and worker.py, which are not written yet",
)
def test_dev_stack_starts_stops_clean_and_keeps_its_data(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ai_provider="offline",
        worker_graceful_shutdown_seconds=5,
    )
    temporal_port, ui_port, api_port = free_port(), free_port(), free_port()
    ports = {"temporal_port": temporal_port, "ui_port": ui_port, "api_port": api_port}

    def dev_stack() -> DevStack:
        return DevStack(
            settings,
            data_dir=data_dir,
            console=console,
            temporal_port=temporal_port,
            ui_port=ui_port,
            api_port=api_port,
        )

    data_dir = tmp_path / "data"
    workflow_id = f"restart-check-{uuid.uuid4()}"
    console, out = quiet_console()

    begun = time.monotonic()
    with dev_stack() as stack:
        cold_start = time.monotonic() - begun
        assert stack.api_url == f"http://127.0.0.1:{ports['api_port']}"
        assert stack.temporal_address == f"127.0.0.1:{ports['temporal_port']}"
        for url in (f"{stack.api_url}/healthz", f"{stack.api_url}/readyz", f"{stack.ui_url}/"):
            assert httpx.get(url, timeout=10).status_code == 200, url
        assert stack.database_url.startswith("postgresql://")
        assert set(SEARCH_ATTRIBUTES) <= asyncio.run(search_attribute_names(stack.temporal_address, stack.namespace))

        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(
                "insert into tenant (id, name, tier, created_at) values (%s, 'survives restarts', 'free', now())",
                (uuid.uuid4(),),
            )
        asyncio.run(start_parked_workflow(stack.temporal_address, stack.namespace, workflow_id))
        pids = child_pids(stack)
        assert len(pids) == 4  # PostgreSQL, Temporal, worker, API
        stack.check_alive()
        begun = time.monotonic()
    stop_time = time.monotonic() - begun

    assert wait_gone(pids) == [], f"left running: {[p for p in pids if alive(p)]}"
    assert all(port_is_free(port) for port in ports.values())
    assert (data_dir / "logs" / "temporal.log").exists() and (data_dir / "logs" / "api.log").exists()
    assert "worker ready" in (data_dir / "logs" / "worker.log").read_text()

    begun = time.monotonic()
    with dev_stack() as stack:
        warm_start = time.monotonic() - begun
        with psycopg.connect(stack.database_url) as conn:
            rows = conn.execute("select count(*) from tenant where name = 'survives restarts'").fetchone()
        assert rows == (1,)
        assert asyncio.run(workflow_status(stack.temporal_address, stack.namespace, workflow_id)) == "RUNNING"
        pids = child_pids(stack)
    assert wait_gone(pids) == []
    assert all(port_is_free(port) for port in ports.values())
    print(f"cold start {cold_start:.1f} s, stop {stop_time:.1f} s, warm start {warm_start:.1f} s\n{out.getvalue()}")


def test_dev_stack_with_database_url_runs_no_embedded_server_and_passes_the_env(tmp_path: Path) -> None:
    url = "postgresql://app:secret@db.example.com:5432/content"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        temporal_address="127.0.0.1:17233",
        temporal_ui_url="http://127.0.0.1:18233",
        api_port=18000,
        temporal_namespace="content",
        ai_provider="offline",
    )
    stack = DevStack(settings, data_dir=tmp_path)
    names = [component.name for component in stack.supervisor.components]
    assert names == ["Temporal dev server", "migrations", "worker", "API"]
    assert (stack.temporal_port, stack.ui_port, stack.api_port) == (17233, 18233, 18000)
    env = stack.child_env()
    assert env["DATABASE_URL"] == url
    assert env["TEMPORAL_ADDRESS"] == "127.0.0.1:17233"
    assert env["TEMPORAL_NAMESPACE"] == "content"
    assert env["TEMPORAL_UI_URL"] == "http://127.0.0.1:18233"
    assert env["API_PORT"] == "18000"
    assert env["DATA_DIR"] == str(tmp_path.resolve())
    assert env["AI_PROVIDER"] == "offline", "settings given in code reach the children"
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:18000"
    argv = stack.temporal.argv
    assert argv[argv.index("--db-filename") + 1] == str(tmp_path.resolve() / "temporal.db")
    assert argv[argv.index("--namespace") + 1] == "content"
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--search-attribute"] == [
        f"{name}={kind}" for name, kind in SEARCH_ATTRIBUTES.items()
    ]
    assert stack.worker.stop_timeout == settings.worker_graceful_shutdown_seconds + 5


def test_a_second_signal_skips_the_graceful_wait(tmp_path: Path) -> None:
    stubborn = ChildProcess(
        name="stubborn",
        argv=[
            PY,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('up', flush=True); time.sleep(600)",
        ],
        log_path=tmp_path / "stubborn.log",
        cwd=tmp_path,
        stop_timeout=60.0,
        ready=lambda child: "up" in child.new_log_text(),
    )
    console, _ = quiet_console()
    supervisor = Supervisor([stubborn], console=console)
    supervisor.start()
    threading.Timer(0.5, supervisor.hurry).start()
    begun = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - begun < 5
    assert stubborn.pid is not None and wait_gone([stubborn.pid]) == []
