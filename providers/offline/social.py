"""Offline social posts: one marked post per platform within the platform's length limit, with link and hashtags."""

from __future__ import annotations

from typing import Any

from models.enums import Platform
from models.generation import PLATFORM_LIMITS, SAMPLE_MARKER
from providers.offline.sampling import Sampler, slug


def sample_social(s: Sampler) -> dict[str, Any]:
    """A SocialPostDraft for `platform` (default LinkedIn): title, filler sentences, the `url` and three hashtags."""
    platform = Platform(str(s.context.get("platform") or Platform.LINKEDIN.value))
    limit = PLATFORM_LIMITS[platform]
    tags = [slug(word, 20).replace("-", "") for word in s.keywords(3)][:3]
    tag_text = " ".join(f"#{tag}" for tag in tags)
    title = str(s.context.get("topic_title") or s.context.get("blog_title") or f"news from {s.company}")
    link = str(s.context.get("url") or "")
    budget = min(limit.max_chars, 1200) - len(tag_text) - len(link) - 4
    room = max(0, budget - len(SAMPLE_MARKER) - 2)
    short_title = title if len(title) <= room else title[: max(0, room - 3)].rstrip() + "..."
    body = f"{SAMPLE_MARKER} {short_title}." if room > 10 else SAMPLE_MARKER
    while True:
        sentence = s.sentence(10)
        if len(body) + len(sentence) + 1 > budget:
            break
        body = f"{body} {sentence}"
    text = "\n\n".join(part for part in (body, link, tag_text) if part)[: limit.max_chars]
    return {
        "platform": platform.value,
        "text": text,
        "hashtags": tags,
        "image_prompt": f"Sample illustration for {title}"[:1000],
    }
