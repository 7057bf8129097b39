"""The dev stack runs as many API processes as API_PROCESSES says, one per core when it is 0."""

import os
from pathlib import Path

import pytest

from cli.stack import DevStack
from models.settings import Settings


def api_workers(tmp_path: Path, processes: int) -> str | None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:1/none", api_processes=processes, _env_file=None)  # type: ignore[call-arg]
    argv = DevStack(settings, data_dir=tmp_path).api.argv
    return argv[argv.index("--workers") + 1] if "--workers" in argv else None


@pytest.mark.parametrize(("processes", "workers"), [(1, None), (3, "3")])
def test_api_processes_as_set(tmp_path: Path, processes: int, workers: str | None) -> None:
    assert api_workers(tmp_path, processes) == workers


def test_one_api_process_per_core_by_default(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert api_workers(tmp_path, 0) == (str(cores) if cores > 1 else None)
