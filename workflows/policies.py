"""Task queues, timeouts and retry policies in one place, named after what they are for."""

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import Priority, RetryPolicy

from models.contracts import AI_MAX_ATTEMPTS, TIER_PRIORITY
from models.enums import JobType, Tier

# The seed's Celery queues, rebuilt as Temporal task queues.
PIPELINE_QUEUE = "pipeline"  # workflows and quick DB work
AI_QUEUE = "ai"  # provider calls, concurrency-limited
MEDIA_QUEUE = "media"  # image and video, long and heartbeating
PUBLISH_QUEUE = "publish"  # delivery to webhooks and platforms
TASK_QUEUES = (PIPELINE_QUEUE, AI_QUEUE, MEDIA_QUEUE, PUBLISH_QUEUE)

# The seed's timeouts: quick 30 s, default 120 s, AI 300 s per attempt.
QUICK_TIMEOUT = timedelta(seconds=30)
DEFAULT_TIMEOUT = timedelta(seconds=120)
AI_TIMEOUT = timedelta(seconds=300)
AI_HEARTBEAT_TIMEOUT = timedelta(seconds=60)
IMAGE_TIMEOUT = AI_TIMEOUT
VIDEO_TIMEOUT = timedelta(minutes=15)  # video models render for minutes; the stage heartbeats while it polls

# Provider errors set their own delay (Retry-After, 60 s x 2^retry, 30 s for timeouts) through
# ApplicationError.next_retry_delay; this policy covers the rest (a crashed worker, a DB blip).
AI_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=AI_MAX_ATTEMPTS,
    non_retryable_error_types=[
        "AIAuthError",
        "AIInvalidRequestError",
        "AIContentBlockedError",
        "AIInvalidOutputError",
    ],
)
MEDIA_RETRY = AI_RETRY
# Only "nothing was sent" is retried (the publisher raises it); an unknown outcome is never retried blindly.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=8,
)
QUICK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10)


@dataclass(frozen=True)
class StageSchedule:
    """Where and how long one kind of stage runs: text on the ai queue, images and videos on media."""

    queue: str
    timeout: timedelta
    retry: RetryPolicy


def stage_schedule(job_type: JobType) -> StageSchedule:
    if job_type == JobType.GENERATE_VIDEO:
        return StageSchedule(MEDIA_QUEUE, VIDEO_TIMEOUT, MEDIA_RETRY)
    if job_type == JobType.GENERATE_IMAGE:
        return StageSchedule(MEDIA_QUEUE, IMAGE_TIMEOUT, MEDIA_RETRY)
    return StageSchedule(AI_QUEUE, AI_TIMEOUT, AI_RETRY)


def priority_for(tier: Tier) -> Priority:
    """Paid tiers are served first on the shared queues."""
    return Priority(priority_key=TIER_PRIORITY[tier])


def sibling_queue(own_queue: str, base: str) -> str:
    """The queue `base` of the same deployment: `pipeline-x` runs its AI work on `ai-x`."""
    suffix = own_queue[len(PIPELINE_QUEUE) :] if own_queue.startswith(PIPELINE_QUEUE) else ""
    return base + suffix


def job_workflow_id(job_id: object) -> str:
    return f"job-{job_id}"
