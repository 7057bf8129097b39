"""How the studio renders: the Jinja2 templates (autoescaped), model-written Markdown made safe, and diffs.

Model output is untrusted input. Markdown is rendered with raw HTML off (a `<script>` in a post is shown as text)
and markdown-it's link check on (no `javascript:` or `data:` links); citation markers `[n]` that name one of the
post's sources become links to the numbered source list.
"""

import difflib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from models.pipeline import PAGE_WORDS
from models.prose import CITATION
from models.tables import Company

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def zone_of(company: Company | None) -> ZoneInfo:
    """The company's time zone; UTC when it has none the system knows."""
    try:
        return ZoneInfo(company.timezone) if company is not None and company.timezone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _when(value: datetime | None, zone: str | ZoneInfo = "UTC") -> str:
    if value is None:
        return ""
    return aware(value).astimezone(zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


TEMPLATES.env.filters["when"] = _when


_LEADING_TITLE = re.compile(r"\A\s*# [^\n]*\n+")
# The closing source list the blog stage writes: a "## Sources" heading and list items to the end, nothing else
# (a person's text after it keeps the section on the page).
_SOURCES_SECTION = re.compile(r"\n## Sources\n(?:[ \t]*(?:\d+[.)]|[-*+])[ \t][^\n]*\n?|[ \t]*\n)*\Z")


def post_body(markdown: str) -> str:
    """The post's Markdown without what its page shows itself: the leading `# title` (the page's h1) and the
    closing `## Sources` list (the page's numbered list, which the citation markers link to)."""
    return _SOURCES_SECTION.sub("\n", _LEADING_TITLE.sub("", markdown, count=1))


def markdown_html(markdown: str, citation_numbers: set[int]) -> Markup:
    """A blog post as safe HTML: no raw HTML, no script links, its citation markers linked to its sources."""
    html = _MARKDOWN.render(markdown)

    def cite(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number not in citation_numbers:
            return match.group(0)
        return f'<sup><a href="#source-{number}" class="citation">[{number}]</a></sup>'

    # A code block scrolls sideways: focusable, so that a keyboard can scroll it too.
    html = html.replace("<pre>", '<pre tabindex="0">')
    # Markers only in text: the rendered HTML has no raw HTML of the model's, and hrefs are percent-encoded.
    return Markup(CITATION.sub(cite, html))


def pages_of(words: int) -> float:
    return round(words / PAGE_WORDS, 1)


def diff_lines(before: str, after: str) -> list[dict[str, Any]]:
    """A line diff of two revisions' Markdown, for a `<pre>`: each line with its kind (added, removed, same,
    hunk)."""
    lines = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "added", "-": "removed", "@": "hunk"}.get(line[:1], "same")
        lines.append({"kind": kind, "text": line})
    return lines
