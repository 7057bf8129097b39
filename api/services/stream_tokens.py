"""Stream tokens: short-lived, signed, for one job's stream, so that a browser's EventSource needs no header."""

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Problem
from models.api import CamelModel
from models.settings import Settings
from models.tables import ApiKey

# A token minted by another API process may come from a clock a little ahead of this one.
CLOCK_SKEW_SECONDS = 5


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


def token_refused(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def mint_stream_token(
    session: AsyncSession, settings: Settings, key_id: uuid.UUID, job_id: uuid.UUID, stream_path: str
) -> StreamToken:
    """A token for the job's stream, signed with the calling key (`key_id`), valid for the configured TTL."""
    key = await session.get(ApiKey, key_id)  # already loaded by the authentication
    if key is None:
        raise token_refused("the API key is not valid or has been revoked")
    expires = int(time.time()) + settings.stream_token_ttl_seconds
    token = sign_stream_token(key, job_id, expires)
    return StreamToken(
        token=token,
        expires_at=datetime.fromtimestamp(expires, UTC),
        stream_url=f"{settings.public_base_url.rstrip('/')}{stream_path}?token={token}",
    )


async def tenant_of_stream_token(session: AsyncSession, token: str, job_id: uuid.UUID, ttl_seconds: int) -> uuid.UUID:
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
