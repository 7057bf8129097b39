"""problem+json (RFC 9457) for every error the API answers; no stack trace ever reaches a client."""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error with an HTTP status and a sentence for the client."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra


def not_found(what: str) -> Problem:
    return Problem(404, f"{what} was not found")


def problem_response(status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://content-pipeline.dev/problems/{status}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_error(err: Any) -> dict[str, str]:
    location = [str(part) for part in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        # pydantic puts the character offset where the field would be.
        offset = location[1] if len(location) > 1 else "?"
        return {"field": "body", "message": f"the body is not valid JSON (error at character {offset})", "type": "json_invalid"}
    return {
        "field": ".".join(part for part in location if part != "body"),
        "message": str(err.get("msg", "invalid")),
        "type": str(err.get("type", "value_error")),
    }


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(err) for err in exc.errors()]
        fields = ", ".join(e["field"] or "body" for e in errors)
        return problem_response(422, f"the request is not valid: {fields}", title="Unprocessable Content", errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error occurred; it has been logged")
