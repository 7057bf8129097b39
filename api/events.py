"""One LISTEN connection per API process: hears `ai_job_events` and wakes the streams of the jobs it names."""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator

import psycopg

from api.errors import outage_summary
from models.db import CONNECT_ARGS

logger = logging.getLogger(__name__)

# The channel the trigger on ai_job NOTIFYs (migration 0003) and the name the listener shows in pg_stat_activity.
CHANNEL = "ai_job_events"
APPLICATION_NAME = "content-pipeline job events"
FIRST_RETRY_SECONDS = 0.2
LAST_RETRY_SECONDS = 10.0


class JobEventHub:
    """Wakes a job's subscribers when the database says the job changed.

    A wake-up carries no data: the subscriber re-reads job_event after the last id it sent, so notifications
    that pile up while it writes collapse into one read, and a lost notification costs nothing once everyone is
    woken after a reconnect.
    """

    def __init__(self, database_url: str) -> None:
        # The engine takes SQLAlchemy's spelling too; libpq wants the plain one.
        self._database_url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._subscribers: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def subscribe(self, job_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the job may have new rows; the subscriber clears it before it re-reads."""
        wake = asyncio.Event()
        waiting = self._subscribers.setdefault(str(job_id), set())
        waiting.add(wake)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="job-event-listener")
        try:
            yield wake
        finally:
            waiting.discard(wake)
            if not waiting:
                self._subscribers.pop(str(job_id), None)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._database_url, autocommit=True, application_name=APPLICATION_NAME, **CONNECT_ARGS
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = FIRST_RETRY_SECONDS
                    # Whatever changed while no one listened was not heard: every subscriber re-reads.
                    self._wake_all()
                    async for notify in conn.notifies():
                        self._wake(notify.payload)
            except Exception as exc:
                logger.warning(
                    "the job event listener lost the database (%s); reconnecting in %.1f s", outage_summary(exc), delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY_SECONDS)

    def _wake(self, payload: str) -> None:
        try:
            job_id = str(json.loads(payload)["job"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed %s notification: %.200r", CHANNEL, payload)
            return
        for wake in self._subscribers.get(job_id, ()):
            wake.set()

    def _wake_all(self) -> None:
        for waiting in self._subscribers.values():
            for wake in waiting:
                wake.set()
