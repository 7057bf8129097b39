"""Task queues, timeouts and retry policies in one place, named after what they are for."""

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import Priority, RetryPolicy

from models.contracts import AI_MAX_ATTEMPTS, TIER_PRIORITY
from models.enums import JobType, Tier
from models.lookup import LookupErrorType
from models.names import PERMANENT_PROVIDER_ERRORS

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
IMAGE_TIMEOUT = AI_TIMEOUT
VIDEO_TIMEOUT = timedelta(minutes=15)  # video models render for minutes; the stage heartbeats while it polls
# A video job is split (see workflows/job.py run_video): one activity writes the prompt and submits the render,
# then the workflow polls it between durable timers, so no worker slot waits while the provider renders.
VIDEO_SUBMIT_TIMEOUT = AI_TIMEOUT
VIDEO_POLL_TIMEOUT = DEFAULT_TIMEOUT  # one poll; the last one downloads and stores the video
VIDEO_RENDER_DEADLINE = VIDEO_TIMEOUT  # from the first submit: a video still rendering then fails its job
VIDEO_FIRST_POLL = timedelta(seconds=1)  # unless the provider hints sooner (the offline one: at once)
VIDEO_POLL_BACKOFF = 1.5
VIDEO_POLL_CAP = timedelta(seconds=10)  # Veo renders for minutes: polls every 10 s keep the history small
# How soon a lost worker (a crash, a kill, a machine gone) is noticed: every activity heartbeats in the
# background (stages and publishing) or ends well within this (quick DB work), so an attempt whose worker is
# gone times out after this and runs again at once on a live worker. Stages heartbeat every second.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)

# A lost worker, a deploy or a database blip is not a provider failure: it is retried within seconds and never
# uses the seed's budget of 4 attempts for provider errors, which the stage counts itself (ai_job.provider_failures)
# and enforces by failing for good. Provider errors set their own delay (Retry-After, 60 s x 2^retry, 30 s for
# timeouts) through ApplicationError.next_retry_delay. The attempt cap only stops a stage that kills its worker
# every time (a poison pill) from looping for ever.
WORKER_LOSSES_ALLOWED = 20
AI_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=AI_MAX_ATTEMPTS + WORKER_LOSSES_ALLOWED,
    non_retryable_error_types=[str(error) for error in PERMANENT_PROVIDER_ERRORS],
)
MEDIA_RETRY = AI_RETRY
# Delivery budgets (re-sends of an unknown outcome, "nothing was sent" retries) are counted by publish_post in
# the database (social_post.delivery_attempts) with its own backoff; this policy only brings an attempt back
# after a lost worker, quickly.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
)
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=30
)

# Company lookup ("New company" search) on the ai queue: someone waits for it on a page, so one attempt gets 20 s,
# all attempts together (a rate limit or a 5xx is tried again twice) end before the API stops waiting after 25 s,
# and a lookup that no worker picked up is gone a minute later instead of running for nobody.
LOOKUP_TIMEOUT = timedelta(seconds=20)
LOOKUP_DEADLINE = timedelta(seconds=24)
LOOKUP_EXECUTION_TIMEOUT = timedelta(seconds=60)
LOOKUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=3,
    non_retryable_error_types=[LookupErrorType.SEARCH_REJECTED, *(str(error) for error in PERMANENT_PROVIDER_ERRORS)],
)

# Channel operations a person waits for (connect, test, disconnect) on the publish queue: one attempt of 45 s (the
# platform's own requests time out sooner, CHANNEL_TIMEOUT_SECONDS), a worker lost mid-way tried again once, and
# the workflow gone after two minutes if no worker took it. The API stops waiting before that (api/services).
CHANNEL_TASK_TIMEOUT = timedelta(seconds=45)
CHANNEL_TASK_EXECUTION_TIMEOUT = timedelta(minutes=2)
CHANNEL_TASK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)
# The daily check of every channel and the check of a post's channel before it is due; a check that cannot be
# made is simply made again next time.
CHANNEL_CHECK_TIMEOUT = timedelta(minutes=10)
CHANNEL_CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=3)
# How long before a post is due its channel is checked: time for a person to reconnect it.
CHANNEL_CHECK_AHEAD = timedelta(hours=1)
CHANNEL_HEALTH_SCHEDULE_ID = "channel-health"


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
