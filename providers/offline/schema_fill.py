"""A sample value for a schema: the stage generator made for it, or a generic value that fits any JSON schema."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from models.generation import (
    BlogOutline,
    BlogSection,
    CompanyDNAExtraction,
    ImagePrompt,
    PersonaSet,
    SocialPostDraft,
    TopicPlan,
    VideoPrompt,
)
from providers.offline.audience import sample_personas, sample_topics
from providers.offline.blog import sample_outline, sample_section
from providers.offline.images import sample_image_prompt
from providers.offline.research import sample_dna
from providers.offline.sampling import Sampler, slug
from providers.offline.social import sample_social
from providers.offline.video import sample_video_prompt
from providers.structured import SchemaArg, json_schema_for

STAGE_GENERATORS: dict[type[BaseModel], Callable[[Sampler], dict[str, Any]]] = {
    CompanyDNAExtraction: sample_dna,
    PersonaSet: sample_personas,
    TopicPlan: sample_topics,
    BlogOutline: sample_outline,
    BlogSection: sample_section,
    SocialPostDraft: sample_social,
    ImagePrompt: sample_image_prompt,
    VideoPrompt: sample_video_prompt,
}


def sample_for(schema: SchemaArg, prompt: str, context: dict[str, Any]) -> Any:
    """A JSON value that satisfies `schema`: made to measure for the stage schemas, generic otherwise."""
    sampler = Sampler.for_call(prompt, context)
    if isinstance(schema, type):
        generator = STAGE_GENERATORS.get(schema)
        if generator is not None:
            return schema.model_validate(generator(sampler)).model_dump(mode="json")
        generic = fill(json_schema_for(schema), sampler)
        try:
            return schema.model_validate(generic).model_dump(mode="json")
        except ValidationError:
            return generic
    return fill(schema, sampler)


def fill(
    schema: dict[str, Any], s: Sampler, root: dict[str, Any] | None = None, name: str = "value", depth: int = 0
) -> Any:
    root = root if root is not None else schema
    if depth > 8:
        return None
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return fill(target, s, root, name, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return fill(options[0], s, root, name, depth + 1)
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
        return {prop: fill(sub, s, root, prop, depth + 1) for prop, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        count = min(count, int(schema.get("maxItems", count)))
        item = schema.get("items") or {"type": "string"}
        return [fill(item, s, root, f"{name}_{i}", depth + 1) for i in range(count)]
    if kind == "integer":
        low = int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0)))
        return max(low, min(int(schema.get("maximum", low + 10)), low + 1))
    if kind == "number":
        bottom = float(schema.get("minimum", 0))
        return min(float(schema.get("maximum", bottom + 1)), bottom + 1.0)
    if kind == "boolean":
        return False
    return sample_string(schema, s, name)


def sample_string(schema: dict[str, Any], s: Sampler, name: str) -> str:
    fmt = schema.get("format")
    if fmt in ("uri", "url"):
        return f"https://example.com/sample/{slug(name)}"
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
