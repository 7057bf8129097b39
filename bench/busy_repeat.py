"""A test, again and again, on a busy machine: one CPU burner per core (a plain Python busy loop) while pytest
runs the test --runs times in a row. Shows that the test does not depend on a quiet machine.

    .venv/bin/python bench/busy_repeat.py                 # the pipeline API test, 20 runs
    .venv/bin/python bench/busy_repeat.py --runs 2 --test tests/api/test_api_jobs.py

Stops at the first failure unless --keep-going; the burners are stopped whatever happens (failure, Ctrl-C,
SIGTERM). Each run's output goes to bench/results/busy-<time>/run-NN.log, the figures to stdout and
bench/results/ (git-ignored); the exit code is 1 when a run failed.
"""

import argparse
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
PYTEST = ROOT / ".venv" / "bin" / "pytest"
DEFAULT_TEST = "tests/api/test_pipeline_api.py::test_a_pipeline_from_research_to_published_posts_through_the_api"
BURN = "while True:\n    pass\n"


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the child's process group (it and whatever it started), SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group too
    proc.wait()


class Burners:
    """One busy-looping Python process per core, each in a session of its own."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> "Burners":
        atexit.register(self.stop)
        for _ in range(self.count):
            self.procs.append(subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True))
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            stop_group(proc, grace=0)
        self.procs.clear()


def run_once(test: str, log_path: Path, timeout: float) -> tuple[int, float]:
    """pytest in a session of its own (so that a timeout or Ctrl-C stops its servers as well); exit code, seconds."""
    begun = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(PYTEST), "-q", "-p", "no:cacheprovider", test],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.write(f"\n[busy_repeat] no result after {timeout:.0f} s: stopped\n".encode())
            code = -1
        finally:
            stop_group(proc, grace=15)  # a no-op after a normal exit, else pytest's teardown gets 15 s
    return code, time.monotonic() - begun


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: unwinds through the `with` blocks, which stop every child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--test", default=DEFAULT_TEST, help="a pytest node id (or file)")
    parser.add_argument(
        "--burners", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)"
    )
    parser.add_argument("--keep-going", action="store_true", help="run them all even after a failure")
    parser.add_argument("--run-timeout", type=float, default=900, help="a run with no result after this fails")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "bench" / "results"
    log_dir = out / f"busy-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, object]] = []
    begun = time.monotonic()
    interrupted = False
    print(
        f"{args.burners} CPU burner(s) on {os.cpu_count()} core(s); {args.runs} run(s) of {args.test}", file=sys.stderr
    )
    try:
        with Burners(args.burners):
            for number in range(1, args.runs + 1):
                log_path = log_dir / f"run-{number:02d}.log"
                code, seconds = run_once(args.test, log_path, args.run_timeout)
                passed = code == 0
                runs.append(
                    {
                        "run": number,
                        "passed": passed,
                        "exit_code": code,
                        "seconds": round(seconds, 1),
                        "load_1m": round(os.getloadavg()[0], 2),
                    }
                )
                print(
                    f"run {number}/{args.runs}: {'passed' if passed else f'FAILED ({code})'} in {seconds:.1f} s",
                    file=sys.stderr,
                )
                if not passed:
                    print(tail(log_path), file=sys.stderr)
                    if not args.keep_going:
                        break
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; burners and test stopped", file=sys.stderr)
    failures = sum(1 for r in runs if not r["passed"])
    durations = [float(str(r["seconds"])) for r in runs]
    result = {
        "test": args.test,
        "cpu_count": os.cpu_count(),
        "burners": args.burners,
        "runs_requested": args.runs,
        "runs": len(runs),
        "passes": len(runs) - failures,
        "failures": failures,
        "interrupted": interrupted,
        "seconds_min": min(durations, default=None),
        "seconds_max": max(durations, default=None),
        "seconds_total": round(time.monotonic() - begun, 1),
        "each_run": runs,
        "logs": str(log_dir),
    }
    text = json.dumps(result, indent=2)
    print(text)
    (out / f"busy_{stamp}.json").write_text(text)
    if failures or interrupted or len(runs) < args.runs:
        sys.exit(1)


if __name__ == "__main__":
    main()
