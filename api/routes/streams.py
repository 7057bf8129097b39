"""A job's progress as Server-Sent Events, pushed by the database's notifications, and the stream tokens browsers need."""

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import Field
from sqlmodel import col, select
from temporalio.client import Client

from api.deps import DatabaseDep, MarketerDep, SessionDep, SettingsDep, authenticate, bearer, require
from api.errors import PROBLEMS, Problem, database_unreachable, not_found, outage_summary, problems
from api.events import JobEventHub
from api.routes.jobs import live_state, reconcile_ended
from api.routing import SlashRouter
from models.api import CamelModel
from models.db import Database
from models.enums import JobStatus, Role
from models.tables import AIJob, ApiKey, JobEvent

logger = logging.getLogger(__name__)

router = SlashRouter(prefix="/ai", tags=["jobs"])

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEP_ALIVE = format_sse_event(comment="keep-alive")
BIGINT_MAX = 2**63 - 1  # job_event.id
# A token minted by another API process may come from a clock a little ahead of this one.
CLOCK_SKEW_SECONDS = 5


class JobProgress(CamelModel):
    """The data of a `progress` event: one change of the job, in the order it happened."""

    job_id: uuid.UUID
    status: JobStatus
    progress: int
    message: str
    at: datetime


class JobEnd(CamelModel):
    """The data of the `end` event: the job's final state."""

    job_id: uuid.UUID
    status: JobStatus
    progress: int
    message: str
    error_message: str
    result_data: dict[str, Any] | None
    completed_at: datetime | None


class StreamToken(CamelModel):
    token: str
    expires_at: datetime
    stream_url: str = Field(description="the stream's URL with the token, for `new EventSource(streamUrl)`")


def stream_token_signature(key_hash: str, payload: str) -> str:
    return hmac.new(key_hash.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign_stream_token(key: ApiKey, job_id: uuid.UUID, expires: int) -> str:
    """`<key id>.<job id>.<expiry, unix seconds>.<HMAC-SHA256 of the rest, keyed by the key's stored hash>`."""
    payload = f"{key.id.hex}.{job_id.hex}.{expires}"
    return f"{payload}.{stream_token_signature(key.key_hash, payload)}"


async def job_of_tenant(session: SessionDep, tenant_id: uuid.UUID, job_id: uuid.UUID) -> AIJob:
    job = await session.get(AIJob, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise not_found("the job")
    return job


def token_refused(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def tenant_of_stream_token(session: SessionDep, token: str, job_id: uuid.UUID, ttl_seconds: int) -> uuid.UUID:
    """The tenant a valid token for this job speaks for; 401 with the reason otherwise."""
    payload, _, signature = token.rpartition(".")
    try:
        key_hex, job_hex, expires_text = payload.split(".")
        key_id, token_job, expires = uuid.UUID(key_hex), uuid.UUID(job_hex), int(expires_text)
    except ValueError:
        raise token_refused("the stream token is not valid") from None
    key = await session.get(ApiKey, key_id)
    if key is None or not hmac.compare_digest(stream_token_signature(key.key_hash, payload), signature):
        raise token_refused("the stream token is not valid")
    if key.revoked_at is not None:
        raise token_refused("the API key that made this stream token has been revoked")
    if token_job != job_id:
        raise token_refused("the stream token is for another job")
    now = time.time()
    if expires < now:
        raise token_refused("the stream token has expired; get a new one from the job's stream-token endpoint")
    if expires > now + ttl_seconds + CLOCK_SKEW_SECONDS:
        raise token_refused("the stream token is not valid")
    return key.tenant_id


@router.get(
    "/jobs/{job_id}/stream-token/",
    response_model=StreamToken,
    responses=PROBLEMS,
    summary="A short-lived token that opens the job's stream without a header (for EventSource)",
)
async def get_stream_token(
    job_id: uuid.UUID, request: Request, principal: MarketerDep, session: SessionDep, settings: SettingsDep
) -> StreamToken:
    """A browser's `EventSource` cannot send `Authorization`, so it opens `streamUrl` instead: the stream with
    `?token=`. The token opens this job's stream only, for `STREAM_TOKEN_TTL_SECONDS` (60 s by default); a
    stream opened in time runs to its end.

    The token is `<key id>.<job id>.<expiry>.<signature>`, the signature an HMAC-SHA256 of the rest keyed by the
    calling API key's stored hash: no other secret is involved, and revoking the key voids its tokens.
    """
    job = await job_of_tenant(session, principal.tenant_id, job_id)
    key = await session.get(ApiKey, principal.key_id)  # already loaded by the authentication
    if key is None:
        raise token_refused("the API key is not valid or has been revoked")
    expires = int(time.time()) + settings.stream_token_ttl_seconds
    token = sign_stream_token(key, job.id, expires)
    path = request.app.url_path_for("stream_job", job_id=str(job.id))
    return StreamToken(
        token=token,
        expires_at=datetime.fromtimestamp(expires, UTC),
        stream_url=f"{settings.public_base_url.rstrip('/')}{path}?token={token}",
    )


@router.get(
    "/jobs/{job_id}/stream/",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the job's events until it ends: `progress` events (data: JobProgress), then one `end` (data: JobEnd)",
            "content": {
                "text/event-stream": {
                    "example": 'id: 7\nevent: progress\ndata: {"jobId": "...", "status": "PROCESSING", "progress": 40, '
                    '"message": "writing", "at": "2026-11-25T09:00:05Z"}\n\n'
                }
            },
        },
        **PROBLEMS,
        **problems(_401="no API key or stream token, or one that is not valid, has expired, or is for another job"),
    },
    summary="The job's progress as Server-Sent Events, until it ends",
)
async def stream_job(
    job_id: uuid.UUID,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[
        str | None, Query(max_length=200, description="a token from `stream-token/`, instead of a key")
    ] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=BIGINT_MAX, description="resume after this event id")] = None,
) -> EventSourceResponse:
    """`event: progress` with `id: <n>` and `data: {jobId, status, progress, message, at}` for each change of the
    job, oldest first; then one `event: end` with the final state `{jobId, status, progress, message,
    errorMessage, resultData, completedAt}`, and the stream closes (an `EventSource` should `close()` on `end`,
    or it reconnects). `: keep-alive` comments fill silences. Reconnecting with `Last-Event-ID` sends only what
    came after that event; after the end, only `end`.
    """
    # A short session, closed before streaming: an open stream holds no pooled connection while it waits.
    async with db.session() as session:
        if token is not None and credentials is None:
            tenant_id = await tenant_of_stream_token(session, token, job_id, settings.stream_token_ttl_seconds)
        else:
            tenant_id = (await require(Role.MARKETER)(await authenticate(session, credentials))).tenant_id
        job = await job_of_tenant(session, tenant_id, job_id)
    return EventSourceResponse(job_events(request.app, job.id, last_event_id or 0), headers=STREAM_HEADERS)


