"""The offline provider: deterministic, clearly marked sample content that satisfies every stage schema."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import re
import tempfile
import textwrap
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

from models.enums import Platform
from models.generation import (
    PLATFORM_LIMITS,
    SAMPLE_MARKER,
    BlogOutline,
    BlogSection,
    CompanyDNAExtraction,
    ImagePrompt,
    PersonaSet,
    ResearchResult,
    SocialPostDraft,
    Source,
    TopicPlan,
    VideoPrompt,
)
from providers.base import (
    AIAuthError,
    AIRateLimitError,
    AITimeoutError,
    BaseProvider,
    GeneratedImage,
    GeneratedVideo,
    Metered,
    VideoOperation,
    WorkKind,
    aspect_size,
    estimate_tokens,
)
from providers.structured import SchemaArg, json_schema_for

OFFLINE_MODEL = "offline-sample"
SAMPLE_SOURCE_TITLE = "Sample source (offline provider)"
Fault = Literal["none", "rate_limit", "timeout", "invalid_json", "auth"]

_WORDS = (
    "customers teams growth strategy insight data platform workflow quality trust value market brand story "
    "audience results process planning measurable clear practical modern reliable simple proven goal impact "
    "experience research content campaign channel feedback adoption pipeline revenue retention onboarding "
    "automation analytics roadmap partnership community expertise solution challenge opportunity priority"
).split()

# Each data point of the sample DNA: name, category, and a value template filled from the company's
# own fields and seeded choices, so that sample output reads like a profile (marked "(sample)").
_DNA_POINTS: list[tuple[str, str, str]] = [
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

_DNA_CHOICES: dict[str, list[str]] = {
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

_PERSONA_TEMPLATES = [
    ("Strategic Sam", "Head of Marketing", "LinkedIn"),
    ("Operations Olivia", "Operations Manager", "industry newsletters"),
    ("Founder Felix", "Founder and CEO", "podcasts"),
    ("Technical Tara", "IT Lead", "technical blogs"),
    ("Budget-minded Ben", "Finance Director", "email"),
    ("Growth Grace", "Growth Marketer", "X"),
    ("Customer-first Carla", "Customer Success Lead", "webinars"),
    ("Procurement Paul", "Procurement Specialist", "trade publications"),
]


def _slug(text: str, limit: int = 60) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "sample"


def _meta_description(text: str) -> str:
    return text if len(text) <= 160 else text[:157].rstrip() + "..."


class _Sampler:
    """Seeded sample text for one call."""

    def __init__(self, seed: str, context: dict[str, Any]) -> None:
        self.random = random.Random(hashlib.sha256(seed.encode()).hexdigest())
        self.context = context
        self.company = str(context.get("company_name") or "Sample Company")
        self.industry = str(context.get("industry") or "its industry")
        website = str(context.get("website") or "")
        self.site_slug = _slug(re.sub(r"^https?://", "", website) or self.company, 40)

    def sentence(self, words: int = 12) -> str:
        chosen = [self.random.choice(_WORDS) for _ in range(max(3, words))]
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
        base = [self.industry.lower(), self.company.lower(), *self.random.sample(_WORDS, k=count)]
        return list(dict.fromkeys(word[:60] for word in base if word))[:count]


class OfflineProvider(BaseProvider):
    """Sample content without any network: for fresh machines, demos, benchmarks and failure tests."""

    name = "offline"
    kinds = frozenset(WorkKind)
    _generators: ClassVar[dict[type[BaseModel], str]] = {
        CompanyDNAExtraction: "_dna",
        PersonaSet: "_personas",
        TopicPlan: "_topics",
        BlogOutline: "_outline",
        BlogSection: "_section",
        SocialPostDraft: "_social",
        ImagePrompt: "_image_prompt",
        VideoPrompt: "_video_prompt",
    }

    def __init__(
        self,
        api_key: str | None = None,
        model: str = OFFLINE_MODEL,
        base_url: str | None = None,
        *,
        latency_ms: int = 0,
        jitter_ms: int = 0,
        fault: Fault = "none",
        fault_every: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key, model, base_url, **kwargs)
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.fault = fault
        self.fault_every = fault_every
        self.calls = 0
        self._jitter = random.Random(0)

    # -- latency and injected faults --

    async def _before_call(self, kind: WorkKind) -> bool:
        """Sleep the configured latency; raise the injected fault on every n-th call. True: return bad JSON."""
        self.calls += 1
        number = self.calls  # this call's own number: calls that overlap during the latency keep theirs
        delay = self.latency_ms + (self._jitter.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if self.fault == "none" or self.fault_every <= 0 or number % self.fault_every:
            return False
        if self.fault == "rate_limit":
            raise AIRateLimitError(
                "injected rate limit", provider=self.name, model=self.model, retry_after=1.0, status_code=429
            )
        if self.fault == "timeout":
            raise AITimeoutError("injected timeout", provider=self.name, model=self.model)
        if self.fault == "auth":
            raise AIAuthError("injected auth failure: the API key was refused", provider=self.name, model=self.model)
        return self.fault == "invalid_json" and kind is WorkKind.JSON

    async def _run(self, kind: WorkKind, produce: Callable[[bool], tuple[Any, Metered]], note: str = "") -> Any:
        async def call() -> tuple[Any, Metered]:
            broken = await self._before_call(kind)
            return produce(broken)

        return await self._metered(kind, self.model, call, note=note)

    # -- text, JSON, research --

    async def _complete(
        self,
        prompt: str,
        *,
        kind: WorkKind,
        schema: SchemaArg | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample_context: dict[str, Any] | None = None,
        repair: bool = False,
    ) -> str:
        context = dict(sample_context or {})

        def produce(broken: bool) -> tuple[str, Metered]:
            if broken:
                text = '{"sample": "this JSON is broken on purpose (offline_fault=invalid_json)",'
            elif schema is None:
                text = self._text(prompt, context)
            else:
                text = json.dumps(self.sample_for(schema, prompt, context), ensure_ascii=False)
            return text, Metered(
                input_tokens=estimate_tokens(prompt) + estimate_tokens(system or ""),
                output_tokens=estimate_tokens(text),
            )

        result: str = await self._run(kind, produce, note="repair" if repair else "")
        return result

    def _text(self, prompt: str, context: dict[str, Any]) -> str:
        sampler = _Sampler(prompt + json.dumps(context, sort_keys=True, default=str), context)
        words = int(context.get("words") or context.get("target_words") or 250)
        title = str(context.get("topic_title") or f"Notes for {sampler.company}")
        return f"{SAMPLE_MARKER}\n\n# {title}\n\n{sampler.words(words)}"

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        context = dict(sample_context or {})

        def produce(_: bool) -> tuple[ResearchResult, Metered]:
            sampler = _Sampler(query + json.dumps(context, sort_keys=True, default=str), context)
            count = max(8, int(context.get("max_sources") or 10))
            topic = _slug(str(context.get("topic_title") or "company-profile"), 40)
            sources = [
                Source(
                    url=f"https://example.com/sample/{sampler.site_slug}/{topic}-{i + 1}",
                    title=f"{SAMPLE_SOURCE_TITLE} #{i + 1}: {sampler.company}",
                )
                for i in range(count)
            ]
            facts = "\n".join(
                f"- {name}: sample value for {sampler.company} [{(i % count) + 1}]"
                for i, (name, _, _) in enumerate(_DNA_POINTS[:12])
            )
            text = (
                f"{SAMPLE_MARKER}\n\nResearch notes about {sampler.company} ({sampler.industry}). "
                f"Nothing here was researched; the offline provider made it up.\n\n{facts}\n\n{sampler.words(120, cite=count)}"
            )
            return ResearchResult(text=text, sources=sources), Metered(
                input_tokens=estimate_tokens(query), output_tokens=estimate_tokens(text)
            )

        result: ResearchResult = await self._run(WorkKind.RESEARCH, produce)
        return result

    # -- sample JSON per schema --

    def sample_for(self, schema: SchemaArg, prompt: str, context: dict[str, Any]) -> Any:
        """A JSON value that satisfies `schema`: made to measure for the stage schemas, generic otherwise."""
        sampler = _Sampler(prompt + json.dumps(context, sort_keys=True, default=str), context)
        if isinstance(schema, type):
            method = self._generators.get(schema)
            if method is not None:
                value: dict[str, Any] = getattr(self, method)(sampler)
                return schema.model_validate(value).model_dump(mode="json")
            generic = _fill(json_schema_for(schema), sampler)
            try:
                return schema.model_validate(generic).model_dump(mode="json")
            except ValidationError:
                return generic
        return _fill(schema, sampler)

    def _dna(self, s: _Sampler) -> dict[str, Any]:
        source_count = max(1, int(s.context.get("source_count") or 8))
        fields = {key: s.random.choice(options) for key, options in _DNA_CHOICES.items()}
        fields.update(
            company=s.company,
            industry=s.industry,
            website=str(s.context.get("website") or "not given"),
            country=str(s.context.get("country") or "its home market"),
            year=str(s.random.randint(1995, 2021)),
        )
        points = []
        for i, (name, category, template) in enumerate(_DNA_POINTS[:36]):
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

    def _personas(self, s: _Sampler) -> dict[str, Any]:
        templates = s.random.sample(_PERSONA_TEMPLATES, k=6)
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

    def _topics(self, s: _Sampler) -> dict[str, Any]:
        names = [str(n) for n in s.context.get("persona_names") or []] or ["Sample Persona"]
        per_persona = max(1, int(s.context.get("topics_per_persona") or 4))
        topics = []
        for index, persona in enumerate(names):
            for n in range(per_persona):
                theme = s.random.choice(_WORDS)
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

    def _outline(self, s: _Sampler) -> dict[str, Any]:
        title = str(s.context.get("topic_title") or f"A sample guide to {s.industry}")[:200]
        if len(title) < 12:
            title = f"{title}: a sample guide for {s.company}"[:200]
        target = int(s.context.get("target_words") or 2500)
        count = min(12, max(4, round(target / 450)))
        per_section = min(2000, max(100, target // count))
        headings = [
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
        return {
            "title": title,
            "meta_description": _meta_description(f"Sample post for {s.company}: {title}"),
            "slug": _slug(title, 80),
            "keywords": s.keywords(5),
            "sections": [
                {"heading": headings[i], "key_points": [s.sentence(6), s.sentence(6)], "target_words": per_section}
                for i in range(count)
            ],
        }

    def _section(self, s: _Sampler) -> dict[str, Any]:
        words = int(s.context.get("words") or s.context.get("target_words") or 400)
        cite = int(s.context.get("source_count") or 0)
        heading = str(s.context.get("section_heading") or "Sample section")[:200]
        body = f"{SAMPLE_MARKER}\n\n{s.words(max(20, words - 8), cite=cite)}"
        return {"heading": heading if len(heading) >= 3 else "Sample section", "body_markdown": body}

    def _social(self, s: _Sampler) -> dict[str, Any]:
        platform = Platform(str(s.context.get("platform") or Platform.LINKEDIN.value))
        limit = PLATFORM_LIMITS[platform]
        tags = [_slug(word, 20).replace("-", "") for word in s.keywords(3)][:3]
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

    def _image_prompt(self, s: _Sampler) -> dict[str, Any]:
        title = str(s.context.get("topic_title") or s.company)
        return {
            "prompt": f"Sample flat illustration about {title}, bright colors, no text"[:2000],
            "aspect_ratio": str(s.context.get("aspect_ratio") or "1:1"),
            "alt_text": f"Sample illustration about {title}"[:500],
        }

    def _video_prompt(self, s: _Sampler) -> dict[str, Any]:
        title = str(s.context.get("topic_title") or s.company)
        return {
            "prompt": f"Sample short video about {title}: slow camera pan over an office"[:2000],
            "duration_seconds": 8,
            "aspect_ratio": str(s.context.get("aspect_ratio") or "16:9"),
        }

    # -- media --

    async def generate_image(
        self,
        prompt: str,
        aspect_ratio: str = "1:1",
        *,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> GeneratedImage:
        async def call() -> tuple[GeneratedImage, Metered]:
            await self._before_call(WorkKind.IMAGE)
            width, height = aspect_size(aspect_ratio, 1024)
            data = await asyncio.to_thread(_draw_png, prompt, width, height)
            image = GeneratedImage(
                data=data, mime_type="image/png", width=width, height=height, provider=self.name, model=self.model
            )
            return image, Metered(input_tokens=estimate_tokens(prompt), images=1)

        result: GeneratedImage = await self._metered(WorkKind.IMAGE, self.model, call)
        return result

    async def start_video(
        self,
        prompt: str,
        *,
        duration_seconds: int = 8,
        aspect_ratio: str = "16:9",
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> VideoOperation:
        aspect_size(aspect_ratio, 16)  # refuse a malformed ratio now, not at the first poll

        def produce(_: bool) -> tuple[VideoOperation, Metered]:
            digest = hashlib.sha256(f"{prompt}|{duration_seconds}|{aspect_ratio}".encode()).hexdigest()[:16]
            operation = VideoOperation(
                provider=self.name,
                model=self.model,
                name=f"offline-video-{digest}",
                prompt=prompt,
                duration_seconds=duration_seconds,
                aspect_ratio=aspect_ratio,
            )
            return operation, Metered(input_tokens=estimate_tokens(prompt), note="video started")

        result: VideoOperation = await self._run(WorkKind.VIDEO, produce)
        return result

    async def poll_video(self, operation: VideoOperation) -> VideoOperation:
        if operation.done and operation.video is not None:
            return operation

        async def call() -> tuple[VideoOperation, Metered]:
            await self._before_call(WorkKind.VIDEO)
            seconds = max(1, min(operation.duration_seconds, 8))
            width, height = aspect_size(operation.aspect_ratio, 640)
            data, mime = await asyncio.to_thread(_render_video, operation.prompt, width, height, seconds)
            video = GeneratedVideo(
                data=data, mime_type=mime, duration_seconds=float(seconds), width=width, height=height
            )
            done = operation.model_copy(update={"done": True, "video": video})
            return done, Metered(video_seconds=float(seconds), note="video done")

        result: VideoOperation = await self._metered(WorkKind.VIDEO, self.model, call)
        return result


# ---- generic schema filling ------------------------------------------------------------------------------


def _fill(
    schema: dict[str, Any], s: _Sampler, root: dict[str, Any] | None = None, name: str = "value", depth: int = 0
) -> Any:
    root = root if root is not None else schema
    if depth > 8:
        return None
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _fill(target, s, root, name, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _fill(options[0], s, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] not in (None, [], {}, ""):
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or (kind is None and "properties" in schema):
        return {prop: _fill(sub, s, root, prop, depth + 1) for prop, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        count = min(count, int(schema.get("maxItems", count)))
        item = schema.get("items") or {"type": "string"}
        return [_fill(item, s, root, f"{name}_{i}", depth + 1) for i in range(count)]
    if kind == "integer":
        low = int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0)))
        return max(low, min(int(schema.get("maximum", low + 10)), low + 1))
    if kind == "number":
        bottom = float(schema.get("minimum", 0))
        return min(float(schema.get("maximum", bottom + 1)), bottom + 1.0)
    if kind == "boolean":
        return False
    return _sample_string(schema, s, name)


def _sample_string(schema: dict[str, Any], s: _Sampler, name: str) -> str:
    fmt = schema.get("format")
    if fmt in ("uri", "url"):
        return f"https://example.com/sample/{_slug(name)}"
    if fmt == "date":
        return "2026-01-01"
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    if fmt == "email":
        return "sample@example.com"
    pattern = schema.get("pattern")
    if pattern:
        for candidate in ("sample-value", "sample", "1:1", "16:9", "2026-01", "2026-01-01", "SAMPLE", "1"):
            if re.fullmatch(pattern, candidate):
                return candidate
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", 400))
    text = f"Sample {name.replace('_', ' ')}: {s.sentence(8)}"
    while len(text) < low:
        text += " " + s.sentence(8)
    return text[:high] if high >= low else text


# ---- drawing ---------------------------------------------------------------------------------------------


def _palette(prompt: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(prompt.encode()).digest()
    top = (40 + digest[0] % 120, 40 + digest[1] % 120, 80 + digest[2] % 150)
    bottom = (digest[3] % 90, digest[4] % 90, 30 + digest[5] % 100)
    return top, bottom


def _frame(prompt: str, width: int, height: int, progress: float | None = None) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    top, bottom = _palette(prompt)
    image = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 4):
        t = y / max(1, height - 1)
        color = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.rectangle([0, y, width, y + 4], fill=color)
    unit = min(width, height)
    if progress is not None:
        radius = unit // 8
        x = round(radius + (width - 2 * radius) * progress)
        draw.ellipse([x - radius, height // 2 - radius, x + radius, height // 2 + radius], fill=(255, 200, 60))
    title_size, body_size = max(10, unit // 16), max(9, unit // 22)
    title_font = ImageFont.load_default(size=title_size)
    body_font = ImageFont.load_default(size=body_size)
    margin = max(8, unit // 20)
    draw.text((margin, margin), "SAMPLE - offline provider", fill=(255, 255, 255), font=title_font)
    chars = max(10, int((width - 2 * margin) / (body_size * 0.55)))
    max_lines = max(1, (height - 3 * margin) // (body_size + 6) - 2)
    y = margin * 2 + title_size
    for line in textwrap.wrap(" ".join(prompt.split()), width=chars)[:max_lines]:
        draw.text((margin, y), line, fill=(255, 255, 255), font=body_font)
        y += body_size + 6
    return image


def _draw_png(prompt: str, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    _frame(prompt, width, height).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _render_video(prompt: str, width: int, height: int, seconds: int, fps: int = 10) -> tuple[bytes, str]:
    """An H.264 MP4 through imageio-ffmpeg's bundled binary; an animated GIF if ffmpeg is unavailable."""
    import numpy as np

    frames = [_frame(prompt, width, height, progress=i / max(1, seconds * fps - 1)) for i in range(seconds * fps)]
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0)
        return buffer.getvalue(), "image/gif"
    handle, path = tempfile.mkstemp(suffix=".mp4")
    os.close(handle)
    try:
        writer = imageio.get_writer(
            path,
            format="FFMPEG",  # type: ignore[arg-type]
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=2,
            output_params=["-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(np.asarray(frame))
        finally:
            writer.close()
        with open(path, "rb") as file:
            return file.read(), "video/mp4"
    finally:
        os.unlink(path)
