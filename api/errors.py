"""problem+json (RFC 9457) for every error the API answers; no stack trace ever reaches a client."""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's detail for a body it cannot decode


class Problem(Exception):
    """An error with an HTTP status and a sentence for the client."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> None:
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
    errors: list[FieldError] | None = Field(default=None, description="validation errors only: what is wrong, field by field")


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry: problem+json with the ProblemDetail schema (added to the document by api.main)."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}


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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            # FastAPI's answer to a body it cannot decode (not UTF-8): a validation error like any other.
            error = {"field": "body", "message": "the body could not be read as UTF-8 JSON", "type": "body_unreadable"}
            return await _validation(request, RequestValidationError([{"loc": ("body",), **error, "msg": error["message"]}]))
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        from api.deps import refusal_before_body

        refusal = await refusal_before_body(request)
        if refusal is not None:
            return await _problem(request, refusal)
        errors = [_field_error(err) for err in exc.errors()]
        fields = ", ".join(e["field"] or "body" for e in errors)
        return problem_response(422, f"the request is not valid: {fields}", title="Unprocessable Content", errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error occurred; it has been logged")
