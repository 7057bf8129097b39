"""Offline research and company DNA: sample sources, research notes citing them, and a sample DNA profile."""

from __future__ import annotations

from typing import Any

from models.generation import SAMPLE_MARKER, ResearchResult, Source
from providers.offline.sampling import Sampler, slug

SAMPLE_SOURCE_TITLE = "Sample source (offline provider)"

# Each data point of the sample DNA: name, category, and a value template filled from the company's
# own fields and seeded choices, so that sample output reads like a profile (marked "(sample)").
DNA_POINTS: list[tuple[str, str, str]] = [
    ("Company name", "company", "{company}"),
    ("Website", "company", "{website}"),
    ("Industry", "company", "{industry}"),
    ("Founded", "company", "{year}"),
    ("Headquarters", "company", "{country}; city not researched"),
    ("Company size", "company", "{size}"),
    ("Legal form", "company", "privately held limited company"),
    ("Founders", "company", "two co-founders with a background in {industry}"),
    ("Mission", "brand", "to make {industry} simpler and more dependable for its customers"),
    ("Vision", "brand", "to be the most recommended name in {industry} in {country}"),
    ("Core values", "brand", "{values}"),
    ("Brand voice", "brand", "{voice}"),
    ("Tagline", "brand", '"{tagline}"'),
    ("Brand colors", "brand", "{colors}"),
    ("Brand personality", "brand", "{personality}"),
    ("Key messages", "brand", "quality you can check, honest pricing, people who answer"),
    ("Main products", "product", "a core {industry} offer plus subscriptions and services around it"),
    ("Flagship product", "product", "the {company} signature offer"),
    ("Pricing model", "product", "{pricing}"),
    ("Unique selling proposition", "product", "{usp}"),
    ("Key features", "product", "fast delivery, transparent sourcing, personal support"),
    ("Integrations", "product", "online shop, newsletter platform and the usual payment providers"),
    ("Service regions", "market", "{country} first, then neighbouring markets"),
    ("Target market", "market", "{market}"),
    ("Main competitors", "market", "two national chains and several independent {industry} brands"),
    ("Market position", "market", "{position}"),
    ("Market trends", "market", "buyers compare online first, expect sustainability proof and subscriptions"),
    ("Differentiators", "market", "{usp}; a visible founder story"),
    ("Primary audience", "audience", "{audience}"),
    ("Secondary audience", "audience", "businesses buying {industry} for teams and clients"),
    ("Customer pain points", "audience", "inconsistent quality elsewhere, little transparency, slow support"),
    ("Customer goals", "audience", "a dependable supplier they can recommend without worry"),
    ("Typical buyer role", "audience", "{buyer}"),
    ("Customer testimonials", "audience", "reviews praise consistency and friendly service"),
    ("Content themes", "content", "how-to guides, behind the scenes, customer stories, seasonal news"),
    ("Active social channels", "content", "{channels}"),
    ("Publishing cadence", "content", "{cadence}"),
    ("Notable clients", "company", "local businesses and a few regional offices"),
    ("Awards and certifications", "company", "{award}"),
    ("Recent news", "company", "{news}"),
]

DNA_CHOICES: dict[str, list[str]] = {
    "size": ["5-10 employees", "11-50 employees", "51-200 employees"],
    "values": ["craft, honesty, community", "quality, transparency, care", "curiosity, reliability, respect"],
    "voice": ["warm and knowledgeable, never pushy", "confident, plain-spoken and practical", "friendly expert"],
    "tagline": ["Made with care, every time", "Better, the honest way", "Quality you can taste and trust"],
    "colors": ["deep green and cream", "navy and warm orange", "charcoal and gold"],
    "personality": ["the friendly expert next door", "a meticulous craftsperson", "an approachable specialist"],
    "pricing": [
        "premium one-off prices plus a monthly subscription",
        "tiered packages",
        "pay per order with volume discounts",
    ],
    "usp": [
        "traceable sourcing with every order",
        "small-batch quality at scale",
        "same-week delivery with personal advice",
    ],
    "market": [
        "quality-minded consumers and small offices",
        "urban professionals aged 25-45",
        "small and medium businesses",
    ],
    "position": ["premium challenger", "trusted local specialist", "fast-growing independent brand"],
    "audience": [
        "enthusiasts who care where things come from",
        "busy professionals who value convenience",
        "office managers",
    ],
    "buyer": ["office manager or owner", "the enthusiast buying for themselves", "procurement lead of a small firm"],
    "channels": [
        "Instagram, LinkedIn and a monthly newsletter",
        "Facebook, Instagram and the company blog",
        "LinkedIn and YouTube",
    ],
    "cadence": ["two posts a week and a monthly newsletter", "one blog post a month, daily stories", "weekly posts"],
    "award": ["a regional quality award", "an industry certification for sustainable sourcing", "none found"],
    "news": [
        "opened a second location",
        "launched a subscription offer",
        "started a partnership with a local producer",
    ],
}


def sample_research(query: str, context: dict[str, Any]) -> ResearchResult:
    """Research notes about the company that cite `max_sources` (at least 8) sample sources."""
    sampler = Sampler.for_call(query, context)
    count = max(8, int(context.get("max_sources") or 10))
    topic = slug(str(context.get("topic_title") or "company-profile"), 40)
    sources = [
        Source(
            url=f"https://example.com/sample/{sampler.site_slug}/{topic}-{i + 1}",
            title=f"{SAMPLE_SOURCE_TITLE} #{i + 1}: {sampler.company}",
        )
        for i in range(count)
    ]
    facts = "\n".join(
        f"- {name}: sample value for {sampler.company} [{(i % count) + 1}]"
        for i, (name, _, _) in enumerate(DNA_POINTS[:12])
    )
    text = (
        f"{SAMPLE_MARKER}\n\nResearch notes about {sampler.company} ({sampler.industry}). "
        f"Nothing here was researched; the offline provider made it up.\n\n{facts}\n\n{sampler.words(120, cite=count)}"
    )
    return ResearchResult(text=text, sources=sources)


def sample_dna(s: Sampler) -> dict[str, Any]:
    """A CompanyDNAExtraction: 36 data points, each marked "(sample)" and citing up to `source_count` sources."""
    source_count = max(1, int(s.context.get("source_count") or 8))
    fields = {key: s.random.choice(options) for key, options in DNA_CHOICES.items()}
    fields.update(
        company=s.company,
        industry=s.industry,
        website=str(s.context.get("website") or "not given"),
        country=str(s.context.get("country") or "its home market"),
        year=str(s.random.randint(1995, 2021)),
    )
    points = []
    for i, (name, category, template) in enumerate(DNA_POINTS[:36]):
        numbers = sorted({i % source_count + 1, s.random.randrange(source_count) + 1})
        value = template.format(**fields)
        if not template.startswith("{"):  # a sentence of ours, not the company's own field
            value = value[:1].upper() + value[1:]
        points.append(
            {
                "name": name,
                "category": category,
                "value": f"{value} (sample)",
                "source_numbers": numbers,
            }
        )
    summary = (
        f"{SAMPLE_MARKER} {s.company} works in {s.industry}. This profile was generated offline from "
        "sample sources and must be replaced by real research before use."
    )
    return {"summary": summary, "data_points": points}
