"""Contracts of ContentPipelineWorkflow: its input and options, the gate decisions, its state, and the
inputs and outputs of the pipeline's bookkeeping, scheduling and publishing activities."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from models.api import CamelModel, InputModel
from models.enums import (
    BranchState,
    Gate,
    JobStatus,
    JobType,
    PipelineStage,
    PipelineStatus,
    Platform,
    PublishState,
    Tier,
)
from models.job_params import JobParams, params_of

DEFAULT_APPROVAL_DEADLINE_SECONDS = 7 * 24 * 3600
DEFAULT_MAX_REVISIONS = 3
PAGE_WORDS = 500  # one A4 page of blog prose, for "4 to 10 pages"


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """A `YYYY-MM` month as [its first instant, the next month's first instant), in UTC."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_after(when: datetime) -> str:
    """The `YYYY-MM` of the month after `when`'s."""
    return f"{when.year + when.month // 12:04d}-{when.month % 12 + 1:02d}"


class Wire(BaseModel):
    """camelCase on the wire (API and the Web UI's payload view), snake_case in code."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PipelineOptions(Wire):
    """What a marketer may tune per pipeline; every field has a sensible default."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    topics_per_persona: int = Field(default=2, ge=1, le=8, description="topics planned per selected persona")
    blog_pages: int = Field(default=4, ge=4, le=10, description="blog post length in A4 pages (about 500 words each)")
    language: str | None = Field(
        default=None, min_length=2, max_length=20, description="content language; default the company's"
    )
    approval_deadline_seconds: int = Field(
        default=DEFAULT_APPROVAL_DEADLINE_SECONDS,
        ge=60,
        le=90 * 24 * 3600,
        description="how long each gate waits for a decision before the pipeline expires (default 7 days)",
    )
    max_revisions: int = Field(
        default=DEFAULT_MAX_REVISIONS, ge=0, le=10, description="regenerations per topic or post"
    )
    auto_approve_personas: bool = Field(default=False, description="select the first personas without waiting")
    auto_select_count: int = Field(default=3, ge=3, le=6, description="how many personas auto-approval selects")
    auto_approve_topics: bool = False
    auto_approve_blogposts: bool = False
    blog_url_template: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://\S+$",
        description="where the blog posts will be published, with {slug}; social posts then link to their post",
        examples=["https://www.example.com/blog/{slug}"],
    )
    compress_schedule_seconds: int | None = Field(
        default=None,
        ge=1,
        le=24 * 3600,
        description="demos: publish the month's posts in order within this many seconds instead of at their times",
    )

    @property
    def target_words(self) -> int:
        return self.blog_pages * PAGE_WORDS


class PipelineRequest(BaseModel):
    pipeline_id: uuid.UUID
    tenant_id: uuid.UUID
    company_id: uuid.UUID
    tier: Tier
    month: str  # YYYY-MM
    platforms: list[Platform]
    options: PipelineOptions = Field(default_factory=PipelineOptions)


# ---- gate decisions (Update inputs) -------------------------------------------------------------------------


class SelectPersonas(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "selectedPersonaIds": [
                        "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                        "9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e",
                        "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
                    ]
                }
            ]
        }
    )

    selected_persona_ids: list[uuid.UUID] = Field(description="3 to 6 of the 6 proposed personas")


class RejectedTopic(InputModel):
    topic_id: uuid.UUID
    feedback: str = Field(min_length=1, max_length=4000, description="what the regenerated topic should do differently")


class TopicDecision(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "approvedTopicIds": ["3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"],
                    "rejected": [
                        {
                            "topicId": "9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e",
                            "feedback": "Too generic: focus on retrofit projects",
                        }
                    ],
                }
            ]
        }
    )

    approved_topic_ids: list[uuid.UUID] = Field(default_factory=list)
    rejected: list[RejectedTopic] = Field(default_factory=list)
    dropped_topic_ids: list[uuid.UUID] = Field(
        default_factory=list, description="topics given up: no blog post, and not planned again"
    )


class BlogPostVerdictIn(InputModel):
    """The HTTP body of a blog post decision; the post's id is in the path."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"decision": "request_changes", "feedback": "Add a customer example to the second section"}]
        }
    )

    decision: str = Field(pattern="^(approve|request_changes)$", description="approve or request_changes")
    feedback: str | None = Field(default=None, max_length=4000, description="required with request_changes")


class BlogPostDecision(BlogPostVerdictIn):
    blog_post_id: uuid.UUID


class FailureVerdictIn(InputModel):
    """The HTTP body of a decision on a failed branch; the branch's topic id is in the path."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"decision": "retry"}]})

    decision: str = Field(
        pattern="^(retry|drop)$",
        description="retry: run the branch again from the stage that failed; drop: give up this topic's posts",
    )


