"""Output schemas of the generation stages: what a provider must return for each, validated with pydantic."""

import re

from pydantic import BaseModel, Field, field_validator

from models.enums import Platform

SAMPLE_MARKER = "[SAMPLE CONTENT - generated offline, not researched]"

_CITATION = re.compile(r"\[(\d{1,3})\]")


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
    # 1-based like the [n] citation markers that research answers carry; stored 0-based (see to_stored).
    source_numbers: list[int] = Field(
        min_length=1, description="numbers of the sources in the numbered list given in the prompt ([1] is the first)"
    )

    def to_stored(self) -> dict[str, object]:
        """The stored data point: `source_indexes` are 0-based positions in the DNA's source list."""
        return {
            "name": self.name,
            "category": self.category,
            "value": self.value,
            "source_indexes": sorted({n - 1 for n in self.source_numbers}),
        }


class CompanyDNAExtraction(BaseModel):
    """The JSON the DNA stage asks for: a summary and 30+ named data points tied to the research sources."""

    summary: str = Field(min_length=20, max_length=4000)
    data_points: list[DataPoint] = Field(min_length=30, max_length=120)

    def check_against(self, source_count: int) -> list[str]:
        """Problems that pydantic cannot see alone: every index must point at a real source, names unique."""
        problems: list[str] = []
        seen: set[str] = set()
        for i, point in enumerate(self.data_points):
            bad = [n for n in point.source_numbers if not 1 <= n <= source_count]
            if bad:
                problems.append(
                    f"data_points[{i}] ({point.name!r}) cites sources {bad}, but only [1] to [{source_count}] exist"
                )
            key = point.name.strip().lower()
            if key in seen:
                problems.append(f"data_points[{i}] repeats the name {point.name!r}")
            seen.add(key)
        return problems


# ---- Personas --------------------------------------------------------------------------------------------


class Persona(BaseModel):
    """One buyer persona the content is written for."""

    name: str = Field(min_length=2, max_length=80, description="a memorable persona name, e.g. 'Data-driven Dana'")
    role: str = Field(min_length=2, max_length=120, description="the persona's job title or role")
    summary: str = Field(min_length=20, max_length=1500, description="who this person is, in two to four sentences")
    goals: list[str] = Field(min_length=2, max_length=8, description="what the persona wants to achieve")
    pain_points: list[str] = Field(min_length=2, max_length=8, description="what frustrates or blocks the persona")
    channels: list[str] = Field(
        min_length=1, max_length=8, description="where the persona reads and listens, e.g. 'LinkedIn', 'podcasts'"
    )
    content_preferences: list[str] = Field(
        default_factory=list, max_length=8, description="formats and tones the persona responds to"
    )
    company_size: str = Field(default="", max_length=80, description="typical size of the persona's employer")


class PersonaSet(BaseModel):
    """The personas stage's JSON: exactly six personas, distinct by name."""

    personas: list[Persona] = Field(min_length=6, max_length=6, description="exactly 6 distinct personas")

    @field_validator("personas")
    @classmethod
    def _distinct_names(cls, personas: list[Persona]) -> list[Persona]:
        names = [p.name.strip().lower() for p in personas]
        if len(set(names)) != len(names):
            raise ValueError("persona names must be distinct")
        return personas


# ---- Topics ----------------------------------------------------------------------------------------------


class TopicIdea(BaseModel):
    """One blog topic planned for a persona in the month."""

    title: str = Field(min_length=5, max_length=200, description="working title of the blog post")
    angle: str = Field(min_length=10, max_length=1000, description="the specific take or argument of the post")
    keywords: list[str] = Field(min_length=1, max_length=12, description="SEO keywords, lowercase")
    persona_name: str = Field(min_length=2, max_length=80, description="name of the persona this topic is for")
    persona_index: int | None = Field(
        default=None, ge=0, description="0-based index of the persona in the list given in the prompt"
    )
    week: int | None = Field(default=None, ge=1, le=5, description="week of the month to publish in (1-5)")


class TopicPlan(BaseModel):
    """The topics stage's JSON: topics per persona for one month."""

    month: str = Field(default="", max_length=7, description="the month planned, as YYYY-MM")
    topics: list[TopicIdea] = Field(min_length=1, max_length=60, description="the planned topics")


# ---- Blog posts ------------------------------------------------------------------------------------------


class OutlineSection(BaseModel):
    heading: str = Field(min_length=3, max_length=200, description="the section heading (H2)")
    key_points: list[str] = Field(min_length=1, max_length=10, description="what the section must cover")
    target_words: int = Field(ge=100, le=2000, description="how many words the section should have")


