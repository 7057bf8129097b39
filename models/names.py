"""Names that cross rooms, defined once: workflow and activity names, search attributes, the `type` of the
errors that cross Temporal, and the kinds of refusal a gate answers with.

The API starts and messages workflows by these names, the workflows call activities by them, the worker
registers under them, and the tests look for them: a rename is one edit here.
"""

import re
import unicodedata
import uuid
from enum import StrEnum

from temporalio.common import SearchAttributeKey

from models.enums import JobType


class WorkflowName(StrEnum):
    PIPELINE = "ContentPipelineWorkflow"
    TOPIC_BRANCH = "TopicBranchWorkflow"
    JOB = "GenerationJobWorkflow"
    PUBLISH_AGAIN = "PublishAgainWorkflow"
    COMPANY_LOOKUP = "CompanyLookupWorkflow"
    CHANNEL_TASK = "ChannelTaskWorkflow"
    CHANNEL_HEALTH = "ChannelHealthWorkflow"


class Patch(StrEnum):
    """`workflow.patched` ids: a workflow change that a history recorded before it replays without."""

    CHANNEL_CHECK = "channel-check-before-post"


class Activity(StrEnum):
    """Every activity by name. A stage activity is named after its JobType (`generate_blogpost`)."""

    # the stages, one per JobType
    GENERATE_DNA = JobType.GENERATE_DNA.value
    GENERATE_PERSONAS = JobType.GENERATE_PERSONAS.value
    GENERATE_TOPICS = JobType.GENERATE_TOPICS.value
    GENERATE_BLOGPOST = JobType.GENERATE_BLOGPOST.value
    GENERATE_SOCIAL = JobType.GENERATE_SOCIAL.value
    GENERATE_IMAGE = JobType.GENERATE_IMAGE.value
    GENERATE_VIDEO = JobType.GENERATE_VIDEO.value
    # a video job's parts: the workflow waits for the render on a durable timer between polls
    SUBMIT_VIDEO = "submit_video"
    POLL_VIDEO = "poll_video"
    # records
    FINISH_JOB = "finish_job"
    RECORD_PIPELINE = "record_pipeline"
    RECORD_BRANCH = "record_branch"
    # publishing
    SCHEDULE_POSTS = "schedule_posts"
    PUBLISH_POST = "publish_post"
    RESCHEDULE_POST = "reschedule_post"
    REOPEN_POST = "reopen_post"
    # the company search of "New company"
    LOOKUP_COMPANY = "lookup_company"
    NOTIFY_TENANT = "notify_tenant"
    # channels: connect, check, disconnect (the API waits), the daily check and the check before a post is due
    RUN_CHANNEL_TASK = "run_channel_task"
    CHECK_CHANNELS = "check_channels"

    @classmethod
    def stage(cls, job_type: JobType) -> "Activity":
        return cls(job_type.value)


def slug(name: str, limit: int = 40) -> str:
    """`Acme Coffee, s.r.o.` -> `acme-coffee-s-r-o`: ASCII, lower case, dashes, at most `limit` characters."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:limit].strip("-")


def pipeline_workflow_id(company_name: str, company_id: uuid.UUID, month: str, pipeline_id: uuid.UUID) -> str:
    """`pipeline-acme-coffee-2026-12-1a2b3c4d`: the company's slug (its id when the name has no letters)."""
    return f"pipeline-{slug(company_name) or company_id}-{month}-{pipeline_id.hex[:8]}"


def branch_workflow_id(pipeline_workflow_id: str, topic_id: uuid.UUID) -> str:
    """A topic branch is its pipeline's child: `<pipeline workflow id>-topic-<12 hex of the topic id>`."""
    return f"{pipeline_workflow_id}-topic-{topic_id.hex[:12]}"


# Search attributes an operator filters runs by in the Web UI (registered by the stack and the compose file).
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
COMPANY_ID = SearchAttributeKey.for_keyword("CompanyId")
JOB_TYPE = SearchAttributeKey.for_keyword("JobType")
PIPELINE_STAGE = SearchAttributeKey.for_keyword("PipelineStage")
SEARCH_ATTRIBUTES = (TENANT_ID, COMPANY_ID, JOB_TYPE, PIPELINE_STAGE)


class Refusal(StrEnum):
    """Why a gate refused a decision (the update's ApplicationError type); nothing changed.
    The API answers the first three with 409 Conflict, an invalid decision with 422."""

    GATE_NOT_PENDING = "GateNotPending"
    ALREADY_DECIDED = "AlreadyDecided"
    REVISION_LIMIT = "RevisionLimit"
    INVALID_DECISION = "InvalidDecision"

    @property
    def is_conflict(self) -> bool:
        return self != Refusal.INVALID_DECISION


class ErrorType(StrEnum):
    """The `type` of the ApplicationErrors that cross Temporal between rooms."""

    # providers: the AI gateway's error taxonomy (the class names in providers/base.py)
    AI_PROVIDER = "AIProviderError"
    AI_RATE_LIMIT = "AIRateLimitError"
    AI_TIMEOUT = "AITimeoutError"
    AI_SERVER = "AIServerError"
    AI_AUTH = "AIAuthError"
    AI_INVALID_REQUEST = "AIInvalidRequestError"
    AI_CONTENT_BLOCKED = "AIContentBlockedError"
    AI_INVALID_OUTPUT = "AIInvalidOutputError"
    # jobs and stages
    JOB_FAILED = "JobFailed"
    JOB_NOT_FOUND = "JobNotFound"
    JOB_ALREADY_ENDED = "JobAlreadyEnded"
    WRONG_JOB_TYPE = "WrongJobType"
    COMPANY_NOT_FOUND = "CompanyNotFound"
    BAD_FINISH = "BadFinish"
    WORKER_LOST = "WorkerLost"
    NOT_STARTED = "NotStarted"
    TRANSIENT = "TransientError"  # a database or network blip inside a stage: retried
    INTERNAL = "InternalError"  # a bug: the job fails at once, without internals in its message
    VIDEO_DEADLINE = "VideoDeadline"  # a video still rendering at its deadline: the job fails
    # publishing
    SOCIAL_POST_NOT_FOUND = "SocialPostNotFound"
    INVALID_SCHEDULE = "InvalidSchedule"
    PUBLISH_IN_PROGRESS = "PublishInProgress"
    PUBLISH_CLAIM_LOST = "PublishClaimLost"
    # a post whose channel needs reconnecting waits (retried until a person reconnects it or decides)
    CHANNEL_NEEDS_RECONNECT = "ChannelNeedsReconnect"


# Provider errors that no retry can fix: the stage fails at once.
PERMANENT_PROVIDER_ERRORS = (
    ErrorType.AI_AUTH,
    ErrorType.AI_INVALID_REQUEST,
    ErrorType.AI_CONTENT_BLOCKED,
    ErrorType.AI_INVALID_OUTPUT,
)
