"""SQLModel tables: every row belongs to a tenant; large content lives here, not in Temporal payloads."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.channels import ChannelState
from models.enums import (
    JobStatus,
    JobType,
    MediaKind,
    PipelineStage,
    PipelineStatus,
    Platform,
    PublishState,
    Role,
    Tier,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = False) -> Any:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


def _json(nullable: bool = True) -> Any:
    # none_as_null: Python None is SQL NULL, never the JSON value `null` (which `IS NOT NULL` matches).
    return sa.Column(JSONB(none_as_null=True), nullable=nullable)


def _enum(enum: type, nullable: bool = False) -> Any:
    # Stored as plain strings (values), checked by the application: adding a value needs no migration.
    return sa.Column(sa.String(32), nullable=nullable)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    tier: Tier = Field(sa_column=_enum(Tier))
    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_secret: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    # sha256 of the key; the key itself is shown once and never stored.
    key_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    role: Role = Field(sa_column=_enum(Role))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Company(SQLModel, table=True):
    __tablename__ = "company"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    name: str = Field(max_length=200)
    website: str | None = Field(default=None, max_length=2000)
    country: str | None = Field(default=None, max_length=100)
    language: str = Field(default="en", max_length=20)
    industry: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class CompanyDNA(SQLModel, table=True):
    """One researched version of a company's DNA; a new research run adds a version."""

    __tablename__ = "company_dna"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "version"),
        sa.UniqueConstraint("job_id"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    job_id: uuid.UUID | None = Field(default=None)  # provenance: the AIJob that made it
    version: int
    summary: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    data_points: list[dict[str, Any]] = Field(sa_column=_json(nullable=False))
    sources: list[dict[str, Any]] = Field(sa_column=_json(nullable=False))
    is_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Persona(SQLModel, table=True):
    __tablename__ = "persona"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    job_id: uuid.UUID | None = Field(default=None, index=True)  # provenance: the AIJob that made it
    position: int = 0
    name: str = Field(max_length=200)
    role: str = Field(default="", max_length=200)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=_json(nullable=False))
    selected: bool = False
    is_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Topic(SQLModel, table=True):
    __tablename__ = "topic"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    persona_id: uuid.UUID = Field(foreign_key="persona.id", index=True)
    job_id: uuid.UUID | None = Field(default=None, index=True)  # provenance: the AIJob that made it
    month: str = Field(max_length=7, index=True)  # YYYY-MM
    position: int = 0
    title: str = Field(max_length=500)
    angle: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    keywords: list[str] = Field(default_factory=list, sa_column=_json(nullable=False))
    status: str = Field(default="PROPOSED", max_length=32)  # TopicStatus: PROPOSED, APPROVED, REJECTED
    feedback: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # A topic regenerated after a rejection: revision counts up from 0 and previous_id is the rejected one.
    revision: int = 0
    previous_id: uuid.UUID | None = Field(default=None)
    is_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class BlogPost(SQLModel, table=True):
    __tablename__ = "blog_post"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    topic_id: uuid.UUID = Field(foreign_key="topic.id", index=True)
    title: str = Field(max_length=500)
    slug: str = Field(max_length=200)
    meta_description: str = Field(default="", max_length=500)
    keywords: list[str] = Field(default_factory=list, sa_column=_json(nullable=False))
    status: str = Field(default="DRAFT", max_length=32)  # BlogPostStatus: DRAFT, APPROVED, CHANGES_REQUESTED
    current_revision: int = 1
    target_words: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    is_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class BlogPostRevision(SQLModel, table=True):
    __tablename__ = "blog_post_revision"
    __table_args__ = (sa.UniqueConstraint("blog_post_id", "revision"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    blog_post_id: uuid.UUID = Field(foreign_key="blog_post.id", index=True)
    job_id: uuid.UUID | None = Field(default=None, index=True)  # provenance: the AIJob that made it
    revision: int
    markdown: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    word_count: int = 0
    citations: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json(nullable=False))
    feedback: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # "model" for a draft or rewrite by the blog stage; "person" for a supervisor's own edit (and its key).
    written_by: str = Field(default="model", sa_column=sa.Column(sa.String(16), nullable=False, server_default="model"))
    edited_by_key_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class SocialPost(SQLModel, table=True):
    __tablename__ = "social_post"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    blog_post_id: uuid.UUID = Field(foreign_key="blog_post.id", index=True)
    job_id: uuid.UUID | None = Field(default=None, index=True)  # provenance: the AIJob that made it
    platform: Platform = Field(sa_column=_enum(Platform))
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    hashtags: list[str] = Field(default_factory=list, sa_column=_json(nullable=False))
    image_prompt: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    publish_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    publish_state: PublishState = Field(default=PublishState.DRAFT, sa_column=_enum(PublishState))
    external_id: str | None = Field(default=None, max_length=500)
    # The delivery's id (Standard Webhooks `webhook-id`), fixed when the post is first claimed: every re-send
    # of an unknown outcome carries the same id, so the receiver de-duplicates it.
    delivery_id: str | None = Field(default=None, max_length=64)
    # Sends of this delivery (every claim counts): bounded, then UNCONFIRMED (or FAILED when nothing can have arrived).
    delivery_attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    published_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    publish_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    is_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class MediaAsset(SQLModel, table=True):
    __tablename__ = "media_asset"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    job_id: uuid.UUID | None = Field(default=None, index=True)  # provenance: the AIJob that made it
    social_post_id: uuid.UUID | None = Field(default=None, foreign_key="social_post.id", index=True)
    blog_post_id: uuid.UUID | None = Field(default=None, foreign_key="blog_post.id", index=True)
    kind: MediaKind = Field(sa_column=_enum(MediaKind))
    mime_type: str = Field(max_length=100)
    path: str = Field(max_length=1000)  # relative to the media store
    size_bytes: int = 0
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    prompt: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    alt_text: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    is_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Pipeline(SQLModel, table=True):
    __tablename__ = "pipeline"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    month: str = Field(max_length=7)
    tier: Tier = Field(default=Tier.FREE, sa_column=sa.Column(sa.String(32), nullable=False, server_default="free"))
    platforms: list[str] = Field(default_factory=list, sa_column=_json(nullable=False))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=_json(nullable=False))
    status: PipelineStatus = Field(default=PipelineStatus.RUNNING, sa_column=_enum(PipelineStatus))
    stage: PipelineStage = Field(default=PipelineStage.DNA, sa_column=_enum(PipelineStage))
    status_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # The open approval gate ({gate, items, deadline}) for the supervisor's inbox; null when none is open.
    pending_gate: dict[str, Any] | None = Field(default=None, sa_column=_json())
    # Counts and per-topic branch outcomes, written as the workflow moves on; the record outlives Temporal's retention.
    summary: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(JSONB, nullable=False, server_default="{}")
    )
    workflow_id: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    completed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AIJob(SQLModel, table=True):
    """One generation job: every field of the seed's AIJob, plus tenant, workflow id and usage."""

    __tablename__ = "ai_job"
    __table_args__ = (sa.Index("ix_ai_job_company_created", "company_id", "created_at"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    job_type: JobType = Field(sa_column=_enum(JobType))
    status: JobStatus = Field(default=JobStatus.PENDING, sa_column=_enum(JobStatus))
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    persona_id: uuid.UUID | None = Field(default=None, foreign_key="persona.id")
    topic_id: uuid.UUID | None = Field(default=None, foreign_key="topic.id")
    blog_post_id: uuid.UUID | None = Field(default=None, foreign_key="blog_post.id")
    social_post_id: uuid.UUID | None = Field(default=None, foreign_key="social_post.id")
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipeline.id", index=True)
    # Inputs the job was started with (month, platforms...), so a retried activity reads the same.
    params: dict[str, Any] = Field(default_factory=dict, sa_column=_json(nullable=False))

    progress: int = Field(default=0, ge=0, le=100)
    progress_message: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    result_data: dict[str, Any] | None = Field(default=None, sa_column=_json())
    error_message: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    # Attempts that ended in a provider error: the seed's budget (4 attempts) counts these only, never a
    # worker that crashed or was stopped mid-stage (Temporal's own attempt number counts those too).
    provider_failures: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))

    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    completed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))

    workflow_id: str | None = Field(default=None, max_length=200, index=True)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Field(
        default=Decimal("0"), sa_column=sa.Column(sa.Numeric(12, 6), nullable=False, server_default="0")
    )
    model: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    # Every provider call of the job: provider, model, tokens, cost, latency, fallbacks.
    usage_records: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json(nullable=False))


