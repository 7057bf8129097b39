"""Log ids for every request: a scope per request, joined by the route's pipeline and job ids (and the tenant,
bound in api/deps.py once the API key is resolved), so the request's lines and uvicorn's access line carry them."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from models.logs import bind_log_ids, close_log_scope, open_log_scope

ROUTE_IDS = ("pipeline_id", "job_id")


class RequestLogScope:
    """ASGI middleware: a fresh log scope for each HTTP request (outermost, so the access line is inside it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = open_log_scope()
        await self.app(scope, receive, send)
        # Closed only when the request went well: the handler of unexpected errors runs outside this middleware (in
        # Starlette's ServerErrorMiddleware), as does uvicorn's own error line, but in this request's task, which
        # ends with the request; those lines need the ids most.
        close_log_scope(token)


async def bind_route_ids(request: Request) -> None:
    """A dependency of every route: the path's `pipeline_id` and `job_id`, when it has them, join the log ids."""
    given = {name: request.path_params.get(name) for name in ROUTE_IDS}
    bind_log_ids(**{name: str(value)[:100] for name, value in given.items() if value is not None})
