"""What the company artifact reads return: personas, topics, blog posts with revisions, social posts, media."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from models.api import CamelModel, InputModel
from models.enums import BlogPostStatus, MediaKind, Platform, PublishState, TopicStatus

JobId = Annotated[
    uuid.UUID | None, Field(description="the AIJob that made it (provenance); null for rows made otherwise")
]


class Artifact(CamelModel):
    id: uuid.UUID
    is_sample: bool = Field(
        default=False, description="made by the offline provider as a sample, not by a real AI model"
    )
    created_at: datetime


class Generated(Artifact):
    job_id: JobId = None


class PersonaPublic(Generated):
    position: int = Field(description="order in which the personas were proposed, from 0", examples=[0])
    name: str = Field(examples=["Operations Olivia"])
    role: str = Field(examples=["Operations Manager"])
    details: dict[str, Any] = Field(
        description="what the persona stage wrote: summary, goals, pains, channels, ...",
        examples=[{"summary": "Runs a 40-person plant and hates downtime.", "goals": ["less downtime"]}],
    )
    selected: bool = Field(description="chosen at the personas gate; topics are planned for selected personas only")


class TopicPublic(Generated):
    persona_id: uuid.UUID = Field(description="the persona the topic is written for")
    month: str = Field(description="the month of content, YYYY-MM", examples=["2026-03"])
    position: int = Field(description="order within the month's plan", examples=[0])
    title: str = Field(examples=["Five ways to halve unplanned downtime"])
    angle: str = Field(examples=["Downtime is a planning problem before it is a maintenance problem."])
    keywords: list[str] = Field(examples=[["downtime", "predictive maintenance"]])
    status: TopicStatus
    feedback: str | None = Field(default=None, description="the supervisor's reason when the topic was rejected")
    revision: int = Field(
        description="0 for a first proposal; a topic regenerated after a rejection counts up", examples=[0]
    )
    previous_id: uuid.UUID | None = Field(default=None, description="the rejected topic this one replaces")


class RevisionSummary(CamelModel):
    revision: int = Field(description="1 for the first draft; each requested change adds one", examples=[1])
    word_count: int = Field(examples=[2140])
    feedback: str | None = Field(default=None, description="the change the supervisor asked for on this revision")
    written_by: str = Field(
        default="model", description="model: written by the blog stage; person: a supervisor's own edit"
    )
    created_at: datetime
    job_id: JobId = None


class Citation(CamelModel):
    number: int = Field(description="the `[n]` marker in the Markdown", examples=[1])
    url: str = Field(examples=["https://news.example/acme-raises"])
    title: str = Field(default="", examples=["Acme raises a seed round"])


class BlogRevision(RevisionSummary):
    markdown: str = Field(examples=["# Halve your downtime\n\nSmall plants lose ... [1]"])
    citations: list[Citation]


class BlogPostEdit(InputModel):
    """A supervisor's own edit of a blog post's Markdown, saved as its next revision."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"markdown": "# Halve your downtime\n\nSmall plants ... [1]"}]}
    )

    markdown: str = Field(
        min_length=1,
        max_length=200_000,
        description="the whole post; its citation markers [n] must name the current revision's sources",
    )


class SocialPostEdit(InputModel):
    """A person's new text of a social post: the whole post as it will be sent, link and hashtags included."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Downtime costs a shift a week. #maintenance"}]})

    text: str = Field(min_length=1, max_length=70_000)


class SocialPostMove(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"publishAt": "2027-01-16T09:30:00"}]})

    publish_at: datetime = Field(
        description="the new time; without an offset it is the company's local time (its `timezone`)"
    )


class SocialPostMoved(CamelModel):
    social_post_id: uuid.UUID
    publish_at: datetime
    local_time: str = Field(description="the new time in the company's time zone")


class PublishAgainIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"receiverChecked": True}]})

    receiver_checked: bool = Field(
        description="must be true: someone looked at the receiver (the platform, the webhook's system) and the "
        "post is not there, so sending it again does not make a duplicate"
    )


class PublishAgainAccepted(CamelModel):
    social_post_id: uuid.UUID
    workflow_id: str


class BlogPostBase(Artifact):
    topic_id: uuid.UUID
    title: str = Field(examples=["Halve your downtime"])
    slug: str = Field(examples=["halve-your-downtime"])
    meta_description: str = Field(examples=["How small plants cut unplanned downtime in half."])
    keywords: list[str] = Field(examples=[["downtime", "maintenance"]])
    status: BlogPostStatus
    current_revision: int = Field(description="the revision that is the post now", examples=[2])
    target_words: int = Field(description="the length asked for; 0 when none was set", examples=[2000])
    updated_at: datetime


class BlogPostPublic(BlogPostBase):
    revisions: list[RevisionSummary] = Field(description="every revision, oldest first, without its Markdown")


class BlogPostDetail(BlogPostBase):
    markdown: str | None = Field(
        description="the current revision's Markdown; null while its first draft is being written"
    )
    citations: list[Citation] = Field(description="the current revision's sources, by marker number")
    revisions: list[BlogRevision] = Field(
        description="every revision, oldest first, or only the one asked for with `?revision=`"
    )


class MediaPublic(Generated):
    kind: MediaKind
    mime_type: str = Field(examples=["image/png"])
    size_bytes: int = Field(examples=[48213])
    width: int | None = Field(default=None, examples=[1200])
    height: int | None = Field(default=None, examples=[627])
    duration_seconds: float | None = Field(default=None, description="videos only", examples=[8.0])
    alt_text: str = Field(examples=["A robot sorting parcels"])
    prompt: str = Field(description="what the image or video model was asked for")
    social_post_id: uuid.UUID | None = Field(default=None, description="the social post the image illustrates")
    blog_post_id: uuid.UUID | None = Field(default=None, description="the blog post the video is made from")
    download_url: str = Field(
        description="the file at `GET /api/v1/media/{id}/file`; send the same `Authorization: Bearer <api key>` header",
        examples=["https://api.example.com/api/v1/media/0b9f1c1e-5a0c-4f57-9a34-0b4b7a1f2c55/file"],
    )


class SocialPostPublic(Generated):
    blog_post_id: uuid.UUID = Field(description="the blog post it promotes")
    platform: Platform
    text: str = Field(examples=["Unplanned downtime costs small plants a shift a week. Here is how to get it back."])
    hashtags: list[str] = Field(examples=[["#manufacturing", "#maintenance"]])
    image_prompt: str = Field(description="what an image for the post should show (PRO and up)")
    publish_at: datetime | None = Field(
        default=None, description="when it is scheduled to go out; null until scheduled"
    )
    publish_state: PublishState
    external_id: str | None = Field(default=None, description="the platform's id of the published post")
    published_at: datetime | None = None
    publish_error: str | None = Field(default=None, description="why the last publish attempt failed or is unconfirmed")
    media: list[MediaPublic] = Field(description="images attached to the post, with their download URLs")
