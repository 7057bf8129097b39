"""The FastAPI app factory: a lifespan that owns the DB engine and the Temporal client, routers, errors."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.errors import ProblemDetail, install_error_handlers
from api.events import JobEventHub
from api.limits import install_limits
from api.logcontext import RequestLogScope, bind_route_ids
from api.routes import (
    approvals,
    artifacts,
    channels,
    companies,
    health,
    job_starts,
    jobs,
    media,
    pipelines,
    streams,
    tenant,
)
from api.routes.company_lookup import router as company_lookup_router
from api.studio.pages import install_studio
from models.db import Database
from models.logs import install_logging
from models.settings import Settings, get_settings

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# Swagger UI's and ReDoc's scripts, stylesheet and favicon, served from the fastapi-offline package instead of a
# CDN: the docs work on a machine without internet.
DOCS_ASSETS = "/docs/static"


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


DESCRIPTION = """
Every route under `/api/v1` takes `Authorization: Bearer <api key>` (keys come from
`content-pipeline tenant create` and `content-pipeline apikey create`). Roles nest: marketer < supervisor < admin.

- No or bad key: **401**. A role that may not do the thing: **403**. Another tenant's object: **404**.
- Errors are `application/problem+json` (RFC 9457); validation errors list the fields in `errors`.
- Start endpoints answer **202** `{"jobId"}` at once and honour an `Idempotency-Key` header; they are
  rate-limited per tenant (**429** with `Retry-After`). Bodies over 1 MiB get **413**.
- A job's progress streams as Server-Sent Events from `/api/v1/ai/jobs/{id}/stream/`.
"""


def install_openapi(app: FastAPI) -> None:
    """The generated document plus the problem+json schema every error response refers to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=DESCRIPTION, routes=app.routes
        )
        problem = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(problem.pop("$defs", {}))
        schemas["ProblemDetail"] = problem
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# What a browser page of a configured origin may send and read: the API's methods and the headers it takes
# (bearer key, JSON, Idempotency-Key, an SSE stream's Last-Event-ID) and answers with (Retry-After, Location).
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"]
CORS_EXPOSED_HEADERS = ["Retry-After", "Location"]


def install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS for the origins in CORS_ALLOW_ORIGINS only; with none configured, no CORS header is ever sent. No
    credentials: the API authenticates with a bearer key, never with cookies (the studio's are same-origin)."""
    if not settings.cors_allow_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_allow_origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        allow_credentials=False,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    install_logging()  # JSON lines with the request's ids, uvicorn's too (LOG_FORMAT=text: plain lines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database.from_url(settings.resolved_database_url())
        app.state.events = JobEventHub(settings.resolved_database_url())
        app.state.temporal = None
        app.state.connect_temporal = lambda: connect_temporal(settings)
        try:
            app.state.temporal = await asyncio.wait_for(app.state.connect_temporal(), timeout=10)
        except Exception as exc:  # the API still serves reads; /readyz reports the engine as down
            logger.warning("Temporal at %s is not reachable (%s); starting without it", settings.temporal_address, exc)
        yield
        await app.state.events.close()
        await app.state.db.close()

    app: FastAPI = FastAPIOffline(
        title="content-pipeline",
        version="0.1.0",
        summary="AI content-marketing pipeline: research, personas, topics, blog posts, social posts, publishing.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        # No spec validation by swagger.io's online validator: nothing on the page leaves the app.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_limits(app)
    install_openapi(app)
    install_cors(app, settings)
    app.add_middleware(RequestLogScope)
    app.router.dependencies.append(Depends(bind_route_ids))
    app.include_router(health.router)
    app.include_router(company_lookup_router, prefix=API_PREFIX)  # before companies: /companies/{id}
    app.include_router(companies.router, prefix=API_PREFIX)
    app.include_router(channels.company_router, prefix=API_PREFIX)
    app.include_router(channels.router, prefix=API_PREFIX)
    app.include_router(artifacts.router, prefix=API_PREFIX)
    app.include_router(job_starts.router, prefix=API_PREFIX)
    app.include_router(jobs.router, prefix=API_PREFIX)
    app.include_router(streams.router, prefix=API_PREFIX)
    app.include_router(pipelines.router, prefix=API_PREFIX)
    app.include_router(media.router, prefix=API_PREFIX)
    app.include_router(approvals.inbox_router, prefix=API_PREFIX)
    app.include_router(tenant.router, prefix=API_PREFIX)
    install_studio(app)
    return app
