"""Output schemas of the generation stages: what a provider must return for each, validated with pydantic."""

from pydantic import BaseModel, Field, field_validator

SAMPLE_MARKER = "[SAMPLE CONTENT - generated offline, not researched]"


class Source(BaseModel):
    url: str = Field(min_length=8, max_length=2000)
    title: str = Field(default="", max_length=500)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a source URL must start with http:// or https://")
        return value


class ResearchResult(BaseModel):
    """What `research(query)` returns: the findings as text plus the sources they cite."""

    text: str
    sources: list[Source] = Field(default_factory=list)


class DataPoint(BaseModel):
    name: str = Field(min_length=2, max_length=120, description="what the data point is, e.g. 'Founded'")
    category: str = Field(min_length=2, max_length=60, description="e.g. company, product, market, brand, audience")
    value: str = Field(min_length=1, max_length=2000)
    source_indexes: list[int] = Field(
        min_length=1, description="0-based indexes into the numbered source list given in the prompt"
    )


class CompanyDNAExtraction(BaseModel):
    """The JSON the DNA stage asks for: a summary and 30+ named data points tied to the research sources."""

    summary: str = Field(min_length=20, max_length=4000)
    data_points: list[DataPoint] = Field(min_length=30, max_length=120)

    def check_against(self, source_count: int) -> list[str]:
        """Problems that pydantic cannot see alone: every index must point at a real source, names unique."""
        problems: list[str] = []
        seen: set[str] = set()
        for i, point in enumerate(self.data_points):
            bad = [ix for ix in point.source_indexes if not 0 <= ix < source_count]
            if bad:
                problems.append(f"data_points[{i}] ({point.name!r}) cites unknown source indexes {bad}")
            key = point.name.strip().lower()
            if key in seen:
                problems.append(f"data_points[{i}] repeats the name {point.name!r}")
            seen.add(key)
        return problems
