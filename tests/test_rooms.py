"""The rooms of ARCHITECTURE.md hold: import-linter's contracts (pyproject.toml) pass on the code as it is, and
break when a room imports what it must not (checked on a copy of the code with one forbidden import added)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "providers", "publishers", "activities", "workflows", "api", "cli")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(where / "pyproject.toml")],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_code_keeps_every_contract(tmp_path: Path) -> None:
    checked = lint_imports(copy_of_the_code(tmp_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("api/routes/health.py", "import providers.router", "the API never loads the AI gateway"),
        ("api/deps.py", "import openai", "the API never loads the AI gateway"),
        ("workflows/gates.py", "from models import db", "workflows are deterministic"),
        ("models/enums.py", "import activities", "models imports nothing of ours but itself"),
        ("providers/base.py", "import publishers", "providers (the AI gateway) imports only models"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, forbidden: str, contract: str) -> None:
    code = copy_of_the_code(tmp_path)
    target = code / module
    target.write_text(target.read_text() + f"\n{forbidden}  # the violation under test\n")
    checked = lint_imports(code)
    assert checked.returncode != 0, checked.stdout
    broken = [line for line in checked.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken) or contract in checked.stdout.split("Broken contracts")[-1], (
        checked.stdout
    )
