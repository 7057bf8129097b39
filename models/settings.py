"""Every setting of the product in one pydantic-settings class, read from the environment and `.env`."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Where things are. DATABASE_URL unset means the embedded PostgreSQL under DATA_DIR/pg.
    data_dir: Path = Field(default=PROJECT_ROOT / ".data")
    database_url: str | None = None
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    # Appended to every task queue name (pipeline, ai, media, publish): lets several deployments or
    # test runs share one Temporal namespace without taking each other's tasks.
    task_queue_suffix: str = ""

    # AI providers. `auto`: real providers where a key is set, else offline.
    ai_provider: Literal["auto", "offline", "gemini", "perplexity", "openai"] = "auto"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    gemini_text_model: str = "gemini-2.5-pro"
    gemini_image_model: str = "gemini-2.5-flash-image"
    imagen_model: str = "imagen-4.0-generate-001"
    veo_model: str = "veo-3.0-generate-001"
    perplexity_api_key: SecretStr | None = None
    perplexity_base_url: str = "https://api.perplexity.ai"
    perplexity_model: str = "sonar-pro"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    ai_timeout_seconds: float = 120.0
    # Provider chains per kind of work for AI_PROVIDER=auto, tried in order; a retryable failure (rate limit,
    # timeout, 5xx) moves on to the next. Providers without a key are skipped; an empty chain means offline.
    ai_research_providers: str = "perplexity,gemini,openai"
    ai_text_providers: str = "gemini,openai,perplexity"
    ai_json_providers: str = "gemini,openai,perplexity"
    ai_image_providers: str = "gemini"
    ai_video_providers: str = "gemini"
    # Gemini images: "gemini" = the Gemini image model (GEMINI_IMAGE_MODEL), "imagen" = IMAGEN_MODEL.
    gemini_image_backend: Literal["gemini", "imagen"] = "gemini"
    # List prices used for cost; unset = providers/pricing.json.
    ai_pricing_file: Path | None = None

    # Company lookup ("New company" search): Google's Programmable Search JSON API when both are set, else the
    # research providers' grounded search, else offline samples. The base URL is for tests (a local fake).
    google_search_api_key: SecretStr | None = None
    google_search_engine_id: str | None = None
    google_search_base_url: str = "https://www.googleapis.com"

    # Provider rate limits: requests and tokens (input + output) a minute per provider, shared by every worker
    # process through PostgreSQL (providers/rate_limits.py); a call waits for its share instead of running into
    # 429s. 0 = no limit. The defaults are conservative paid tier-1 figures (Gemini 2.5 Pro 150 RPM / 2M TPM;
    # gpt-4o-mini 500 RPM / 200k TPM; Perplexity sonar-pro 50 RPM); set your account's own limits.
    gemini_rpm: int = 150
    gemini_tpm: int = 2_000_000
    openai_rpm: int = 500
    openai_tpm: int = 200_000
    perplexity_rpm: int = 50
    perplexity_tpm: int = 0
    # The offline provider has no limits of its own; these are generous, for load tests of the limiter.
    offline_rpm: int = 60_000
    offline_tpm: int = 100_000_000

    # Offline provider knobs for benchmarks and failure tests.
    offline_latency_ms: int = 0
    offline_jitter_ms: int = 0
    offline_fault: Literal["none", "rate_limit", "timeout", "invalid_json", "auth"] = "none"
    offline_fault_every: int = 0

    # Generated images and videos: files under MEDIA_DIR (default DATA_DIR/media), rows in media_asset.
    media_dir: Path | None = None
    # Publishing and tenant notifications over webhooks.
    webhook_timeout_seconds: float = 10.0
    # Webhooks may not point at loopback, private, link-local or other non-public addresses (the API's own
    # network) unless this is set: for a receiver on this machine or the LAN (the demo, tests, a self-hosted
    # install).
    webhook_allow_private_networks: bool = False

    # Worker. AI and media activities mostly wait on the network (a video's render is waited for on a workflow
    # timer, not in a slot), and provider calls are bounded by the providers' rate limits above, shared by every
    # worker: these per-worker slot counts only guard the worker's memory, so they are high.
    worker_ai_concurrency: int = 100
    worker_media_concurrency: int = 100
    worker_pipeline_concurrency: int = 20
    worker_publish_concurrency: int = 10
    worker_graceful_shutdown_seconds: float = 30.0
    # A stage's progress reports reach its job's row (and its stream) at most this often: the newest one, written
    # behind the stage so that it never waits for a commit; the last one goes in with the job's end.
    progress_flush_ms: int = 500
    # How often a worker looks for workflows that ended without recording it (terminated in the Web UI, timed
    # out) and ends their rows; one worker process of the deployment sweeps at a time.
    reconcile_every_seconds: float = 5.0
    # Workflows the worker keeps in memory between their tasks (Temporal's sticky cache; the SDK default is 1,000).
    # A pipeline parked at a gate for days need not stay in memory: when its gate is decided (or a timer fires),
    # the worker replays it from its history, which costs milliseconds for our small histories. Fewer cached
    # workflows keep the worker's memory bounded however many pipelines wait: 10,000 parked stay under 400 MB.
    worker_max_cached_workflows: int = Field(default=500, ge=0)

    # Channels (connected accounts on Bluesky, Mastodon...). CHANNEL_KEYS: comma-separated Fernet keys, the first
    # encrypting (models/credentials.py); unset, a key is made once under the data directory.
    channel_keys: SecretStr | None = None
    # A PDS or an instance on a private address (a local PDS for `make dev`) is refused unless this is set.
    channels_allow_private_networks: bool = False
    # One request to a platform; and how long before a post is due its channel is checked (the daily check runs
    # at CHANNEL_CHECK_HOUR_UTC).
    channel_timeout_seconds: float = Field(default=20.0, gt=0)
    channel_check_ahead_minutes: int = Field(default=60, ge=1)
    channel_check_hour_utc: int = Field(default=6, ge=0, le=23)

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    # API processes `make dev` (the dev stack) runs behind one port: 0 = one per CPU core, 1 = a single process.
    api_processes: int = 0
    # Job streams (SSE): a keep-alive comment this often, and how long a signed stream token lives.
    sse_keepalive_seconds: float = 15.0
    stream_token_ttl_seconds: int = 60
    # Start requests (every POST that starts a job or a pipeline) per tenant and minute, by tier; a burst
    # of that many is allowed, then requests are refused with 429 and Retry-After until tokens refill.
    rate_limit_free_per_minute: int = 20
    rate_limit_pro_per_minute: int = 60
    rate_limit_ultimate_per_minute: int = 240
    # The studio (/studio/): how long a sign-in lasts (a revoked key ends its sessions at once).
    studio_session_hours: float = Field(default=12.0, gt=0)

    # CORS: browser origins (`https://app.example`) that may call the API from their pages, as a comma-separated
    # list or a JSON list in CORS_ALLOW_ORIGINS. None by default: no CORS headers at all, same-origin only.
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list):
            # A browser's Origin never ends in a slash: `https://app.example/` would match nothing.
            cleaned = [origin.strip().rstrip("/") if isinstance(origin, str) else origin for origin in value]
            return [origin for origin in cleaned if origin != ""]
        return value

    @property
    def embedded_pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    def resolved_database_url(self) -> str:
        """DATABASE_URL, or the running embedded server's URL when it is unset."""
        return self.database_url or embedded_database_url(self.embedded_pg_dir)

    def temporal_ui_link(self, workflow_id: str) -> str:
        return f"{self.temporal_ui_url}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"


def psycopg_url(url: str) -> str:
    """Any PostgreSQL URL as SQLAlchemy's psycopg 3 URL (the driver works both sync and async)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got scheme {url.split(':', 1)[0]!r}")


def embedded_database_url(pg_dir: Path) -> str:
    """The running embedded server's URL, read from its postmaster.pid (port and socket directory)."""
    pid_file = pg_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        port, socket_dir = lines[3].strip(), lines[4].strip()
    except (OSError, IndexError) as exc:
        raise RuntimeError(
            f"DATABASE_URL is not set and the embedded PostgreSQL under {pg_dir} is not running: "
            "start the stack with `content-pipeline dev` or set DATABASE_URL"
        ) from exc
    host = socket_dir or "127.0.0.1"
    return f"postgresql://postgres@/postgres?host={host}&port={port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