class JobStep(SQLModel, table=True):
    """A finished step of a job that makes several provider calls (an outline, one section): a retried attempt
    reads it back instead of paying for it again."""

    __tablename__ = "job_step"
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    job_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("ai_job.id", ondelete="CASCADE"), primary_key=True)
    )
    step: str = Field(sa_column=sa.Column(sa.String(200), primary_key=True))
    data: dict[str, Any] = Field(sa_column=_json(nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class JobEvent(SQLModel, table=True):
    """One change of an AIJob's status, progress or message, in order; the job's SSE stream replays these.

    Rows are written by a database trigger on ai_job (migration 0003), so every writer (stages, the API, the
    pipeline's bookkeeping) produces events, and the trigger NOTIFYs `ai_job_events` with the job and event id.
    """

    __tablename__ = "job_event"
    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    job_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("ai_job.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    status: JobStatus = Field(sa_column=_enum(JobStatus))
    progress: int = 0
    message: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key a tenant sent with a start request, the request it came with, and what it started."""

    __tablename__ = "idempotency_key"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "key"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    key: str = Field(max_length=255)
    # sha256 of the method, the path and the parsed body: the same key with another request is refused.
    request_hash: str = Field(max_length=64)
    # What the first request made: an AIJob or a Pipeline (the path in the hash tells which).
    resource_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class RateBucket(SQLModel, table=True):
    """A tenant's token bucket for start requests, shared by every API process through the database."""

    __tablename__ = "rate_bucket"
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    tokens: float
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ProviderRateBucket(SQLModel, table=True):
    """One AI provider's budget (requests or tokens a minute) as a token bucket, shared by every worker process
    through the database (providers/rate_limits.py). Not a tenant's: the provider's limits bind the whole
    deployment."""

    __tablename__ = "provider_rate_bucket"
    provider: str = Field(sa_column=sa.Column(sa.String(50), primary_key=True))
    budget: str = Field(sa_column=sa.Column(sa.String(16), primary_key=True))  # "requests" or "tokens"
    tokens: float
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Channel(SQLModel, table=True):
    """One connected account on one platform for one company: its posts for that platform go out through it.
    The credentials are a Fernet token (models/credentials.py), never readable without the deployment's keys."""

    __tablename__ = "channel"
    __table_args__ = (sa.UniqueConstraint("company_id", "platform", name="uq_channel_company_platform"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    platform: Platform = Field(sa_column=_enum(Platform))
    state: ChannelState = Field(default=ChannelState.CONNECTED, sa_column=_enum(ChannelState))
    service: str = Field(max_length=500)  # the PDS address or the Mastodon instance
    account_id: str = Field(max_length=500)
    handle: str = Field(max_length=500)
    display_name: str = Field(default="", max_length=500)
    account_url: str | None = Field(default=None, max_length=1000)
    credentials: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    rules: dict[str, Any] | None = Field(default=None, sa_column=_json())
    last_checked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # When channel.needs_reconnect was last sent for the present trouble: sent once a trouble, not daily.
    notified_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    connected_by_key_id: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ChannelAttempt(SQLModel, table=True):
    """A connection in progress: the credentials a person gave (encrypted) until a worker has checked them with
    the platform, or an OAuth sign-in until the platform calls back (found by the hash of its `state`)."""

    __tablename__ = "channel_attempt"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    platform: Platform = Field(sa_column=_enum(Platform))
    service: str = Field(max_length=500)
    state_hash: str | None = Field(default=None, max_length=64, unique=True)
    secrets: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_by_key_id: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())


class OAuthClient(SQLModel, table=True):
    """This deployment's app on one OAuth server (a Mastodon instance), registered once and reused."""

    __tablename__ = "oauth_client"
    __table_args__ = (sa.UniqueConstraint("platform", "service", "redirect_uri", name="uq_oauth_client"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    platform: Platform = Field(sa_column=_enum(Platform))
    service: str = Field(max_length=500)
    redirect_uri: str = Field(max_length=1000)
    client_id: str = Field(max_length=500)
    secrets: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # {"clientSecret"}, encrypted
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
