"""The demo's local webhook receiver, written as a Standard Webhooks receiver should be: it verifies each delivery
with `standardwebhooks.Webhook(secret).verify`, keeps it once by its `webhook-id` (a repeat is counted and
answered as the first one was), answers with its own post id, and downloads the media through the signed links
the delivery carries."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Delivery:
    event: str
    data: dict[str, Any]
    webhook_id: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    media_bytes: int = 0


@dataclass
class DemoReceiver:
    secret: str = ""
    # Each delivery once, in the order they first arrived.
    deliveries: list[Delivery] = field(default_factory=list)
    refused: int = 0
    # Deliveries that arrived again with a webhook-id already held (a re-send after an unknown outcome).
    duplicates: int = 0
    _by_id: dict[str, Delivery] = field(default_factory=dict)

    @property
    def posts(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.event == "post.publish"]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:  # a wrong or missing signature, an old timestamp, a secret that is not one
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        webhook_id = request.headers["webhook-id"]  # verify() refuses a request without it
        held = self._by_id.get(webhook_id)
        if held is not None:
            self.duplicates += 1
            return self._answer(held)
        delivery = Delivery(event=str(payload.get("type", "")), data=payload.get("data") or {}, webhook_id=webhook_id)
        self._by_id[webhook_id] = delivery
        self.deliveries.append(delivery)
        if delivery.event == "post.publish":
            delivery.answer = {"id": f"demo-post-{len(self.posts)}"}
            async with httpx.AsyncClient(timeout=10) as http:
                for media in delivery.data.get("media", []):
                    response = await http.get(media["url"])
                    if response.status_code == 200:
                        delivery.media_bytes += len(response.content)
        return self._answer(delivery)

    @staticmethod
    def _answer(delivery: Delivery) -> Response:
        if delivery.answer:
            return JSONResponse(delivery.answer, status_code=201)
        return Response(status_code=204)


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
