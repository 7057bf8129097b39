"""The worker process: one Temporal worker per task queue (pipeline, ai, media, publish), stopped gracefully on
SIGTERM."""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.worker import Interceptor, Worker

from activities.blog import BlogStage
from activities.channels import ChannelActivities
from activities.deps import StageDeps
from activities.dna import DnaStage
from activities.jobs import JobActivities
from activities.ledger import LEDGER_FOLDER, AttemptLedger, AttemptLedgerInterceptor, fail_lost_attempts
from activities.logcontext import LogContextInterceptor
from activities.lookup import CompanyLookup
from activities.media import MediaStage
from activities.personas import PersonaStage
from activities.pipeline import PipelineActivities
from activities.publish import PublishActivities
from activities.reconciler import start_reconciler, stop_reconciler
from activities.social import SocialStage
from activities.topics import TopicStage
from models.channels import ChannelHealthRequest
from models.db import Database
from models.logs import install_logging
from models.settings import Settings, get_settings
from providers.router import ProviderRouter
from workflows.branch import TopicBranchWorkflow
from workflows.channels import ChannelHealthWorkflow, ChannelTaskWorkflow
from workflows.job import GenerationJobWorkflow
from workflows.lookup import CompanyLookupWorkflow
from workflows.pipeline import ContentPipelineWorkflow
from workflows.policies import AI_QUEUE, CHANNEL_HEALTH_SCHEDULE_ID, MEDIA_QUEUE, PIPELINE_QUEUE, PUBLISH_QUEUE
from workflows.republish import PublishAgainWorkflow

logger = logging.getLogger("worker")

WORKFLOWS = [
    GenerationJobWorkflow,
    ContentPipelineWorkflow,
    TopicBranchWorkflow,
    PublishAgainWorkflow,
    ChannelTaskWorkflow,
    ChannelHealthWorkflow,
]
# The "New company" search runs on the ai queue, its workflow as well as its activity: someone waits for it.
AI_WORKFLOWS = [CompanyLookupWorkflow]
HEARTBEAT_THROTTLE = timedelta(seconds=2)


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def build_workers(
    client: Client, deps: StageDeps, settings: Settings, interceptors: Sequence[Interceptor] = ()
) -> list[Worker]:
    """One worker per task queue, each queue name with the deployment's suffix."""
    grace = timedelta(seconds=settings.worker_graceful_shutdown_seconds)
    jobs = JobActivities(deps.db)
    pipeline = PipelineActivities(deps.db)
    publish = PublishActivities(deps)
    channels = ChannelActivities(deps)
    media = MediaStage(deps)
    ai_stages: list[Callable[..., Any]] = [
        DnaStage(deps).generate_dna,
        PersonaStage(deps).generate_personas,
        TopicStage(deps).generate_topics,
        BlogStage(deps).generate_blogpost,
        SocialStage(deps).generate_social,
        CompanyLookup(deps).lookup_company,
    ]
    bookkeeping: list[Callable[..., Any]] = [
        jobs.finish_job,
        pipeline.record_pipeline,
        pipeline.record_branch,
        publish.schedule_posts,
    ]

    def queue_worker(
        queue: str, activities: Sequence[Callable[..., Any]], concurrency: int, workflows: Sequence[type] = ()
    ) -> Worker:
        return Worker(
            client,
            task_queue=queue + settings.task_queue_suffix,
            workflows=workflows,
            activities=activities,
            max_concurrent_activities=concurrency,
            # Bounds the worker's memory however many workflows are parked at a gate (see models/settings.py).
            max_cached_workflows=settings.worker_max_cached_workflows,
            graceful_shutdown_timeout=grace,
            # Cancellation reaches an activity only through a heartbeat reply: send them often
            # enough that a cancel from the API or the Web UI stops a running stage within seconds.
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            interceptors=interceptors,
        )

    return [
        queue_worker(PIPELINE_QUEUE, bookkeeping, settings.worker_pipeline_concurrency, WORKFLOWS),
        queue_worker(AI_QUEUE, ai_stages, settings.worker_ai_concurrency, AI_WORKFLOWS),
        queue_worker(
            MEDIA_QUEUE, [media.generate_image, media.submit_video, media.poll_video], settings.worker_media_concurrency
        ),
        queue_worker(
            PUBLISH_QUEUE,
            [
                publish.publish_post,
                publish.notify_tenant,
                publish.reschedule_post,
                publish.reopen_post,
                channels.run_channel_task,
                channels.check_channels,
            ],
            settings.worker_publish_concurrency,
        ),
    ]


