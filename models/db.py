"""The async database engine and sessions (SQLAlchemy + psycopg 3) shared by the API and the activities."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, LiteralString, NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from models.settings import psycopg_url

# libpq connection settings for every connection we open: a server that does not answer fails a connect
# within seconds, and a peer that vanished without a reset (a dropped network, a dead host) is noticed
# within about a minute instead of the operating system's two hours. Ignored for Unix sockets.
CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class RowInsert(NamedTuple):
    """An INSERT of one row as raw SQL for the driver (psycopg, `%(name)s` parameters), to run as a part of a
    larger statement: a start writes its row, claims its Idempotency-Key and takes its token in one round trip."""

    sql: LiteralString
    params: dict[str, Any]


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        psycopg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=CONNECT_ARGS,
    )


class Database:
    """An engine plus a session factory; one per process, closed on shutdown."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> "Database":
        return cls(make_engine(url, pool_size=pool_size))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
