"""Offline personas and the topic plan: who the content is for, and what to write for each of them."""

from __future__ import annotations

from typing import Any

from models.generation import SAMPLE_MARKER
from providers.offline.sampling import WORDS, Sampler

PERSONA_TEMPLATES = [
    ("Strategic Sam", "Head of Marketing", "LinkedIn"),
    ("Operations Olivia", "Operations Manager", "industry newsletters"),
    ("Founder Felix", "Founder and CEO", "podcasts"),
    ("Technical Tara", "IT Lead", "technical blogs"),
    ("Budget-minded Ben", "Finance Director", "email"),
    ("Growth Grace", "Growth Marketer", "X"),
    ("Customer-first Carla", "Customer Success Lead", "webinars"),
    ("Procurement Paul", "Procurement Specialist", "trade publications"),
]


def sample_personas(s: Sampler) -> dict[str, Any]:
    """A PersonaSet: six of the templates, in a seeded order."""
    templates = s.random.sample(PERSONA_TEMPLATES, k=6)
    personas = []
    for name, role, channel in templates:
        personas.append(
            {
                "name": name,
                "role": role,
                "summary": f"{SAMPLE_MARKER} {name} is a {role.lower()} who evaluates {s.industry} offers "
                f"like those of {s.company}. {s.sentence(10)}",
                "goals": [s.sentence(6), s.sentence(6), s.sentence(6)],
                "pain_points": [s.sentence(6), s.sentence(6)],
                "channels": [channel, "company blog"],
                "content_preferences": ["how-to guides", "case studies"],
                "company_size": s.random.choice(["10-50 employees", "50-250 employees", "250+ employees"]),
            }
        )
    return {"personas": personas}


def sample_topics(s: Sampler) -> dict[str, Any]:
    """A TopicPlan: `topics_per_persona` topics (default 4) for each of `persona_names`, spread over four weeks."""
    names = [str(n) for n in s.context.get("persona_names") or []] or ["Sample Persona"]
    per_persona = max(1, int(s.context.get("topics_per_persona") or 4))
    topics = []
    for index, persona in enumerate(names):
        for n in range(per_persona):
            theme = s.random.choice(WORDS)
            topics.append(
                {
                    "title": f"Sample topic {n + 1} for {persona}: {theme.capitalize()} in {s.industry}"[:200],
                    "angle": f"{SAMPLE_MARKER} How {s.company} helps {persona} with {theme}.",
                    "keywords": s.keywords(4),
                    "persona_name": persona,
                    "persona_index": index,
                    "week": n % 4 + 1,
                }
            )
    return {"month": str(s.context.get("month") or "")[:7], "topics": topics[:60]}
