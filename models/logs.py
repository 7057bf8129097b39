"""Process logging: one JSON object a line on stderr, each carrying the tenant, pipeline, job and workflow ids in scope.

A request (API) or an activity attempt (worker) opens a `log_scope`; whatever binds ids inside it (the API key's
tenant, a route's job id) is seen by every line logged for that request or attempt, from any task it starts.
LOG_FORMAT=text keeps the plain `time LEVEL logger: message` lines (the dev stack's files); LOG_LEVEL sets the level.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_ID_FIELDS = ("tenant_id", "pipeline_id", "job_id", "workflow_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

# One mutable dict per scope, so that an id bound deep inside (in a dependency, in a task) reaches the lines
# logged outside it too (uvicorn's access line, the interceptor's own lines).
_ids: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("log_ids", default=None)


def _known(ids: dict[str, Any]) -> dict[str, str]:
    unknown = set(ids) - set(LOG_ID_FIELDS)
    if unknown:
        raise ValueError(f"not a log id: {', '.join(sorted(unknown))}")
    return {name: str(value) for name, value in ids.items() if value is not None}


LogScopeToken = contextvars.Token[dict[str, str] | None]


def open_log_scope(**ids: Any) -> LogScopeToken:
    """A fresh set of log ids for a block of work (one request, one activity attempt), starting with `ids`."""
    return _ids.set(_known(ids))


def close_log_scope(token: LogScopeToken) -> None:
    _ids.reset(token)


@contextmanager
def log_scope(**ids: Any) -> Iterator[None]:
    token = open_log_scope(**ids)
    try:
        yield
    finally:
        close_log_scope(token)


def bind_log_ids(**ids: Any) -> None:
    """Add ids (None values are skipped) to the current scope; outside any scope, to this context only."""
    known = _known(ids)
    current = _ids.get()
    if current is None:
        _ids.set(known)
    else:
        current.update(known)


def current_log_ids() -> dict[str, str]:
    return dict(_ids.get() or {})


_previous_factory = logging.getLogRecordFactory()


def _record_with_ids(*args: Any, **kwargs: Any) -> logging.LogRecord:
    # The ids are taken when the line is logged: a handler may format it later, on another thread.
    record = _previous_factory(*args, **kwargs)
    record.log_ids = current_log_ids()
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the ids known, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_ids_of(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _ids_of(record: logging.LogRecord) -> dict[str, str]:
    ids: dict[str, str] = {}
    # Temporal's workflow.logger and activity.logger put the run's details in `extra`: the workflow id comes
    # from there in workflow code, where no scope of ours is open.
    for temporal in ("temporal_activity", "temporal_workflow"):
        details = getattr(record, temporal, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            ids["workflow_id"] = str(details["workflow_id"])
    ids.update(getattr(record, "log_ids", None) or {})
    for name in LOG_ID_FIELDS:  # logger.info(..., extra={"job_id": ...}) wins
        value = record.__dict__.get(name)
        if value is not None:
            ids[name] = str(value)
    return {name: ids[name] for name in LOG_ID_FIELDS if name in ids}


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (so a replaced stderr is followed)."""

    installed_by_us = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def install_logging(log_format: str | None = None, level: str | int | None = None) -> bool:
    """Configure this process's root logger (like logging.basicConfig: not when someone already configured it,
    such as pytest). JSON: uvicorn's loggers write through it too. Returns whether it configured the root logger."""
    if logging.getLogRecordFactory() is not _record_with_ids:
        logging.setLogRecordFactory(_record_with_ids)
    root = logging.getLogger()
    if any(not getattr(handler, "installed_by_us", False) for handler in root.handlers):
        return False
    json_lines = (log_format or os.environ.get("LOG_FORMAT") or "json").strip().lower() != "text"
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "").upper() or logging.INFO)
    if json_lines:  # in text mode uvicorn keeps its own format, as the dev stack's api.log always had it
        for name in UVICORN_LOGGERS:
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    return True
