"""JSON log lines with the tenant, pipeline, job and workflow ids: inside an activity attempt, inside an API request."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import Depends
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.logcontext import LogContextInterceptor, ids_of
from api.deps import authenticate
from api.main import create_app
from models.contracts import StageInput
from models.enums import JobType
from models.logs import UVICORN_LOGGERS, JsonFormatter, bind_log_ids, install_logging, log_scope
from models.pipeline import JobSpec
from models.settings import Settings
from tests.support.stack import Tenant, serving


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_line_is_one_json_object_with_the_ids_in_scope_and_the_exception() -> None:
    install_logging()  # under pytest only the record factory: pytest configured the root logger
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs.unit")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with log_scope(job_id="j-1"):
            bind_log_ids(tenant_id=uuid.UUID(int=7), pipeline_id=None)
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("it failed: %s", "badly")
        logger.warning("outside", extra={"pipeline_id": "p-9"})
    finally:
        logger.removeHandler(handler)
    inside, outside = json_lines(stream.getvalue())
    assert inside["message"] == "it failed: badly" and inside["level"] == "ERROR"
    assert inside["logger"] == "tests.logs.unit" and inside["time"].endswith("+00:00")
    assert (inside["tenant_id"], inside["job_id"]) == (str(uuid.UUID(int=7)), "j-1")
    assert "pipeline_id" not in inside and "RuntimeError: boom" in inside["exception"]
    assert outside == {**outside, "pipeline_id": "p-9"} and "job_id" not in outside and "tenant_id" not in outside
    with pytest.raises(ValueError, match="not a log id"):
        bind_log_ids(company_id="c")


class ProbeInput(BaseModel):
    """Shaped like a stage's input: its own job id, and the spec of the job a pipeline asks for."""

    job_id: uuid.UUID
    spec: JobSpec | None = None


def spec(job_id: uuid.UUID, pipeline_id: uuid.UUID, tenant_id: uuid.UUID) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        job_type=JobType.GENERATE_TOPICS,
        tenant_id=tenant_id,
        company_id=uuid.uuid4(),
        pipeline_id=pipeline_id,
        workflow_id="pipeline-test",
    )


def test_ids_come_from_the_input_or_its_spec() -> None:
    job, pipeline, tenant = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    both = {"tenant_id": tenant, "pipeline_id": pipeline, "job_id": job}
    assert ids_of([ProbeInput(job_id=job, spec=spec(job, pipeline, tenant))]) == both
    assert ids_of([spec(job, pipeline, tenant)]) == both
    assert ids_of([StageInput(job_id=job)]) == {"job_id": job}
    assert ids_of(["text", 3]) == {}


@activity.defn(name="log_ids_probe")
async def stage_that_logs(stage: ProbeInput) -> None:
    activity.logger.info("the stage starts")
    logging.getLogger("providers.probe").info("a provider call")  # any logger, not only Temporal's


@workflow.defn(sandboxed=False)
class LoggingWorkflow:
    @workflow.run
    async def run(self, stage: ProbeInput) -> None:
        workflow.logger.info("the workflow runs")
        await workflow.execute_activity(stage_that_logs, stage, start_to_close_timeout=timedelta(seconds=30))


async def test_lines_of_an_activity_attempt_carry_its_ids(
    dev_temporal: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    install_logging()
    caplog.set_level(logging.INFO)
    job, pipeline, tenant = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    queue, workflow_id = f"tq-{uuid.uuid4()}", f"log-ids-{uuid.uuid4()}"
    async with Worker(
        dev_temporal.client,
        task_queue=queue,
        workflows=[LoggingWorkflow],
        activities=[stage_that_logs],
        interceptors=[LogContextInterceptor()],
    ):
        await dev_temporal.client.execute_workflow(
            LoggingWorkflow.run,
            ProbeInput(job_id=job, spec=spec(job, pipeline, tenant)),
            id=workflow_id,
            task_queue=queue,
        )
    formatter = JsonFormatter()
    lines = {line["message"].split(" (")[0]: line for line in map(json.loads, map(formatter.format, caplog.records))}
    ids = {"tenant_id": str(tenant), "pipeline_id": str(pipeline), "job_id": str(job), "workflow_id": workflow_id}
    assert lines["the stage starts"] == {**lines["the stage starts"], **ids}
    assert lines["a provider call"] == {**lines["a provider call"], **ids}
    assert lines["the workflow runs"]["workflow_id"] == workflow_id


@contextmanager
def fresh_process_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The root logger as in a new API process (nobody configured it), writing to a captured stderr. Entered in
    the test itself: pytest adds its own handlers to the root logger for each phase of a test."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    uvicorn_saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in UVICORN_LOGGERS
    }
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv("LOG_FORMAT", "json")
    root.handlers.clear()
    try:
        yield stderr
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (handlers, propagate) in uvicorn_saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


async def test_lines_of_an_api_request_carry_its_ids(
    database_url: str, dev_temporal: WorkflowEnvironment, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_temporal.client.service_client.config.target_host,
        _env_file=None,  # type: ignore[call-arg]
    )

    async def probe(pipeline_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, str]:
        logging.getLogger("api.probe").info("inside the route")
        return {}

    def app_with_probe() -> Any:
        # Made by uvicorn after it configured its loggers, as `uvicorn api.main:create_app --factory` does.
        app = create_app(settings)
        path = "/api/v1/probe/pipelines/{pipeline_id}/jobs/{job_id}/"
        app.add_api_route(path, probe, dependencies=[Depends(authenticate)])
        return app

    job, pipeline = uuid.uuid4(), uuid.uuid4()
    with fresh_process_logging(monkeypatch) as stderr:
        async with serving(app_with_probe, factory=True, log_level="info") as base_url:
            async with httpx.AsyncClient(base_url=base_url, headers=tenant.headers()) as http:
                assert (await http.get(f"/api/v1/probe/pipelines/{pipeline}/jobs/{job}/")).status_code == 200
                assert (await http.get(f"/api/v1/ai/jobs/{job}/")).status_code == 404
    lines = json_lines(stderr.getvalue())
    [route_line] = [line for line in lines if line["message"] == "inside the route"]
    ids = {"tenant_id": str(tenant.id), "pipeline_id": str(pipeline), "job_id": str(job)}
    assert route_line == {**route_line, **ids}
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    [probe_access] = [line for line in access if "/probe/" in line["message"]]
    [job_access] = [line for line in access if f"/ai/jobs/{job}/" in line["message"]]
    assert probe_access == {**probe_access, **ids}
    assert job_access == {**job_access, "tenant_id": str(tenant.id), "job_id": str(job)}
    assert "pipeline_id" not in job_access
    assert any(line["logger"] == "uvicorn.error" and "Started server process" in line["message"] for line in lines)
