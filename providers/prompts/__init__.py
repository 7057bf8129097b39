"""The gateway's own prompt texts (research instructions, the repair request), kept as reviewable files."""

from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@lru_cache
def load_prompt(name: str) -> str:
    """The text of `<name>.md` next to this module, without a trailing newline."""
    return (_HERE / f"{name}.md").read_text(encoding="utf-8").rstrip("\n")
