"""A real webhook receiver on 127.0.0.1 for tests: checks signatures, records every request, and answers
as told (an id, 4xx, 5xx, 429, too slow, a redirect); plus a server that drops the connection mid-request
and a port where nothing listens."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from publishers.webhook import EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import free_port, serving

SECRET = "whsec_test-secret-for-the-receiver"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.headers.get(EVENT_HEADER.lower(), "")

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get(IDEMPOTENCY_HEADER.lower())


@dataclass
class WebhookReceiver:
    """Answers according to `mode`: ok (201 with `id`), post_id, external_id, no_id, reject (422), error (500),
    unavailable (503), throttle (429 with Retry-After), request_timeout (408), conflict (409), redirect (307),
    slow (answers only after `release` is set), notice (204 without a body)."""

    secret: str = SECRET
    mode: str = "ok"
    delay: float = 0.0
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = verify(self.secret, headers.get(TIMESTAMP_HEADER.lower()), body, headers.get(SIGNATURE_HEADER.lower()))
        self.requests.append(Received(headers=headers, body=body, verified=verified))
        if not verified:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        number = len(self.requests)
        match self.mode:
            case "ok":
                return JSONResponse({"id": f"ext-{number}", "url": f"https://social.example/p/{number}"}, status_code=201)
            case "post_id":
                return JSONResponse({"postId": f"post-{number}"})
            case "external_id":
                return JSONResponse({"externalId": 4200 + number})
            case "no_id":
                return JSONResponse({"status": "queued"}, status_code=202)
            case "notice":
                return Response(status_code=204)
            case "reject":
                return JSONResponse({"error": "text is longer than 280 characters"}, status_code=422)
            case "error":
                return PlainTextResponse("internal error", status_code=500)
            case "unavailable":
                return PlainTextResponse("bad gateway", status_code=503)
            case "throttle":
                return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "7"})
            case "request_timeout":
                return PlainTextResponse("request timeout", status_code=408)
            case "conflict":
                return JSONResponse({"error": "idempotency key in use"}, status_code=409)
            case "redirect":
                return Response(status_code=307, headers={"Location": "https://elsewhere.example/hook"})
            case "slow":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.release.wait(), timeout=5)
                return JSONResponse({"id": f"late-{number}"}, status_code=201)
        raise AssertionError(f"unknown mode {self.mode}")


@contextlib.asynccontextmanager
async def receiving(mode: str = "ok", secret: str = SECRET) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=secret, mode=mode)
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    try:
        async with serving(app) as base_url:
            receiver.url = f"{base_url}/hook?token=receiver-side-token"
            yield receiver
            receiver.release.set()
    finally:
        receiver.release.set()


@dataclass
class Dropper:
    """Reads a whole request, then resets the connection without answering."""

    url: str = ""
    requests: int = 0


@contextlib.asynccontextmanager
async def dropping() -> AsyncIterator[Dropper]:
    dropper = Dropper()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        await reader.readexactly(length)
        dropper.requests += 1
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dropper.url = f"http://127.0.0.1:{port}/hook"
    async with server:
        yield dropper


def refused_url() -> str:
    """A port on 127.0.0.1 where nothing listens: the connection is refused."""
    return f"http://127.0.0.1:{free_port()}/hook"
