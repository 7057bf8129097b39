"""Offline blog posts: an outline sized to the target length, then each section's marked sample prose."""

from __future__ import annotations

from typing import Any

from models.generation import SAMPLE_MARKER
from providers.offline.sampling import Sampler, meta_description, slug

SECTION_HEADINGS = [
    "Why this matters now",
    "The common mistakes",
    "A practical framework",
    "Step by step",
    "What good looks like",
    "Measuring results",
    "Tools and resources",
    "Case example",
    "Objections and answers",
    "Getting started",
    "Advanced tips",
    "Summary and next steps",
]


def sample_outline(s: Sampler) -> dict[str, Any]:
    """A BlogOutline: 4 to 12 sections of about 450 words that add up to `target_words` (default 2500)."""
    title = str(s.context.get("topic_title") or f"A sample guide to {s.industry}")[:200]
    if len(title) < 12:
        title = f"{title}: a sample guide for {s.company}"[:200]
    target = int(s.context.get("target_words") or 2500)
    count = min(12, max(4, round(target / 450)))
    per_section = min(2000, max(100, target // count))
    return {
        "title": title,
        "meta_description": meta_description(f"Sample post for {s.company}: {title}"),
        "slug": slug(title, 80),
        "keywords": s.keywords(5),
        "sections": [
            {"heading": SECTION_HEADINGS[i], "key_points": [s.sentence(6), s.sentence(6)], "target_words": per_section}
            for i in range(count)
        ],
    }


def sample_section(s: Sampler) -> dict[str, Any]:
    """A BlogSection: `words` words under `section_heading`, citing up to `source_count` sources."""
    words = int(s.context.get("words") or s.context.get("target_words") or 400)
    cite = int(s.context.get("source_count") or 0)
    heading = str(s.context.get("section_heading") or "Sample section")[:200]
    body = f"{SAMPLE_MARKER}\n\n{s.words(max(20, words - 8), cite=cite)}"
    return {"heading": heading if len(heading) >= 3 else "Sample section", "body_markdown": body}
