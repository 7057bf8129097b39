"""Perplexity's Sonar models (web research with citations) through its OpenAI-compatible API."""

from __future__ import annotations

from typing import Any

from models.generation import ResearchResult, Source
from providers.base import WorkKind
from providers.openai_compat import OpenAIChatProvider
from providers.prompts import load_prompt
from providers.structured import SchemaArg, json_schema_for

RESEARCH_SYSTEM = load_prompt("research_system")


class PerplexityProvider(OpenAIChatProvider):
    name = "perplexity"
    kinds = frozenset({WorkKind.RESEARCH, WorkKind.TEXT, WorkKind.JSON})
    default_base_url = "https://api.perplexity.ai"

    def _response_format(self, schema: SchemaArg) -> dict[str, Any]:
        # Perplexity's structured outputs take the schema alone (no name/strict).
        return {"type": "json_schema", "json_schema": {"schema": json_schema_for(schema)}}

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        completion = await self._chat(
            query,
            kind=WorkKind.RESEARCH,
            system=options.get("system") or RESEARCH_SYSTEM,
            temperature=options.get("temperature"),
            max_tokens=options.get("max_tokens"),
        )
        extra = completion.model_extra or {}
        return ResearchResult(
            text=str(completion.choices[0].message.content),
            sources=sources_from_response(extra.get("citations"), extra.get("search_results")),
        )


def sources_from_response(citations: Any, search_results: Any) -> list[Source]:
    """Sources in `citations` order (so the answer's [n] markers stay right), titled from `search_results`."""
    titles: dict[str, str] = {}
    ordered: list[str] = []
    for item in search_results or []:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            titles.setdefault(item["url"], str(item.get("title") or ""))
    for url in citations or []:
        if isinstance(url, str) and url not in ordered:
            ordered.append(url)
    for url in titles:
        if url not in ordered:
            ordered.append(url)
    sources: list[Source] = []
    for url in ordered:
        if url.startswith(("http://", "https://")) and len(url) >= 8:
            sources.append(Source(url=url[:2000], title=titles.get(url, "")[:500]))
    return sources
