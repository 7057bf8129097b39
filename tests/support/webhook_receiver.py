"""A real webhook receiver on 127.0.0.1 for tests, as a Standard Webhooks receiver is written: it verifies each
request with `standardwebhooks.Webhook(secret).verify`, records every request, keeps each delivery once by its
`webhook-id` (a repeat is counted as a duplicate and answered as the first one was) and answers as told (an id,
4xx, 5xx, 429, too slow, a redirect); plus a server that drops the connection mid-request and a port where
nothing listens."""

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.stack import free_port, serving

SECRET = "whsec_" + base64.b64encode(b"test-secret-for-the-receiver-32b").decode()
# Modes in which the receiver keeps the delivery (before answering, or whatever it then answers).
KEEPS = {"ok", "post_id", "external_id", "no_id", "notice", "error", "slow", "long_id", "unsafe_id"}


def verified(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except Exception:  # a wrong or malformed signature, an old timestamp, a secret that is not base64
        return False
    return True


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
        """The Standard Webhooks event type, from the body."""
        try:
            return str(self.json.get("type", ""))
        except ValueError:
            return ""

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def post_id(self) -> str | None:
        """The social post's id, for a post.publish delivery."""
        try:
            data = self.json.get("data") or {}
        except ValueError:
            return None
        return data.get("socialPostId") if self.event == "post.publish" else None

    @property
    def idempotency_key(self) -> str | None:
        """What the Idempotency-Key header carried before deliveries followed Standard Webhooks: the post's id for
        a post, the delivery's id for a notice. Tests written since read `post_id` or `webhook_id`."""
        return self.post_id or self.webhook_id


@dataclass
class WebhookReceiver:
    """Answers according to `script` (one mode per request, in order) and then `mode`: ok (201 with `id`),
    post_id, external_id, no_id (202 without an id), long_id, unsafe_id, reject (422), error (500 after keeping
    it), unavailable (503), throttle (429 with Retry-After), request_timeout (408), conflict (409), redirect
    (307), slow (keeps it, answers only after `release` is set), notice (204 without a body)."""

    secret: str = SECRET
    mode: str = "ok"
    delay: float = 0.0
    url: str = ""
    script: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    # What a de-duplicating receiver holds: the first verified delivery of each webhook-id it kept.
    held: dict[str, Received] = field(default_factory=dict)
    duplicates: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by every request
    _ids: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        received = Received(headers=headers, body=body, verified=verified(self.secret, body, headers))
        self.requests.append(received)
        self.arrived.set()
        if not received.verified:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        mode = self.script.pop(0) if self.script else self.mode
        webhook_id = received.webhook_id or ""
        if webhook_id in self.held:
            self.duplicates += 1
        elif mode in KEEPS:
            self.held[webhook_id] = received
            self._ids[webhook_id] = len(self.requests)
        number = self._ids.get(webhook_id, len(self.requests))  # a repeat gets the id the first one got
        if self.delay:
            await asyncio.sleep(self.delay)
        match mode:
            case "ok":
                answer = {"id": f"ext-{number}", "url": f"https://social.example/p/{number}"}
                return JSONResponse(answer, status_code=201)
            case "post_id":
                return JSONResponse({"postId": f"post-{number}"})
            case "external_id":
                return JSONResponse({"externalId": 4200 + number})
            case "no_id":
                return JSONResponse({"status": "queued"}, status_code=202)
            case "long_id":
                return JSONResponse({"id": "x" * 129}, status_code=201)
            case "unsafe_id":
                return JSONResponse({"id": "<script>alert(1)</script>", "postId": "fine-1"}, status_code=201)
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
                return JSONResponse({"error": "this delivery is being processed"}, status_code=409)
            case "redirect":
                return Response(status_code=307, headers={"Location": "https://elsewhere.example/hook"})
            case "slow":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.release.wait(), timeout=5)
                return JSONResponse({"id": f"late-{number}"}, status_code=201)
        raise AssertionError(f"unknown mode {mode}")

    @property
    def ids(self) -> list[str | None]:
        """The webhook-id of every request, in order."""
        return [r.webhook_id for r in self.requests]


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
    """Reads a whole request, then resets the connection without answering; after `drops` requests (when
    set) it answers 201 with an id instead."""

    url: str = ""
    requests: int = 0
    drops: int | None = None
    ids: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def dropping(drops: int | None = None) -> AsyncIterator[Dropper]:
    dropper = Dropper(drops=drops)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "webhook-id":
                dropper.ids.append(value.strip())
        await reader.readexactly(length)
        dropper.requests += 1
        if dropper.drops is not None and dropper.requests > dropper.drops:
            answer = b'{"id":"after-drops"}'
            writer.write(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
            writer.close()
            return
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dropper.url = f"http://127.0.0.1:{port}/hook"
    async with server:
        yield dropper


def refused_url() -> str:
    """A port on 127.0.0.1 where nothing listens: the connection is refused."""
    return f"http://127.0.0.1:{free_port()}/hook"
