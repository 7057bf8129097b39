"""Prompt templates of the stages, one Markdown file each, rendered with string.Template ($name)."""

from functools import cache
from pathlib import Path
from string import Template

PROMPTS_DIR = Path(__file__).parent


@cache
def _template(name: str) -> Template:
    return Template((PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """Fills a prompt; a missing value is an error, not a silent `$name` left in the text."""
    return _template(name).substitute({key: "" if value is None else str(value) for key, value in values.items()})
