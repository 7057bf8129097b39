"""Seeded sample prose for the offline provider: words, sentences, paragraphs with citation markers, keywords."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

from models.generation import SAMPLE_MARKER

WORDS = (
    "customers teams growth strategy insight data platform workflow quality trust value market brand story "
    "audience results process planning measurable clear practical modern reliable simple proven goal impact "
    "experience research content campaign channel feedback adoption pipeline revenue retention onboarding "
    "automation analytics roadmap partnership community expertise solution challenge opportunity priority"
).split()


def slug(text: str, limit: int = 60) -> str:
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return value or "sample"


def meta_description(text: str) -> str:
    return text if len(text) <= 160 else text[:157].rstrip() + "..."


class Sampler:
    """Seeded sample text for one call."""

    def __init__(self, seed: str, context: dict[str, Any]) -> None:
        self.random = random.Random(hashlib.sha256(seed.encode()).hexdigest())
        self.context = context
        self.company = str(context.get("company_name") or "Sample Company")
        self.industry = str(context.get("industry") or "its industry")
        website = str(context.get("website") or "")
        self.site_slug = slug(re.sub(r"^https?://", "", website) or self.company, 40)

    @classmethod
    def for_call(cls, prompt: str, context: dict[str, Any]) -> Sampler:
        """The sampler of one call: seeded by its prompt and its context, so the same call gives the same text."""
        return cls(prompt + json.dumps(context, sort_keys=True, default=str), context)

    def sentence(self, words: int = 12) -> str:
        chosen = [self.random.choice(WORDS) for _ in range(max(3, words))]
        return " ".join(chosen).capitalize() + "."

    def words(self, count: int, cite: int = 0) -> str:
        """About `count` words of sample prose in paragraphs; with `cite` > 0, [n] markers up to cite."""
        out: list[str] = []
        paragraph: list[str] = []
        total = 0
        while total < count:
            length = min(self.random.randint(9, 16), count - total)
            if length < 3 and out:
                break
            sentence = self.sentence(length)
            if cite and self.random.random() < 0.35:
                sentence = sentence[:-1] + f" [{self.random.randint(1, cite)}]."
            paragraph.append(sentence)
            total += max(3, length)
            if len(paragraph) >= 5:
                out.append(" ".join(paragraph))
                paragraph = []
        if paragraph:
            out.append(" ".join(paragraph))
        return "\n\n".join(out)

    def keywords(self, count: int) -> list[str]:
        base = [self.industry.lower(), self.company.lower(), *self.random.sample(WORDS, k=count)]
        return list(dict.fromkeys(word[:60] for word in base if word))[:count]


def sample_text(prompt: str, context: dict[str, Any]) -> str:
    """Free text (no schema): a marked title and about `words` (or `target_words`, default 250) words."""
    sampler = Sampler.for_call(prompt, context)
    words = int(context.get("words") or context.get("target_words") or 250)
    title = str(context.get("topic_title") or f"Notes for {sampler.company}")
    return f"{SAMPLE_MARKER}\n\n# {title}\n\n{sampler.words(words)}"
