"""A job's progress as Server-Sent Events, and the stream tokens browsers need to open it."""

import uuid
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse

from api.deps import DatabaseDep, MarketerDep, SessionDep, SettingsDep, authenticate, bearer, require
from api.errors import PROBLEMS, problems
from api.routing import SlashRouter
from api.services.job_events import STREAM_HEADERS, job_events
from api.services.jobs import job_of_tenant
from api.services.stream_tokens import StreamToken, mint_stream_token, tenant_of_stream_token
from models.enums import Role

router = SlashRouter(prefix="/ai", tags=["jobs"])

BIGINT_MAX = 2**63 - 1  # job_event.id


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
    path = request.app.url_path_for("stream_job", job_id=str(job.id))
    return await mint_stream_token(session, settings, principal.key_id, job.id, path)


@router.get(
    "/jobs/{job_id}/stream/",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the job's events until it ends: `progress` events (data: JobProgress), "
            "then one `end` (data: JobEnd)",
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
