"""problem+json (RFC 9457) for every error the API answers; no stack trace ever reaches a client."""

import logging
from http import HTTPStatus
from types import TracebackType
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's detail for a body it cannot decode
# How long a client should wait before retrying a request refused because a store (PostgreSQL) is away.
OUTAGE_RETRY_AFTER_SECONDS = 5
# Server errors that mean "not now" rather than "never": the connection is gone or refused (class 08), the server
# lacks resources such as connection slots (class 53), or it is shutting down, starting up or ended the session.
UNREACHABLE_SQLSTATE_CLASSES = ("08", "53")
UNREACHABLE_SQLSTATES = {"57P01", "57P02", "57P03", "57P05"}
DATABASE_DRIVERS = ("sqlalchemy", "psycopg", "psycopg_pool")


class Problem(Exception):
    """An error with an HTTP status and a sentence for the client."""

    def __init__(
        self, status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra


class FieldError(BaseModel):
    field: str = Field(description="the field's dotted path; `body` for the body as a whole", examples=["platforms.0"])
    message: str = Field(examples=["Input should be 'x', 'linkedin', 'instagram', 'facebook', 'threads' or 'bluesky'"])
    type: str = Field(examples=["enum"])


class ProblemDetail(BaseModel):
    """RFC 9457 problem details: every error the API answers has this shape."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(examples=["https://content-pipeline.dev/problems/404"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(ge=400, le=599, examples=[404])
    detail: str = Field(examples=["the company was not found"])
    errors: list[FieldError] | None = Field(
        default=None, description="validation errors only: what is wrong, field by field"
    )


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry: problem+json with the ProblemDetail schema (added to the document by api.main)."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}},
    }


def problems(**codes: str) -> dict[int | str, dict[str, Any]]:
    """Extra documented errors for one route: problems(_409="a pipeline is already running")."""
    return {int(code.lstrip("_")): problem(text) for code, text in codes.items()}


# What every authenticated route can answer.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem("missing or invalid API key"),
    403: problem("the key's role may not do this"),
    404: problem("no such object in the caller's tenant"),
    422: problem("the request is not valid; `errors` lists the fields"),
}


def not_found(what: str) -> Problem:
    return Problem(404, f"{what} was not found")


def problem_response(
    status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://content-pipeline.dev/problems/{status}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc`, or what it wraps, says PostgreSQL cannot be reached right now (down, restarting, refusing
    connections, or dropped the connection mid-query), as opposed to a bug in a query or in the code."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _says_unreachable(current):
            return True
        current = current.__cause__
    return False


def _says_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool: no connection came free in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # SQLAlchemy asks the driver whether the connection broke (then it invalidates it and the pool reconnects).
        return exc.connection_invalidated or (exc.orig is not None and _says_unreachable(exc.orig))
    if isinstance(exc, psycopg.OperationalError):
        # Without a SQLSTATE the driver itself lost the server: refused, timed out, closed unexpectedly.
        state = exc.sqlstate
        return state is None or state.startswith(UNREACHABLE_SQLSTATE_CLASSES) or state in UNREACHABLE_SQLSTATES
    if isinstance(exc, OSError):  # ConnectionRefusedError, ConnectionResetError, TimeoutError, ...
        return _raised_in(exc.__traceback__, DATABASE_DRIVERS)
    return False


def _raised_in(traceback: TracebackType | None, packages: tuple[str, ...]) -> bool:
    """Whether the traceback passes through one of `packages`: a socket error from the driver, not from a file."""
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in packages:
            return True
        traceback = traceback.tb_next
    return False


def outage_summary(exc: BaseException) -> str:
    """One line saying what the driver reported, for a log line without a traceback."""
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


def database_outage_response(request: Request, exc: BaseException) -> JSONResponse:
    """503 with Retry-After for a request the database could not serve, logged as one warning line."""
    logger.warning(
        "%s %s answered 503: the database is not reachable (%s)", request.method, request.url.path, outage_summary(exc)
    )
    return problem_response(
        503,
        "the database is not reachable; try again shortly",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)},
    )


def _field_error(err: Any) -> dict[str, str]:
    location = [str(part) for part in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        # pydantic puts the character offset where the field would be.
        offset = location[1] if len(location) > 1 else "?"
        return {
            "field": "body",
            "message": f"the body is not valid JSON (error at character {offset})",
            "type": "json_invalid",
        }
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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            # FastAPI's answer to a body it cannot decode (not UTF-8): a validation error like any other.
            error = {"field": "body", "message": "the body could not be read as UTF-8 JSON", "type": "body_unreadable"}
            return await _validation(
                request, RequestValidationError([{"loc": ("body",), **error, "msg": error["message"]}])
            )
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        from api.deps import refusal_before_body

        try:
            refusal = await refusal_before_body(request)
        except Exception as error:  # raised inside a handler, it would skip the outage mapping below: map it here
            if database_unreachable(error):
                return database_outage_response(request, error)
            raise
        if refusal is not None:
            return await _problem(request, refusal)
        errors = [_field_error(err) for err in exc.errors()]
        fields = ", ".join(e["field"] or "body" for e in errors)
        return problem_response(
            422, f"the request is not valid: {fields}", title="Unprocessable Content", errors=errors
        )

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if database_unreachable(exc):
            return database_outage_response(request, exc)
        raise exc  # a bug after all: on to the 500 below

    # Whatever the database layer raises, wherever in the request (the key lookup, a route, the rate-limit
    # bucket, the Idempotency-Key lookup): an outage is a 503; anything else goes on to the 500.
    for database_error in (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, psycopg.Error, OSError):
        app.add_exception_handler(database_error, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error occurred; it has been logged")
