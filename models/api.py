"""API schemas: what the HTTP API takes and returns, camelCase on the wire."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator, model_validator
from pydantic.alias_generators import to_camel

from models.enums import JobStatus, JobType, Role, Tier

T = TypeVar("T")


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class InputModel(CamelModel):
    """A request body: unknown fields are an error, and so is a NUL character (PostgreSQL text cannot hold one)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        def check(value: Any) -> None:
            if isinstance(value, str) and "\x00" in value:
                raise ValueError("text must not contain NUL characters")
            if isinstance(value, dict):
                for item in value.values():
                    check(item)
            elif isinstance(value, list):
                for item in value:
                    check(item)

        check(data)
        return data


# Money as a JSON number (pydantic writes Decimal as a string by default).
Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class Page(CamelModel, Generic[T]):
    data: list[T]
    count: int = Field(description="how many items match, across all pages")
    limit: int
    offset: int


class CompanyBase(CamelModel):
    name: str = Field(min_length=1, max_length=200, examples=["Acme Robotics"])
    website: str | None = Field(default=None, max_length=2000, examples=["https://acme-robotics.example"])
    country: str | None = Field(default=None, max_length=100, examples=["Czech Republic"])
    language: str = Field(default="en", min_length=2, max_length=20, examples=["en"])
    industry: str | None = Field(default=None, max_length=200, examples=["Industrial automation"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Prague"])


class CompanyCreate(CompanyBase, InputModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @field_validator("website")
    @classmethod
    def _website(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("website must start with http:// or https://")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Prague") from exc
        return value


class CompanyPublic(CompanyBase):
    id: uuid.UUID
    created_at: datetime


class Usage(CamelModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Money = Decimal("0")
    provider: str | None = None
    model: str | None = None


class LiveState(CamelModel):
    """What Temporal says about a job that is still running."""

    workflow_status: str
    activity: str | None = None
    attempt: int | None = None
    last_failure: str | None = None
    next_attempt_at: datetime | None = None


class AIJobPublic(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e",
                    "jobType": "generate_blogpost",
                    "status": "PROCESSING",
                    "companyId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "personaId": None,
                    "topicId": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "progress": 45,
                    "progressMessage": "writing section 3 of 7",
                    "resultData": None,
                    "errorMessage": "",
                    "createdAt": "2026-11-25T09:00:00Z",
                    "startedAt": "2026-11-25T09:00:01Z",
                    "completedAt": None,
                    "workflowId": "job-9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e",
                    "temporalUiUrl": (
                        "http://127.0.0.1:8233/namespaces/default/workflows/job-9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e"
                    ),
                    "usage": {
                        "inputTokens": 5200,
                        "outputTokens": 2100,
                        "costUsd": 0.0123,
                        "provider": "gemini",
                        "model": "gemini-2.5-pro",
                    },
                    "live": {"workflowStatus": "RUNNING", "activity": "generate_blogpost", "attempt": 1},
                }
            ]
        }
    )

    id: uuid.UUID
    job_type: JobType
    status: JobStatus
    company_id: uuid.UUID
    persona_id: uuid.UUID | None = None
    topic_id: uuid.UUID | None = None
    progress: int
    progress_message: str
    result_data: dict[str, Any] | None = None
    error_message: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    workflow_id: str | None = None
    temporal_ui_url: str | None = None
    usage: Usage
    live: LiveState | None = None


class JobAccepted(CamelModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"jobId": "9b2e7c1a-4d3f-4e8a-b6c5-1f2a3b4c5d6e"}]})

    job_id: uuid.UUID


class DataPointPublic(CamelModel):
    name: str
    category: str
    value: str
    source_indexes: list[int]


class SourcePublic(CamelModel):
    url: str
    title: str = ""


class CompanyDNAPublic(CamelModel):
    id: uuid.UUID
    company_id: uuid.UUID
    version: int
    summary: str
    data_points: list[DataPointPublic]
    sources: list[SourcePublic]
    is_sample: bool
    created_at: datetime


class TenantCreated(CamelModel):
    tenant_id: uuid.UUID
    api_key: str
    tier: Tier


class ApiKeyCreate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "supervisor"}]})

    role: Role


class ApiKeyCreated(CamelModel):
    id: uuid.UUID
    api_key: str = Field(description="shown once; only its hash is stored")
    prefix: str
    role: Role


class ApiKeyPublic(CamelModel):
    id: uuid.UUID
    prefix: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


class TenantPublic(CamelModel):
    id: uuid.UUID
    name: str
    tier: Tier
    created_at: datetime
    webhook_url: str | None = Field(
        default=None, description="where posts and notices are POSTed, signed; the secret is never shown again"
    )


WEBHOOK_URL_MAX_LENGTH = 2000


class WebhookConfig(InputModel):
    url: str = Field(
        min_length=1,
        max_length=WEBHOOK_URL_MAX_LENGTH,
        description=(
            "an http(s) URL that receives the signed POSTs (Standard Webhooks); its host must resolve to public "
            "internet addresses only, unless the server allows private networks (WEBHOOK_ALLOW_PRIVATE_NETWORKS)"
        ),
        examples=["https://hooks.example.com/content-pipeline"],
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise ValueError("the URL must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError("the URL must start with http:// or https://")
        try:
            host = parts.hostname
            _ = parts.port  # raises on a port that is not a number in range
        except ValueError as exc:
            raise ValueError(f"the URL is not valid: {exc}") from None
        if not host:
            raise ValueError("the URL must name a host")
        if parts.username or parts.password:
            raise ValueError("the URL must not carry a user name or password; the signature authenticates the sender")
        return value


class WebhookCreated(CamelModel):
    url: str
    secret: str = Field(
        description=(
            "the signing secret (whsec_ and base64), shown once: verify each delivery's webhook-signature with it, "
            "e.g. standardwebhooks.Webhook(secret).verify(body, headers)"
        )
    )
