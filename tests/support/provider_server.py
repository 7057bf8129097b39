"""A local HTTP server that speaks Gemini's REST API and OpenAI/Perplexity chat completions, scripted per test.

The real SDKs are pointed at it through base_url. Each route answers from a queue of `Reply`s the test
put there ("first 429 with Retry-After: 7, then 200") or, when its queue is empty, with a default answer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# route keys
GENERATE = "generateContent"
PREDICT = "predict"
PREDICT_LONG = "predictLongRunning"
OPERATION = "operation"
DOWNLOAD = "download"
CHAT = "chat"


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class Recorded:
    route: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any

    @property
    def prompt_text(self) -> str:
        """All the text the client sent, for assertions about prompts."""
        return json.dumps(self.json, ensure_ascii=False) if self.json is not None else ""


# ---- response bodies -------------------------------------------------------------------------------------


def gemini_text(
    text: str,
    *,
    prompt_tokens: int = 12,
    output_tokens: int = 34,
    finish_reason: str = "STOP",
    grounding: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "finishReason": finish_reason,
        "index": 0,
    }
    if grounding is not None:
        candidate["groundingMetadata"] = {
            "webSearchQueries": ["sample query"],
            "groundingChunks": [{"web": {"uri": uri, "title": title}} for uri, title in grounding],
        }
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": "test",
    }


def gemini_prompt_blocked(reason: str = "SAFETY") -> dict[str, Any]:
    return {"promptFeedback": {"blockReason": reason}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}


def gemini_image(data: bytes, mime_type: str = "image/png") -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"inlineData": {"mimeType": mime_type, "data": base64.b64encode(data).decode()}}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1290, "totalTokenCount": 1299},
    }


def google_error(status: int, message: str, status_name: str = "", details: list[Any] | None = None) -> dict[str, Any]:
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name or names.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def chat_completion(
    content: str,
    *,
    model: str = "test-model",
    prompt_tokens: int = 20,
    completion_tokens: int = 40,
    finish_reason: str = "stop",
    citations: list[str] | None = None,
    search_results: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    if citations is not None:
        body["citations"] = citations
    if search_results is not None:
        body["search_results"] = search_results
    return body


def openai_error(message: str, *, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- the server ------------------------------------------------------------------------------------------


class ProviderServer:
    """Start with `start()`; `base_url` is http://127.0.0.1:<port>. Thread-safe enough for one test at a time."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Reply]] = {}
        self.requests: list[Recorded] = []
        self.files: dict[str, bytes] = {}
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, route: str, *replies: Reply) -> None:
        with self._lock:
            self.queues.setdefault(route, deque()).extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.queues.clear()
            self.requests.clear()
            self.files.clear()

    def requests_for(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if r.route == route]

    def _next(self, route: str) -> Reply | None:
        with self._lock:
            queue = self.queues.get(route)
            return queue.popleft() if queue else None

    # -- routing --

    def _route_of(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        if method == "POST" and re.fullmatch(r"/(v1/)?chat/completions", path):
            return CHAT, {}
        match = re.fullmatch(r"/v1beta/models/([^/:]+):(generateContent|predict|predictLongRunning)", path)
        if method == "POST" and match:
            return match.group(2), {"model": match.group(1)}
        match = re.fullmatch(r"/v1beta/(models/[^/]+/operations/[^/]+)", path)
        if method == "GET" and match:
            return OPERATION, {"name": match.group(1)}
        match = re.fullmatch(r"/v1beta/files/([a-z0-9]+):download", path)
        if method == "GET" and match:
            return DOWNLOAD, {"file": match.group(1)}
        return "unknown", {}

    def _default(self, route: str, params: dict[str, str]) -> Reply:
        if route == GENERATE:
            return Reply(json=gemini_text("default answer"))
        if route == CHAT:
            return Reply(json=chat_completion("default answer"))
        if route == PREDICT:
            png = tiny_png()
            return Reply(
                json={"predictions": [{"bytesBase64Encoded": base64.b64encode(png).decode(), "mimeType": "image/png"}]}
            )
        if route == PREDICT_LONG:
            return Reply(json={"name": f"models/{params['model']}/operations/op123"})
        if route == OPERATION:
            uri = f"{self.base_url}/v1beta/files/vid123:download?alt=media"
            return Reply(
                json={
                    "name": params["name"],
                    "done": True,
                    "response": {
                        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                        "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]},
                    },
                }
            )
        if route == DOWNLOAD:
            data = self.files.get(params["file"])
            if data is None:
                return Reply(status=404, json=google_error(404, "file not found"))
            return Reply(body=data, content_type="video/mp4")
        return Reply(status=404, json={"error": {"message": "no such route in the test server"}})

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        route, params = self._route_of(request.method, request.url.path)
        with self._lock:
            self.requests.append(
                Recorded(
                    route=route,
                    method=request.method,
                    path=request.url.path,
                    query=request.url.query,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=payload,
                )
            )
        reply = self._next(route) or self._default(route, params)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.body if reply.body is not None else json.dumps(reply.json).encode()
        return Response(body, status_code=reply.status, headers=reply.headers, media_type=reply.content_type)

    # -- life cycle --

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="provider-test-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the provider test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
