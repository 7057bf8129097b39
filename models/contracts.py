"""Pydantic contracts that cross Temporal: one model in, one out; ids and small summaries only."""

import uuid
from typing import Any

from pydantic import BaseModel, Field

from models.enums import JobStatus, JobType, Tier
from models.pipeline import JobSpec

# Temporal priority keys: 1 is served first, 5 last, 3 is the default.
TIER_PRIORITY: dict[Tier, int] = {Tier.ULTIMATE: 1, Tier.PRO: 2, Tier.FREE: 3}


class JobRequest(BaseModel):
    """Starts a single-stage job workflow; everything else the stage needs is read from the DB."""

    job_id: uuid.UUID
    job_type: JobType
    tenant_id: uuid.UUID
    company_id: uuid.UUID
    tier: Tier = Tier.FREE


class StageInput(BaseModel):
    """What a stage activity receives: the AIJob whose row names the inputs. With a `spec`, the stage first
    creates that row if it does not exist yet (a pipeline's stage); without, the row was written before."""

    job_id: uuid.UUID
    spec: JobSpec | None = None


class StageResult(BaseModel):
    job_id: uuid.UUID
    artifact_ids: list[uuid.UUID] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)

    def to_result_data(self) -> dict[str, Any]:
        """The AIJob's resultData, camelCase like the rest of the API."""
        return {"artifactIds": [str(i) for i in self.artifact_ids], "summary": self.summary}

    @classmethod
    def from_result_data(cls, job_id: uuid.UUID, data: dict[str, Any]) -> "StageResult":
        return cls(job_id=job_id, artifact_ids=data.get("artifactIds", []), summary=data.get("summary", {}))


class JobFinish(BaseModel):
    """Marks a job FAILED or CANCELLED from the workflow when the stage itself could not."""

    job_id: uuid.UUID
    status: JobStatus
    message: str = ""


class JobOutcome(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    artifact_ids: list[uuid.UUID] = Field(default_factory=list)
    error_message: str = ""


# The seed's retry rules (max_retries=3): a rate limit waits for the provider's Retry-After, else
# 60 s x 2^retry; a timeout waits 30 s; after the fourth attempt the job fails with its message.
AI_MAX_ATTEMPTS = 4
RATE_LIMIT_BASE_DELAY_SECONDS = 60
TIMEOUT_RETRY_DELAY_SECONDS = 30


# ---- a video job, split so that no worker slot waits while the provider renders ----------------------------


class VideoSubmit(BaseModel):
    """Writes a video job's prompt (once) and submits render number `render` of it. With a `spec`, the job's
    row is created first, as for any pipeline stage."""

    job_id: uuid.UUID
    spec: JobSpec | None = None
    render: int = 1


class VideoRender(BaseModel):
    """A video job between its activities: the render the provider is working on, held by the workflow while it
    waits on a durable timer. `operation` is the AI gateway's operation without the video bytes, opaque to
    workflows; `result` is set once the video is stored and the job COMPLETED."""

    job_id: uuid.UUID
    render: int = 1
    name: str = ""  # the provider's operation id, for summaries and logs
    operation: dict[str, Any] = Field(default_factory=dict)
    # The operation itself failed (the same poll error on two attempts): the workflow submits a new render.
    failed: bool = False
    result: StageResult | None = None
    # The provider's hint for the first poll (seconds after the submit); None: the workflow's own first wait.
    poll_after_seconds: float | None = None


class VideoPoll(BaseModel):
    """One poll of a render; on the `final` one (the render's deadline has passed) a video still rendering fails
    the job."""

    render: VideoRender
    final: bool = False
    elapsed_seconds: int = 0  # since the first render was submitted, for the job's progress message
