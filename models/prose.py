"""How blog prose is measured and checked, the same for what a model wrote and what a person edited: words of
prose (citation markers and Markdown symbols are not words) and citation markers `[n]` that must each name one
of the post's numbered sources."""

import re

CITATION = re.compile(r"\[(\d{1,3})\]")
# A marker with several numbers ("[1, 3]", "[2-4]"): one number per marker is the post's convention.
GROUPED_CITATION = re.compile(r"\[\d{1,3}(?:\s*[,;\u2013-]\s*\d{1,3})+\]")
WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


def count_words(markdown: str) -> int:
    """Words of prose: citation markers and Markdown symbols are not words."""
    return len(WORD.findall(CITATION.sub(" ", markdown)))


def citation_problems(markdown: str, source_count: int) -> list[str]:
    """Markers that name no source, or several at once; empty when every marker resolves."""
    problems = []
    bad = sorted({int(n) for n in CITATION.findall(markdown) if not 1 <= int(n) <= source_count})
    if bad:
        problems.append(
            f"citation markers {bad} point at no source (the post has {source_count}: [1] to [{source_count}])"
            if source_count
            else f"citation markers {bad} point at no source (the post has none)"
        )
    grouped = GROUPED_CITATION.findall(markdown)
    if grouped:
        problems.append(f"write one number per citation marker, e.g. [1][3] instead of {grouped[0]}")
    return problems
