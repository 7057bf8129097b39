"""OfflineProvider: the gateway's interface served from the sample generators, with injectable latency and faults."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

from models.generation import ResearchResult
from providers.base import (
    AIAuthError,
    AIRateLimitError,
    AITimeoutError,
    BaseProvider,
    GeneratedImage,
    GeneratedVideo,
    Metered,
    VideoOperation,
    WorkKind,
    aspect_size,
    estimate_tokens,
)
from providers.offline.images import draw_png
from providers.offline.research import sample_research
from providers.offline.sampling import sample_text
from providers.offline.schema_fill import sample_for
from providers.offline.video import load_encoder, render_video
from providers.structured import SchemaArg

OFFLINE_MODEL = "offline-sample"
# Rendering a sample video used to hold the GIL in Python loops (a gradient drawn row by row, per frame): in a
# thread it stalled the worker's event loop (a 10 ms ticker lagged 60-130 ms with three renders). The still part is
# now drawn once per video, and videos are rendered in processes of their own; until those have started (they import
# Pillow and the encoder for a second or more), the now cheap rendering runs in a thread instead of waiting.
VIDEO_RENDER_PROCESSES = max(1, min(2, os.cpu_count() or 1))
# A render in a thread is now ~0.2 s of CPU (six at once lag a 10 ms ticker by 50 ms at most), while each renderer
# process costs ~2 s of CPU to start (a spawned interpreter imports the worker's modules): started at the first video
# they took that CPU from the very pipeline whose videos they were to render (ULTIMATE: six at once). So the first
# videos render in threads, and only a worker that keeps rendering starts its processes.
THREAD_RENDERS_BEFORE_POOL = 12
# Renders started at submit and not yet collected by a poll (a job cancelled between the two never polls): the
# oldest are dropped beyond this many, so that forgotten videos never pile up in the worker's memory.
PENDING_RENDERS = 32
Fault = Literal["none", "rate_limit", "timeout", "invalid_json", "auth"]


class OfflineProvider(BaseProvider):
    """Sample content without any network: for fresh machines, demos, benchmarks and failure tests."""

    name = "offline"
    kinds = frozenset(WorkKind)

    def __init__(
        self,
        api_key: str | None = None,
        model: str = OFFLINE_MODEL,
        base_url: str | None = None,
        *,
        latency_ms: int = 0,
        jitter_ms: int = 0,
        fault: Fault = "none",
        fault_every: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key, model, base_url, **kwargs)
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.fault = fault
        self.fault_every = fault_every
        self.calls = 0
        self._jitter = random.Random(0)
        self._video_renderer: ProcessPoolExecutor | None = None
        self._renderer_lock = threading.Lock()
        self._renderer_ready = threading.Event()
        self._renders: dict[str, asyncio.Future[tuple[bytes, str]]] = {}
        self._warming = False  # the renderer's processes are being started
        self._thread_renders = 0

    def _renderer(self) -> ProcessPoolExecutor:
        """The process that renders videos, started on first use (a fresh interpreter: `spawn` never forks the
        worker's threads)."""
        with self._renderer_lock:
            if self._video_renderer is None:
                self._video_renderer = ProcessPoolExecutor(
                    max_workers=VIDEO_RENDER_PROCESSES, mp_context=multiprocessing.get_context("spawn")
                )
            return self._video_renderer

    def _warm_renderer(self) -> None:
        """Starts the renderer's processes once this worker keeps rendering videos: off the event loop (starting a
        process blocks), while the renders go on in threads."""
        if self._video_renderer is None and not self._warming:
            self._warming = True
            asyncio.get_running_loop().run_in_executor(None, self._start_renderer)

    def _start_renderer(self) -> None:
        renderer = self._renderer()
        for started in [renderer.submit(load_encoder) for _ in range(VIDEO_RENDER_PROCESSES)]:
            started.result()
        self._renderer_ready.set()

    async def _render(self, prompt: str, width: int, height: int, seconds: int) -> tuple[bytes, str]:
        if self._video_renderer is not None and self._renderer_ready.is_set():
            return await asyncio.get_running_loop().run_in_executor(
                self._video_renderer, render_video, prompt, width, height, seconds
            )
        self._thread_renders += 1
        if self._thread_renders > THREAD_RENDERS_BEFORE_POOL:
            self._warm_renderer()
        return await asyncio.to_thread(render_video, prompt, width, height, seconds)

    async def close(self) -> None:
        """Stops the video renderer, if it was started, and drops the renders no poll collected."""
        for rendering in self._renders.values():
            rendering.cancel()
        self._renders.clear()
        self._warming = False
        renderer, self._video_renderer = self._video_renderer, None
        self._renderer_ready.clear()
        if renderer is not None:
            await asyncio.to_thread(renderer.shutdown, wait=True, cancel_futures=True)

    # -- latency and injected faults --

    async def _before_call(self, kind: WorkKind) -> bool:
        """Sleep the configured latency; raise the injected fault on every n-th call. True: return bad JSON."""
        self.calls += 1
        number = self.calls  # this call's own number: calls that overlap during the latency keep theirs
        delay = self.latency_ms + (self._jitter.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if self.fault == "none" or self.fault_every <= 0 or number % self.fault_every:
            return False
        if self.fault == "rate_limit":
            raise AIRateLimitError(
                "injected rate limit", provider=self.name, model=self.model, retry_after=1.0, status_code=429
            )
        if self.fault == "timeout":
            raise AITimeoutError("injected timeout", provider=self.name, model=self.model)
        if self.fault == "auth":
            raise AIAuthError("injected auth failure: the API key was refused", provider=self.name, model=self.model)
        return self.fault == "invalid_json" and kind is WorkKind.JSON

    async def _run(
        self, kind: WorkKind, produce: Callable[[bool], tuple[Any, Metered]], note: str = "", *, tokens: int = 0
    ) -> Any:
        async def call() -> tuple[Any, Metered]:
            broken = await self._before_call(kind)
            return produce(broken)

        return await self._metered(kind, self.model, call, note=note, tokens=tokens)

    # -- text, JSON, research --

    async def _complete(
        self,
        prompt: str,
        *,
        kind: WorkKind,
        schema: SchemaArg | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample_context: dict[str, Any] | None = None,
        repair: bool = False,
    ) -> str:
        context = dict(sample_context or {})

        def produce(broken: bool) -> tuple[str, Metered]:
            if broken:
                text = '{"sample": "this JSON is broken on purpose (offline_fault=invalid_json)",'
            elif schema is None:
                text = sample_text(prompt, context)
            else:
                text = json.dumps(self.sample_for(schema, prompt, context), ensure_ascii=False)
            return text, Metered(
                input_tokens=estimate_tokens(prompt) + estimate_tokens(system or ""),
                output_tokens=estimate_tokens(text),
            )

        estimate = estimate_tokens(prompt) + estimate_tokens(system or "")
        result: str = await self._run(kind, produce, note="repair" if repair else "", tokens=estimate)
        return result

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        context = dict(sample_context or {})

        def produce(_: bool) -> tuple[ResearchResult, Metered]:
            research = sample_research(query, context)
            return research, Metered(input_tokens=estimate_tokens(query), output_tokens=estimate_tokens(research.text))

        result: ResearchResult = await self._run(WorkKind.RESEARCH, produce, tokens=estimate_tokens(query))
        return result

    def sample_for(self, schema: SchemaArg, prompt: str, context: dict[str, Any]) -> Any:
        """A JSON value that satisfies `schema`: made to measure for the stage schemas, generic otherwise."""
        return sample_for(schema, prompt, context)

    # -- media --

    async def generate_image(
        self,
        prompt: str,
        aspect_ratio: str = "1:1",
        *,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> GeneratedImage:

        async def call() -> tuple[GeneratedImage, Metered]:
            await self._before_call(WorkKind.IMAGE)
            width, height = aspect_size(aspect_ratio, 1024)
            data = await asyncio.to_thread(draw_png, prompt, width, height)
            image = GeneratedImage(
                data=data, mime_type="image/png", width=width, height=height, provider=self.name, model=self.model
            )
            return image, Metered(input_tokens=estimate_tokens(prompt), images=1)

        result: GeneratedImage = await self._metered(WorkKind.IMAGE, self.model, call)
        return result

    async def start_video(
        self,
        prompt: str,
        *,
        duration_seconds: int = 8,
        aspect_ratio: str = "16:9",
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> VideoOperation:
        aspect_size(aspect_ratio, 16)  # refuse a malformed ratio now, not at the first poll

        def produce(_: bool) -> tuple[VideoOperation, Metered]:
            digest = hashlib.sha256(f"{prompt}|{duration_seconds}|{aspect_ratio}".encode()).hexdigest()[:16]
            operation = VideoOperation(
                provider=self.name,
                model=self.model,
                name=f"offline-video-{digest}",
                prompt=prompt,
                duration_seconds=duration_seconds,
                aspect_ratio=aspect_ratio,
            )
            return operation, Metered(input_tokens=estimate_tokens(prompt), note="video started")

        started: VideoOperation = await self._run(WorkKind.VIDEO, produce)
        # Like a hosted model, the render begins at the submit, not at the first poll; the poll that collects it
        # is ready at once (it waits for the render if need be), so the caller polls without a guessed wait.
        self._hold_render(started)
        return started.model_copy(update={"poll_after_seconds": 0.0})

    def _begin_render(self, operation: VideoOperation) -> asyncio.Future[tuple[bytes, str]]:
        """The operation's render, started now in the background."""
        seconds = max(1, min(operation.duration_seconds, 8))
        width, height = aspect_size(operation.aspect_ratio, 640)
        rendering = asyncio.ensure_future(self._render(operation.prompt, width, height, seconds))
        rendering.add_done_callback(lambda done: done.cancelled() or done.exception())  # never "never retrieved"
        return rendering

    def _hold_render(self, operation: VideoOperation) -> None:
        """Starts the render at the submit and keeps it for the operation's poll."""
        self._renders[operation.name] = self._begin_render(operation)
        while len(self._renders) > PENDING_RENDERS:
            self._renders.pop(next(iter(self._renders))).cancel()

    def _take_render(self, operation: VideoOperation) -> asyncio.Future[tuple[bytes, str]]:
        """The render started at the submit if this worker still holds it; else (another worker's submit, a
        restart, an evicted one) it is rendered again now: the same prompt gives the same video."""
        rendering = self._renders.pop(operation.name, None)
        if rendering is None or rendering.cancelled() or rendering.get_loop() is not asyncio.get_running_loop():
            return self._begin_render(operation)
        return rendering

    async def poll_video(self, operation: VideoOperation) -> VideoOperation:
        if operation.done and operation.video is not None:
            return operation

        async def call() -> tuple[VideoOperation, Metered]:
            rendering = self._take_render(operation)  # rendering while the call's latency passes
            try:
                await self._before_call(WorkKind.VIDEO)
                data, mime = await rendering
            finally:
                rendering.cancel()  # a no-op once done; a failed call leaves no orphan render behind
            seconds = max(1, min(operation.duration_seconds, 8))
            width, height = aspect_size(operation.aspect_ratio, 640)
            video = GeneratedVideo(
                data=data, mime_type=mime, duration_seconds=float(seconds), width=width, height=height
            )
            done = operation.model_copy(update={"done": True, "video": video})
            return done, Metered(video_seconds=float(seconds), note="video done")

        result: VideoOperation = await self._metered(WorkKind.VIDEO, self.model, call)
        return result
