"""The demo's local webhook receiver: checks each delivery's signature, keeps it, answers with its own post id,
and downloads the media through the signed links the delivery carries, as a real receiver would."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from publishers.webhook import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class Delivery:
    event: str
    data: dict[str, Any]
    media_bytes: int = 0


@dataclass
class DemoReceiver:
    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    refused: int = 0

    @property
    def posts(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.event == "post.publish"]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        if not verify(self.secret, headers.get(TIMESTAMP_HEADER), body, headers.get(SIGNATURE_HEADER)):
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        payload = json.loads(body)
        delivery = Delivery(event=headers.get(EVENT_HEADER, ""), data=payload.get("data", {}))
        self.deliveries.append(delivery)
        if delivery.event != "post.publish":
            return Response(status_code=204)
        async with httpx.AsyncClient(timeout=10) as http:
            for media in delivery.data.get("media", []):
                response = await http.get(media["url"])
                if response.status_code == 200:
                    delivery.media_bytes += len(response.content)
        return JSONResponse({"id": f"demo-post-{len(self.posts)}"}, status_code=201)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def receiving(receiver: DemoReceiver) -> AsyncIterator[str]:
    """Serves the receiver on 127.0.0.1 while the block runs; yields its URL."""
    port = free_port()
    app = Starlette(routes=[Route("/webhook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        server.should_exit = True
        await task