async def ensure_channel_health_schedule(client: Client, settings: Settings) -> None:
    """The Temporal Schedule that checks every channel once a day (made once per deployment; a worker that finds it
    leaves it as it is, so an operator's pause in the Web UI holds). A failure is logged, never fatal: publishing
    checks each channel before its posts anyway."""
    schedule_id = CHANNEL_HEALTH_SCHEDULE_ID + settings.task_queue_suffix
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ChannelHealthWorkflow.run,
            ChannelHealthRequest(),
            id=f"{schedule_id}-run",
            task_queue=PIPELINE_QUEUE + settings.task_queue_suffix,
        ),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(settings.channel_check_hour_utc)])]),
        # A run that finds the previous one still going is skipped: the next day's comes anyway.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        logger.info(
            "made the schedule %s: every channel is checked daily at %02d:00 UTC",
            schedule_id,
            settings.channel_check_hour_utc,
        )
    except ScheduleAlreadyRunningError:
        pass
    except RPCError as exc:
        logger.warning("the channel check schedule %s could not be made: %s", schedule_id, exc)


async def run(settings: Settings) -> None:
    client = await connect(settings)
    # Activities hold a connection only for short statements: a pool far below the (high) slot counts suffices.
    db = Database.from_url(settings.resolved_database_url(), pool_size=max(5, min(20, settings.worker_ai_concurrency)))
    router = ProviderRouter.from_settings(settings, db=db)  # provider calls wait for the shared rate limits
    deps = StageDeps(db=db, router=router, settings=settings)
    # Attempts a worker that died on this machine was running run again now, not after their heartbeat timeout.
    ledger_folder = settings.data_dir / LEDGER_FOLDER
    lost = await fail_lost_attempts(client, ledger_folder)
    if lost:
        logger.info("failed %d attempts of a lost worker; they run again now", lost)
    ledger = AttemptLedger(ledger_folder)
    workers = build_workers(client, deps, settings, [LogContextInterceptor(), AttemptLedgerInterceptor(ledger)])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runs = [asyncio.create_task(w.run()) for w in workers]
    await ensure_channel_health_schedule(client, settings)
    # Rows whose workflow ended without recording it (terminated in the Web UI) follow Temporal: reads never ask it.
    reconciler = start_reconciler(
        client, db, PIPELINE_QUEUE + settings.task_queue_suffix, settings.reconcile_every_seconds
    )
    logger.info("worker ready: queues %s on %s", ", ".join(w.task_queue for w in workers), settings.temporal_address)
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopped, *runs], return_when=asyncio.FIRST_COMPLETED)
    if stopped not in done:
        for task in done:
            task.result()  # a worker that died on its own: raise its error
    logger.info("worker stopping: in-flight activities get %s s to finish", settings.worker_graceful_shutdown_seconds)
    await stop_reconciler(reconciler)
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    await asyncio.gather(*runs, return_exceptions=True)
    ledger.close()
    await router.close()
    await db.close()
    logger.info("worker stopped")


def main() -> None:
    install_logging()  # one JSON object a line, with the attempt's ids (LOG_FORMAT=text: the plain lines)
    settings = get_settings()
    asyncio.run(run(settings))
    # Everything is drained and closed. Skip interpreter teardown: the Temporal core's Rust threads
    # can abort CPython's finalisation (temporalio/sdk-python#300), turning a clean stop into SIGABRT.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