async def job_events(app: FastAPI, job_id: uuid.UUID, after: int) -> AsyncIterator[bytes]:
    """The job's events after `after`, then each new one as the database announces it, until the job ends.
    While the database is away the stream stays open on keep-alives and reads again once it is back (the
    listener wakes every stream when it reconnects), so a client sees a pause, not a broken stream."""
    hub: JobEventHub = app.state.events
    # Subscribed before the first read: a change committed in between wakes this stream instead of being lost.
    with hub.subscribe(job_id) as wake:
        while True:
            wake.clear()
            try:
                job, events = await read_since(app.state.db, job_id, after)
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
                logger.warning("job stream %s waits for the database (%s)", job_id, outage_summary(exc))
                async for frame in keep_alive_until(app, wake):
                    yield frame
                continue
            for event in events:
                assert event.id is not None
                yield progress_frame(event)
                after = event.id
            if job is None:  # deleted with its events while the stream was open
                return
            if JobStatus(job.status).is_terminal:
                yield format_sse_event(event="end", data_str=end_data(job).model_dump_json(by_alias=True))
                return
            async for frame in keep_alive_until(app, wake, job):
                yield frame


async def keep_alive_until(app: FastAPI, wake: asyncio.Event, job: AIJob | None = None) -> AsyncIterator[bytes]:
    """Keep-alive comments until `wake` is set; at each, with `job`, Temporal is asked whether its workflow ended.
    Without `job` (the database is away), the first keep-alive ends the wait, so the stream reads again."""
    while True:
        try:
            async with asyncio.timeout(app.state.settings.sse_keepalive_seconds):
                await wake.wait()
            return
        except TimeoutError:
            yield KEEP_ALIVE
        if job is None:
            return
        try:
            await end_if_workflow_ended(app, job)
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            logger.warning("job stream %s could not record its workflow's end (%s)", job.id, outage_summary(exc))


async def read_since(db: Database, job_id: uuid.UUID, after: int) -> tuple[AIJob | None, Sequence[JobEvent]]:
    async with db.session() as session:
        # The job first: the trigger writes its event in the same transaction, so a terminal job's last
        # events are among the rows read next.
        job = await session.get(AIJob, job_id)
        events = (
            await session.exec(
                select(JobEvent)
                .where(col(JobEvent.job_id) == job_id, col(JobEvent.id) > after)
                .order_by(col(JobEvent.id))
            )
        ).all()
    return job, events


def progress_frame(event: JobEvent) -> bytes:
    data = JobProgress(
        job_id=event.job_id, status=event.status, progress=event.progress, message=event.message, at=event.created_at
    )
    return format_sse_event(event="progress", id=str(event.id), data_str=data.model_dump_json(by_alias=True))


def end_data(job: AIJob) -> JobEnd:
    return JobEnd(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        message=job.progress_message,
        error_message=job.error_message,
        result_data=job.result_data,
        completed_at=job.completed_at,
    )


async def end_if_workflow_ended(app: FastAPI, job: AIJob) -> None:
    """A workflow an operator terminated never records its end in the row: Temporal's word brings the row in
    line, and the trigger's notification then ends the stream."""
    temporal: Client | None = app.state.temporal
    if temporal is None or not job.workflow_id:
        return
    live = await live_state(temporal, job.workflow_id)
    if live is None or live.workflow_status == "RUNNING":
        return
    async with app.state.db.session() as session:
        row = await session.get(AIJob, job.id)
        if row is not None:
            await reconcile_ended(session, row, live)
