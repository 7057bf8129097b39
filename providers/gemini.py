"""Google Gemini through google-genai: text, JSON, grounded research, images (Gemini image / Imagen) and Veo video."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from models.generation import ResearchResult, Source
from providers.base import (
    AIAuthError,
    AIContentBlockedError,
    AIInvalidOutputError,
    AIInvalidRequestError,
    AIProviderError,
    AIRateLimitError,
    AIServerError,
    AITimeoutError,
    BaseProvider,
    GeneratedImage,
    GeneratedVideo,
    Metered,
    VideoOperation,
    WorkKind,
    estimate_tokens,
)
from providers.openai_compat import retry_after_seconds
from providers.prompts import load_prompt
from providers.structured import SchemaArg, json_schema_for

try:  # google-genai prefers httpx2 (a fork of httpx with its own exception classes) when installed
    import httpx2

    _TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    _CONNECTION: tuple[type[BaseException], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the SDK build
    _TIMEOUTS = (httpx.TimeoutException,)
    _CONNECTION = (httpx.TransportError,)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
BLOCKING_FINISH_REASONS = frozenset(
    {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)
GEMINI_IMAGE_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
VEO_RATIOS = ("16:9", "9:16")
RESEARCH_SYSTEM = load_prompt("research_system")
# google.rpc.Code -> the HTTP status that means the same (google.rpc's own mapping).
GRPC_TO_HTTP = {
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}


def nearest_ratio(requested: str, supported: tuple[str, ...]) -> str:
    """The supported aspect ratio closest to the requested one (e.g. 1.91:1 -> 16:9)."""
    if requested in supported:
        return requested

    def value(ratio: str) -> float:
        w, h = ratio.split(":")
        return float(w) / float(h)

    try:
        wanted = value(requested)
    except (ValueError, ZeroDivisionError):
        return supported[0]
    return min(supported, key=lambda ratio: abs(value(ratio) - wanted))


class GeminiProvider(BaseProvider):
    name = "gemini"
    kinds = frozenset(WorkKind)

    def __init__(
        self,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        *,
        image_model: str | None = None,
        video_model: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            api_key,
            model,
            base_url,
            image_model=image_model or "gemini-2.5-flash-image",
            video_model=video_model or "veo-3.0-generate-001",
            **kwargs,
        )
        if not self._api_key:
            raise AIAuthError("no API key configured (GEMINI_API_KEY)", provider=self.name, model=model)
        self._root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._client = genai.Client(
            api_key=self._api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version=API_VERSION,
                timeout=int(self.timeout * 1000),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),  # Temporal owns retries
            ),
        )

    # -- text, JSON, research --

    async def _generate_content(
        self, model: str, prompt: str, config: types.GenerateContentConfig, kind: WorkKind, note: str = ""
    ) -> types.GenerateContentResponse:
        async def call() -> tuple[types.GenerateContentResponse, Metered]:
            response = await self._client.aio.models.generate_content(model=model, contents=prompt, config=config)
            meter = _meter(response)
            self._check_blocked(response, model, meter)
            return response, meter

        return await self._metered(kind, model, call, note=note, tokens=estimate_tokens(prompt))

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
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=temperature,
            max_output_tokens=max_tokens,
        )
        if schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = json_schema_for(schema)
        response = await self._generate_content(self.model, prompt, config, kind, note="repair" if repair else "")
        text = _text_of(response)
        if not text.strip():
            raise self._error(AIInvalidOutputError, "the answer has no text", model=self.model)
        return text

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        config = types.GenerateContentConfig(
            system_instruction=options.get("system") or RESEARCH_SYSTEM,
            temperature=options.get("temperature"),
            max_output_tokens=options.get("max_tokens"),
            tools=[types.Tool(google_search=types.GoogleSearch())],
        )
        response = await self._generate_content(self.model, query, config, WorkKind.RESEARCH)
        return ResearchResult(text=_text_of(response), sources=_grounding_sources(response))

    # -- images --

    async def generate_image(
        self,
        prompt: str,
        aspect_ratio: str = "1:1",
        *,
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> GeneratedImage:
        model = str(options.get("model") or self.image_model)
        if model.startswith("imagen"):
            return await self._imagen(model, prompt, aspect_ratio)
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=nearest_ratio(aspect_ratio, GEMINI_IMAGE_RATIOS)),
        )

        async def call() -> tuple[GeneratedImage, Metered]:
            response = await self._client.aio.models.generate_content(model=model, contents=prompt, config=config)
            meter = _meter(response)
            self._check_blocked(response, model, meter)
            for candidate in response.candidates or []:
                for part in (candidate.content.parts if candidate.content else None) or []:
                    if part.inline_data and part.inline_data.data:
                        meter.images = 1
                        return self._image(part.inline_data.data, part.inline_data.mime_type, model), meter
            raise self._error(AIInvalidOutputError, "the answer holds no image", model=model)

        return await self._metered(WorkKind.IMAGE, model, call)

    async def _imagen(self, model: str, prompt: str, aspect_ratio: str) -> GeneratedImage:
        # google-genai's generate_images is Vertex-only, so Imagen goes through the Gemini API's REST `:predict`.
        body = {
            "instances": [{"prompt": prompt}],
            "parameters": {"sampleCount": 1, "aspectRatio": nearest_ratio(aspect_ratio, IMAGEN_RATIOS)},
        }

        async def call() -> tuple[GeneratedImage, Metered]:
            data = await self._rest("post", f"models/{model}:predict", model, json=body)
            predictions = [p for p in data.get("predictions") or [] if isinstance(p, dict)]
            for prediction in predictions:
                if prediction.get("bytesBase64Encoded"):
                    image = self._image(
                        base64.b64decode(prediction["bytesBase64Encoded"]), prediction.get("mimeType"), model
                    )
                    return image, Metered(images=1)
            reasons = [str(p["raiFilteredReason"]) for p in predictions if p.get("raiFilteredReason")]
            raise self._error(
                AIContentBlockedError,
                f"no image returned (filtered: {'; '.join(reasons) or 'no reason given'})",
                model=model,
            )

        return await self._metered(WorkKind.IMAGE, model, call)

    def _image(self, data: bytes, mime_type: str | None, model: str) -> GeneratedImage:
        width = height = None
        try:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
        except Exception:  # the size is a convenience; the bytes are what matter
            pass
        return GeneratedImage(
            data=data, mime_type=mime_type or "image/png", width=width, height=height, provider=self.name, model=model
        )

    # -- video (Veo) --

    async def start_video(
        self,
        prompt: str,
        *,
        duration_seconds: int = 8,
        aspect_ratio: str = "16:9",
        sample_context: dict[str, Any] | None = None,
        **options: Any,
    ) -> VideoOperation:
        model = str(options.get("model") or self.video_model)
        ratio = nearest_ratio(aspect_ratio, VEO_RATIOS)
        # google-genai's generate_videos is Vertex-only, so Veo starts through REST `:predictLongRunning`.
        body = {
            "instances": [{"prompt": prompt}],
            "parameters": {"aspectRatio": ratio, "durationSeconds": duration_seconds},
        }

        async def call() -> tuple[VideoOperation, Metered]:
            data = await self._rest("post", f"models/{model}:predictLongRunning", model, json=body)
            name = data.get("name")
            if not isinstance(name, str) or not name:
                raise self._error(AIInvalidOutputError, "the answer names no operation", model=model)
            operation = VideoOperation(
                provider=self.name,
                model=model,
                name=name,
                done=bool(data.get("done")),
                prompt=prompt,
                duration_seconds=duration_seconds,
                aspect_ratio=ratio,
            )
            return operation, Metered(note="video started")

        return await self._metered(WorkKind.VIDEO, model, call)

    async def poll_video(self, operation: VideoOperation) -> VideoOperation:
        if operation.done and operation.video is not None:
            return operation
        model = operation.model

        async def call() -> tuple[VideoOperation, Metered]:
            pending = types.GenerateVideosOperation.model_validate({"name": operation.name})
            polled = await self._client.aio.operations.get(pending)
            if not polled.done:
                return operation.model_copy(update={"done": False}), Metered(note="video pending")
            if polled.error:
                message = str(polled.error.get("message") or polled.error)
                code = polled.error.get("code")
                # An operation's error carries a google.rpc code, not an HTTP status.
                status = GRPC_TO_HTTP.get(code, 500) if isinstance(code, int) else 500
                raise self._status_error(status, message, {}, None, model)
            result = polled.response or polled.result
            videos = (result.generated_videos if result else None) or []
            if not videos or videos[0].video is None:
                reasons = "; ".join(result.rai_media_filtered_reasons or []) if result else ""
                raise self._error(AIContentBlockedError, f"no video returned ({reasons or 'filtered'})", model=model)
            video = videos[0].video
            data = video.video_bytes
            if not data:
                data = await self._client.aio.files.download(file=_file_name(video.uri or ""))
            generated = GeneratedVideo(
                data=data,
                mime_type=video.mime_type or "video/mp4",
                duration_seconds=float(operation.duration_seconds),
            )
            done = operation.model_copy(update={"done": True, "video_uri": video.uri, "video": generated})
            return done, Metered(video_seconds=float(operation.duration_seconds), note="video done")

        return await self._metered(WorkKind.VIDEO, model, call)

    # -- HTTP and errors --

    async def _rest(self, method: str, path: str, model: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self._root}/{API_VERSION}/{path}"
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.request(method, url, json=json, headers={"x-goog-api-key": self._api_key})
        if response.status_code >= 400:
            try:
                details: Any = response.json()
            except ValueError:
                details = {"error": {"message": response.text[:500]}}
            error = details.get("error", details) if isinstance(details, dict) else {}
            message = str(error.get("message") or response.reason_phrase) if isinstance(error, dict) else response.text
            raise self._status_error(response.status_code, message, details, response.headers, model)
        data = response.json()
        return data if isinstance(data, dict) else {}

    def _check_blocked(self, response: types.GenerateContentResponse, model: str, meter: Metered) -> None:
        """Blocked answers are still billed: the error carries what the call consumed."""
        try:
            self._raise_if_blocked(response, model)
        except AIProviderError as error:
            error.metered = meter
            raise

    def _raise_if_blocked(self, response: types.GenerateContentResponse, model: str) -> None:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            reason = getattr(feedback.block_reason, "value", feedback.block_reason)
            raise self._error(AIContentBlockedError, f"the prompt was blocked ({reason})", model=model)
        for candidate in response.candidates or []:
            reason = str(getattr(candidate.finish_reason, "value", candidate.finish_reason) or "")
            if reason in BLOCKING_FINISH_REASONS:
                raise self._error(AIContentBlockedError, f"the answer was blocked (finishReason {reason})", model=model)
        if not response.candidates:
            raise self._error(AIInvalidOutputError, "the response has no candidates", model=model)

    def _status_error(self, status: int, message: str, details: Any, headers: Any, model: str) -> AIProviderError:
        text = f"HTTP {status}: {message}"
        if status == 429:
            retry_after = retry_after_seconds(headers) if headers is not None else None
            if retry_after is None:
                retry_after = _retry_delay(details)
            return self._error(AIRateLimitError, text, model=model, retry_after=retry_after, status_code=status)
        if status in (401, 403) or "API_KEY_INVALID" in str(details) or "API key not valid" in message:
            return self._error(AIAuthError, text, model=model, status_code=status)
        if status == 408 or status == 504:
            return self._error(AITimeoutError, text, model=model, status_code=status)
        if status >= 500:
            return self._error(AIServerError, text, model=model, status_code=status)
        if "safety" in message.lower() or "blocked" in message.lower():
            return self._error(AIContentBlockedError, text, model=model, status_code=status)
        return self._error(AIInvalidRequestError, text, model=model, status_code=status)

    def _map_error(self, exc: Exception, model: str) -> AIProviderError:
        if isinstance(exc, genai_errors.APIError):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            return self._status_error(
                int(exc.code or 500), str(exc.message or exc.status or ""), exc.details, headers, model
            )
        if isinstance(exc, _TIMEOUTS):
            return self._error(AITimeoutError, f"timed out after {self.timeout:g} s", model=model)
        if isinstance(exc, _CONNECTION):
            return self._error(AIServerError, f"connection failed: {type(exc).__name__}: {exc}", model=model)
        if isinstance(exc, ValueError):
            return self._error(AIInvalidRequestError, str(exc), model=model)
        return super()._map_error(exc, model)


def _meter(response: types.GenerateContentResponse) -> Metered:
    usage = response.usage_metadata
    if usage is None:
        return Metered()
    # Thinking tokens are billed as output on the 2.5 models.
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return Metered(
        input_tokens=usage.prompt_token_count or 0,
        output_tokens=output,
        cached_input_tokens=usage.cached_content_token_count or 0,
    )


def _text_of(response: types.GenerateContentResponse) -> str:
    if not response.candidates or response.candidates[0].content is None:
        return ""
    parts = response.candidates[0].content.parts or []
    return "".join(part.text for part in parts if part.text and not part.thought)


def _grounding_sources(response: types.GenerateContentResponse) -> list[Source]:
    sources: list[Source] = []
    seen: set[str] = set()
    for candidate in response.candidates or []:
        metadata = candidate.grounding_metadata
        for chunk in (metadata.grounding_chunks if metadata else None) or []:
            web = chunk.web
            if web is None or not web.uri or web.uri in seen:
                continue
            if not web.uri.startswith(("http://", "https://")) or len(web.uri) < 8:
                continue
            seen.add(web.uri)
            sources.append(Source(url=web.uri[:2000], title=(web.title or web.domain or "")[:500]))
    return sources


def _retry_delay(details: Any) -> float | None:
    """Gemini puts the wait in google.rpc.RetryInfo: {"retryDelay": "7s"}."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in (error.get("details") or []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and isinstance(item.get("retryDelay"), str):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", item["retryDelay"].strip())
            if match:
                return float(match.group(1))
    return None


def _file_name(uri: str) -> str:
    """`files/<id>` from a Veo video URI such as https://.../v1beta/files/abc123:download?alt=media."""
    match = re.search(r"files/([a-z0-9]+)", uri)
    if match is None:
        raise ValueError(f"cannot find a file name in the video URI {uri!r}")
    return f"files/{match.group(1)}"