class FailureDecision(FailureVerdictIn):
    topic_id: uuid.UUID


class DecisionAccepted(Wire):
    gate: Gate
    message: str


# ---- state (the `state` query) ------------------------------------------------------------------------------


class GateItem(Wire):
    id: uuid.UUID
    title: str
    detail: str = ""
    persona_id: uuid.UUID | None = None
    revision: int = 0
    can_reject: bool = True
    deadline: datetime | None = None


class GateView(Wire):
    gate: Gate
    items: list[GateItem]
    deadline: datetime
    opened_at: datetime
    reminded: bool = False


class BranchView(Wire):
    """One approved topic's way from blog post to published social posts."""

    topic_id: uuid.UUID
    title: str
    state: BranchState = BranchState.WAITING
    blog_post_id: uuid.UUID | None = None
    revision: int = 0
    social_post_ids: list[uuid.UUID] = Field(default_factory=list)
    media_ids: list[uuid.UUID] = Field(default_factory=list)
    published: int = 0
    unconfirmed: int = 0
    error: str | None = None
    retries: int = Field(default=0, description="times a supervisor retried this branch after a failure")


class JobRef(Wire):
    job_id: uuid.UUID
    job_type: JobType
    status: JobStatus = JobStatus.PENDING


class PipelineState(Wire):
    pipeline_id: uuid.UUID
    status: PipelineStatus
    stage: PipelineStage
    reason: str | None = None
    pending_approval: GateView | None = None
    pending_approvals: list[GateView] = Field(default_factory=list)
    jobs: list[JobRef] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    branches: list[BranchView] = Field(default_factory=list)


# ---- activities of the pipeline queue -----------------------------------------------------------------------


class JobSpec(BaseModel):
    """An AIJob row the workflow asks for; the id comes from the workflow, so a retry writes the same row."""

    job_id: uuid.UUID
    job_type: JobType
    tenant_id: uuid.UUID
    company_id: uuid.UUID
    pipeline_id: uuid.UUID
    workflow_id: str
    persona_id: uuid.UUID | None = None
    topic_id: uuid.UUID | None = None
    blog_post_id: uuid.UUID | None = None
    social_post_id: uuid.UUID | None = None
    params: JobParams | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _typed_params(cls, value: Any, info: ValidationInfo) -> Any:
        """Params given as a plain dict without their `kind` are the job type's (what the workflow passed
        before its params were typed, and what its recorded histories hold)."""
        job_type = info.data.get("job_type")
        if isinstance(value, dict) and "kind" not in value and job_type is not None:
            return params_of(JobType(job_type), value)
        return value


class PersonaSelection(BaseModel):
    pipeline_id: uuid.UUID
    persona_ids: list[uuid.UUID]
    all_persona_ids: list[uuid.UUID]


class TopicVerdicts(BaseModel):
    approved: list[uuid.UUID] = Field(default_factory=list)
    rejected: dict[uuid.UUID, str] = Field(default_factory=dict)  # topic id -> feedback
    dropped: list[uuid.UUID] = Field(default_factory=list)


class BlogVerdict(BaseModel):
    blog_post_id: uuid.UUID
    approved: bool
    feedback: str | None = None


class ItemList(BaseModel):
    """Ids asked for by the workflow (topics of jobs, posts of a blog post) with their display fields."""

    items: list[GateItem] = Field(default_factory=list)


class IdList(BaseModel):
    ids: list[uuid.UUID] = Field(default_factory=list)


class ItemRequest(IdList):
    gate: Gate


class ScheduleRequest(BaseModel):
    pipeline_id: uuid.UUID
    social_post_ids: list[uuid.UUID]
    slot: int  # this topic's position among the pipeline's approved topics
    slots: int  # how many approved topics share the month
    month: str
    not_before: datetime  # workflow.now(): never schedule in the past


class ScheduledPost(BaseModel):
    social_post_id: uuid.UUID
    platform: Platform
    publish_at: datetime
    local_time: str = ""  # the publish time in the company's time zone, for people: "2026-12-03 09:00 Europe/Prague"


class Schedule(BaseModel):
    posts: list[ScheduledPost]


