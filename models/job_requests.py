"""Bodies of the seed's job endpoints (camelCase, unknown fields refused) and the job statistics."""

import uuid
from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field

from models.api import CamelModel, InputModel, Money
from models.enums import JobStatus, JobType
from models.pipeline import PAGE_WORDS, Month, PlatformList

Language = Field(
    default=None, min_length=2, max_length=20, description="content language; default the company's", examples=["en"]
)


class PersonasJobCreate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"language": "en"}]})

    language: str | None = Language


class TopicsJobCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"personaId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "month": "2026-12", "count": 2}]
        }
    )

    persona_id: uuid.UUID = Field(description="a persona of this company")
    month: Month
    count: int = Field(default=2, ge=1, le=8, description="how many topics to plan")
    language: str | None = Language


class BlogPostJobCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"topicId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "pages": 6, "language": "en"}]
        }
    )

    topic_id: uuid.UUID = Field(description="a topic of this company")
    pages: int = Field(default=4, ge=4, le=10, description=f"length in A4 pages (about {PAGE_WORDS} words each)")
    language: str | None = Language

    @property
    def target_words(self) -> int:
        return self.pages * PAGE_WORDS


class SocialJobCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "blogPostId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "platforms": ["linkedin", "x"],
                    "linkUrl": "https://www.example.com/blog/{slug}",
                }
            ]
        }
    )

    blog_post_id: uuid.UUID = Field(description="a blog post of this company")
    platforms: PlatformList
    link_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://\S+$",
        description="the blog post's public URL ({slug} is replaced by the post's slug); the posts link to it",
        examples=["https://www.example.com/blog/{slug}"],
    )


class ImageJobCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"socialPostId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"}]}
    )

    social_post_id: uuid.UUID = Field(
        description="a social post of this company; the image gets its platform's aspect ratio"
    )


class VideoJobCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"blogPostId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "aspectRatio": "16:9"}]}
    )

    blog_post_id: uuid.UUID = Field(description="a blog post of this company")
    aspect_ratio: Literal["16:9", "9:16"] = Field(default="16:9", description="landscape or portrait")


# ---- statistics ---------------------------------------------------------------------------------------------


class UsageTotals(CamelModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Money = Field(default=Decimal("0"), description="list-price cost in US dollars")


class Durations(CamelModel):
    """Seconds from a job's start to its completion, over its COMPLETED jobs."""

    count: int = 0
    p50_seconds: float | None = None
    p95_seconds: float | None = None


class JobTypeStats(CamelModel):
    count: int = 0
    by_status: dict[JobStatus, int]
    durations: Durations
    usage: UsageTotals


class JobStats(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 3,
                    "byStatus": {"PENDING": 0, "PROCESSING": 0, "COMPLETED": 2, "FAILED": 1, "CANCELLED": 0},
                    "byType": {
                        "generate_blogpost": {
                            "count": 3,
                            "byStatus": {"PENDING": 0, "PROCESSING": 0, "COMPLETED": 2, "FAILED": 1, "CANCELLED": 0},
                            "durations": {"count": 2, "p50Seconds": 50.0, "p95Seconds": 59.0},
                            "usage": {"inputTokens": 2500, "outputTokens": 9000, "costUsd": 0.13},
                        }
                    },
                    "usage": {"inputTokens": 2500, "outputTokens": 9000, "costUsd": 0.13},
                }
            ]
        }
    )

    total: int
    by_status: dict[JobStatus, int] = Field(description="every status, zero included")
    by_type: dict[JobType, JobTypeStats] = Field(description="every job type, zero included")
    usage: UsageTotals
