"""A lean HTTP/1.1 keep-alive client for open-loop load, so that the load generator is never what is measured.

httpx's connection pool scans every waiting request against every connection each time one is handed out
(httpcore `_assign_requests_to_connections`): once a few hundred requests wait, the generator spends its CPU
there and the latencies it reports are its own. This client keeps idle connections in a queue, writes one request,
reads one response (Content-Length or chunked), and drops a connection whose exchange did not finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit


class _Stale(Exception):
    """A reused connection that the server had closed before the request reached it."""


class LoadClient:
    """Up to `connections` keep-alive connections to one server; `request` answers the status code."""

    def __init__(self, base_url: str, connections: int = 64) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.limit = connections
        self.opened = 0
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.writers: set[asyncio.StreamWriter] = set()

    async def _connection(self, fresh: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle connection (reused: True), else a new one while under the limit, else the next to come back."""
        if (fresh or self.idle.empty()) and self.opened < self.limit:
            self.opened += 1
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except BaseException:
                self.opened -= 1
                raise
            self.writers.add(writer)
            return reader, writer, False
        reader, writer = await self.idle.get()
        return reader, writer, True

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self.opened -= 1
        self.writers.discard(writer)
        writer.close()

    async def request(self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> int:
        try:
            return await self._exchange(method, path, headers, body)
        except _Stale:  # the server closed an idle connection (its keep-alive timeout): once more on a new one
            return await self._exchange(method, path, headers, body, fresh=True)

    async def _exchange(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes, fresh: bool = False
    ) -> int:
        reader, writer, reused = await self._connection(fresh)
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                if reused and not getattr(error, "partial", b""):
                    raise _Stale from error
                raise
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            if fields.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(int(fields.get("content-length", "0")))
            keep = fields.get("connection", "").lower() != "close"
        except BaseException:
            self._drop(writer)  # a half-done exchange (a timeout, a reset): the connection cannot be reused
            raise
        if keep:
            self.idle.put_nowait((reader, writer))
        else:
            self._drop(writer)
        return status

    async def aclose(self) -> None:
        for writer in list(self.writers):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self.writers.clear()