class PublishPost(BaseModel):
    social_post_id: uuid.UUID


class ReschedulePost(BaseModel):
    """A scheduled post moved to another time by a person: its branch's timer follows."""

    social_post_id: uuid.UUID
    publish_at: datetime  # aware


class Rescheduled(BaseModel):
    social_post_id: uuid.UUID
    publish_at: datetime
    local_time: str = ""  # in the company's time zone, for people


class PublishAgain(BaseModel):
    """A post that ended UNCONFIRMED or FAILED, sent again after a person checked the receiver."""

    social_post_id: uuid.UUID


class PublishOutcome(BaseModel):
    social_post_id: uuid.UUID
    state: PublishState
    external_id: str | None = None
    message: str = ""


class TenantNotice(BaseModel):
    """An event for the tenant: logged, and POSTed signed to the tenant's webhook when one is set."""

    tenant_id: uuid.UUID
    event: str  # approval.reminder, approval.expired, pipeline.finished
    pipeline_id: uuid.UUID
    data: dict[str, Any] = Field(default_factory=dict)


# ---- HTTP API ----------------------------------------------------------------------------------------------

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def _distinct_platforms(platforms: list[Platform]) -> list[Platform]:
    if len(set(platforms)) != len(platforms):
        raise ValueError("each platform may appear once")
    return platforms


PlatformList = Annotated[
    list[Platform],
    Field(min_length=1, max_length=len(Platform), examples=[["linkedin", "x", "instagram"]]),
    AfterValidator(_distinct_platforms),
]
Month = Annotated[str, Field(pattern=MONTH_PATTERN, description="a month, YYYY-MM", examples=["2026-12"])]


class PipelineCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "month": "2026-12",
                    "platforms": ["linkedin", "x", "instagram"],
                    "options": {"blogPages": 6, "topicsPerPersona": 2},
                }
            ]
        }
    )

    month: Month
    platforms: PlatformList
    options: PipelineOptions = Field(default_factory=PipelineOptions)


class PipelineAccepted(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pipelineId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "workflowId": "pipeline-9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e-2026-12-3f1c2d4e",
                }
            ]
        }
    )

    pipeline_id: uuid.UUID
    workflow_id: str


class PipelineJob(CamelModel):
    id: uuid.UUID
    job_type: JobType
    status: JobStatus
    progress: int
    progress_message: str
    error_message: str
    persona_id: uuid.UUID | None = None
    topic_id: uuid.UUID | None = None
    blog_post_id: uuid.UUID | None = None
    social_post_id: uuid.UUID | None = None


class PipelineArtifacts(CamelModel):
    dna: list[uuid.UUID] = Field(default_factory=list)
    personas: list[uuid.UUID] = Field(default_factory=list)
    topics: list[uuid.UUID] = Field(default_factory=list)
    blog_posts: list[uuid.UUID] = Field(default_factory=list)
    social_posts: list[uuid.UUID] = Field(default_factory=list)
    media: list[uuid.UUID] = Field(default_factory=list)


class PipelinePublic(CamelModel):
    id: uuid.UUID
    company_id: uuid.UUID
    month: str
    platforms: list[Platform]
    tier: Tier
    status: PipelineStatus
    stage: PipelineStage
    reason: str | None = None
    pending_approval: GateView | None = Field(default=None, description="the open gate with the earliest deadline")
    pending_approvals: list[GateView] = Field(
        default_factory=list, description="every open gate: blog posts and failed branches can wait at once"
    )
    jobs: list[PipelineJob]
    artifacts: PipelineArtifacts
    counts: dict[str, int] = Field(default_factory=dict)
    branches: list[BranchView] = Field(default_factory=list)
    options: PipelineOptions
    created_at: datetime
    completed_at: datetime | None = None
    workflow_id: str
    temporal_ui_url: str


class PipelineSummary(CamelModel):
    """One of a company's pipelines in a list: what it is and where it stands; GET /ai/pipelines/{id}/ has the rest."""

    id: uuid.UUID
    month: str
    status: PipelineStatus
    stage: PipelineStage
    platforms: list[Platform]
    tier: Tier
    created_at: datetime
    completed_at: datetime | None = None
    pending_gates: int = Field(description="how many approval gates wait for a decision (0 once it has ended)")


class ApprovalInboxItem(CamelModel):
    pipeline_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    month: str
    gate: Gate
    items: list[GateItem]
    deadline: datetime
    workflow_id: str
    temporal_ui_url: str
