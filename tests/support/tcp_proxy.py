"""A TCP proxy on 127.0.0.1 that a test can cut and restore: PostgreSQL going away and coming back, as the API
sees it during a restart (every open connection dropped, new ones refused, then the same address answers again)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

BUFFER_BYTES = 64 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream_host`:`upstream_port`, byte for byte, until cut."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.accepted = 0  # connections taken since start, for a test to see traffic went through
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listens (again) on the same port once it has one: clients keep their URL across a cut."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        """Stops listening (a new connection is refused) and resets every open connection on both sides."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            self._abort(writer)
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        self._writers.add(client_writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            self._writers.add(upstream_writer)
            async with asyncio.TaskGroup() as both:
                both.create_task(self._pump(client_reader, upstream_writer))
                both.create_task(self._pump(upstream_reader, client_writer))
        except* OSError:
            pass  # one side hung up, was reset by a cut, or upstream refused: both sides are closed below
        finally:
            self._pipes.discard(task)
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    self._abort(writer)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(BUFFER_BYTES):
            writer.write(data)
            await writer.drain()
        # One side ended cleanly: end the pair (PostgreSQL connections do not half-close).
        raise ConnectionResetError("peer closed")

    @staticmethod
    def _abort(writer: asyncio.StreamWriter) -> None:
        # An abort, not a graceful close: the peer sees the connection reset, as when a server process dies.
        with contextlib.suppress(Exception):
            writer.transport.abort()


@contextlib.asynccontextmanager
async def tcp_proxy(upstream_host: str, upstream_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(upstream_host, upstream_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