class BlogOutline(BaseModel):
    """The first blog step's JSON: the post's metadata and section plan."""

    title: str = Field(min_length=5, max_length=200, description="the post title (H1)")
    meta_description: str = Field(
        min_length=20, max_length=160, description="SEO meta description, at most 160 characters"
    )
    slug: str = Field(
        min_length=3,
        max_length=120,
        pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        description="URL slug: lowercase words joined by '-'",
    )
    keywords: list[str] = Field(min_length=1, max_length=15, description="SEO keywords")
    sections: list[OutlineSection] = Field(min_length=3, max_length=16, description="the sections in order")

    @property
    def target_words(self) -> int:
        return sum(section.target_words for section in self.sections)


class BlogSection(BaseModel):
    """One written section of a blog post: Markdown whose [n] markers cite the numbered sources."""

    heading: str = Field(min_length=3, max_length=200, description="the section heading, as in the outline")
    body_markdown: str = Field(
        min_length=50,
        description="the section body in Markdown without the heading; cite sources with markers like [1] "
        "where the number is the 1-based position in the numbered source list given in the prompt",
    )

    def citation_numbers(self) -> list[int]:
        """The 1-based source numbers cited in the body, in order of first use."""
        seen: list[int] = []
        for match in _CITATION.finditer(self.body_markdown):
            number = int(match.group(1))
            if number not in seen:
                seen.append(number)
        return seen

    def check_against(self, source_count: int) -> list[str]:
        """Every citation marker must point at a real source (markers are 1-based)."""
        bad = [n for n in self.citation_numbers() if not 1 <= n <= source_count]
        return [f"citation markers {bad} point at no source (there are {source_count})"] if bad else []

    @property
    def word_count(self) -> int:
        return len(self.body_markdown.split())


# ---- Social posts and media ------------------------------------------------------------------------------


class PlatformLimit(BaseModel):
    max_chars: int
    max_hashtags: int | None = None


PLATFORM_LIMITS: dict[Platform, PlatformLimit] = {
    Platform.X: PlatformLimit(max_chars=280),
    Platform.LINKEDIN: PlatformLimit(max_chars=3000),
    Platform.INSTAGRAM: PlatformLimit(max_chars=2200, max_hashtags=30),
    Platform.FACEBOOK: PlatformLimit(max_chars=63206),
    Platform.THREADS: PlatformLimit(max_chars=500),
    Platform.BLUESKY: PlatformLimit(max_chars=300),
    # Mastodon's default; a connected channel's instance may allow more (its configuration says, see publishers).
    Platform.MASTODON: PlatformLimit(max_chars=500),
}


class SocialPostDraft(BaseModel):
    """The social stage's JSON for one platform. `text` is the whole post as published, hashtags included."""

    platform: Platform = Field(description="the platform this post is for")
    text: str = Field(min_length=1, description="the full post text as published, including any hashtags")
    hashtags: list[str] = Field(default_factory=list, max_length=30, description="hashtags used, without '#'")
    image_prompt: str = Field(default="", max_length=1000, description="a prompt for an image that fits the post")

    def check_limits(self, limit: PlatformLimit | None = None) -> list[str]:
        """Platform limits that pydantic alone cannot see: characters and hashtag count. `limit`: a connected
        channel's own (a Mastodon instance's), else the platform's."""
        limit = limit or PLATFORM_LIMITS[self.platform]
        problems: list[str] = []
        if len(self.text) > limit.max_chars:
            problems.append(f"text has {len(self.text)} characters; {self.platform.value} allows {limit.max_chars}")
        tags = max(len(self.hashtags), self.text.count("#"))
        if limit.max_hashtags is not None and tags > limit.max_hashtags:
            problems.append(f"{tags} hashtags; {self.platform.value} allows {limit.max_hashtags}")
        return problems


class ImagePrompt(BaseModel):
    """A prompt for an image model, written from a social post."""

    prompt: str = Field(min_length=10, max_length=2000, description="what the image shows, style and mood")
    aspect_ratio: str = Field(default="1:1", pattern=r"^\d+(\.\d+)?:\d+(\.\d+)?$", description="e.g. 1:1, 4:5, 16:9")
    alt_text: str = Field(default="", max_length=500, description="alt text describing the image")


class VideoPrompt(BaseModel):
    """A prompt for a short video model, written from a blog post."""

    prompt: str = Field(min_length=10, max_length=2000, description="scene, camera and mood of the video")
    duration_seconds: int = Field(default=8, ge=2, le=60, description="length of the video in seconds")
    aspect_ratio: str = Field(default="16:9", pattern=r"^\d+(\.\d+)?:\d+(\.\d+)?$", description="e.g. 16:9 or 9:16")


PLATFORM_ASPECT_RATIOS: dict[Platform, str] = {
    Platform.X: "16:9",
    Platform.LINKEDIN: "1.91:1",
    Platform.INSTAGRAM: "4:5",
    Platform.FACEBOOK: "1.91:1",
    Platform.THREADS: "4:5",
    Platform.BLUESKY: "16:9",
    Platform.MASTODON: "16:9",
}
