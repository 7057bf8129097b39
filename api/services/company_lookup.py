"""The company lookup ("New company" search) for the API and the studio: a short CompanyLookupWorkflow on the ai
queue, waited for, its failures as problems (503 engine away, 504 no answer in time, 502 the search failed)."""

import asyncio
import logging
import uuid

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError

from api.deps import Principal
from api.errors import Problem
from models.lookup import LookupErrorType, LookupRequest, LookupResult
from models.names import TENANT_ID
from models.settings import Settings
from workflows.lookup import CompanyLookupWorkflow
from workflows.policies import AI_QUEUE, LOOKUP_EXECUTION_TIMEOUT, priority_for

logger = logging.getLogger(__name__)

# How long the request waits for the search (its retries end before this: workflows/policies.py LOOKUP_DEADLINE).
LOOKUP_WAIT_SECONDS = 25.0
START_WAIT_SECONDS = 5.0
RETRY_AFTER = {"Retry-After": "5"}


def lookup_workflow_id() -> str:
    return f"company-lookup-{uuid.uuid4()}"


async def lookup_companies(
    temporal: Client,
    settings: Settings,
    principal: Principal,
    query: str,
    *,
    wait_seconds: float = LOOKUP_WAIT_SECONDS,
) -> LookupResult:
    """Candidates for `query` (already checked: 2 to 200 characters), found by a worker; raises Problem."""
    request = LookupRequest(tenant_id=principal.tenant_id, query=query)
    # Started and waited for in two steps (what execute_workflow does in one), so that an engine that is away
    # (503) is told apart from one whose workers do not answer (504).
    try:
        handle: WorkflowHandle[CompanyLookupWorkflow, LookupResult] = await asyncio.wait_for(
            temporal.start_workflow(
                CompanyLookupWorkflow.run,
                request,
                id=lookup_workflow_id(),
                task_queue=AI_QUEUE + settings.task_queue_suffix,
                execution_timeout=LOOKUP_EXECUTION_TIMEOUT,
                search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, str(principal.tenant_id))]),
                priority=priority_for(principal.tier),
            ),
            timeout=START_WAIT_SECONDS,
        )
    except (RPCError, TimeoutError) as exc:
        logger.warning("company lookup not started: the workflow engine is not reachable (%s)", exc)
        raise Problem(503, "the workflow engine is not reachable; try again shortly", headers=RETRY_AFTER) from None
    try:
        return await asyncio.wait_for(handle.result(), timeout=wait_seconds)
    except TimeoutError:
        logger.warning("company lookup %s: no answer within %s s", handle.id, wait_seconds)
        raise Problem(
            504,
            f"no worker answered the company search within {wait_seconds:g} s; try again shortly",
            headers=RETRY_AFTER,
        ) from None
    except WorkflowFailureError as failure:
        raise search_failed(failure) from None
    except RPCError as exc:
        logger.warning("company lookup %s: lost the workflow engine while waiting (%s)", handle.id, exc)
        raise Problem(503, "the workflow engine is not reachable; try again shortly", headers=RETRY_AFTER) from None


def search_failed(failure: WorkflowFailureError) -> Problem:
    """The problem for a lookup whose workflow failed: the search's own error (502), or its deadline (504)."""
    cause: BaseException | None = failure.cause
    application: ApplicationError | None = None
    timed_out = False
    while cause is not None:
        if isinstance(cause, ApplicationError):
            application = cause
        elif isinstance(cause, TemporalTimeout):
            timed_out = True
        cause = cause.__cause__
    if application is not None:
        message = application.message or str(application)
        if application.non_retryable or application.type == LookupErrorType.SEARCH_REJECTED:
            detail = f"the company search failed: {message}"
        else:
            detail = f"the company search failed after its retries: {message}"
        return Problem(502, detail, title="Bad Gateway", errorType=application.type or "")
    if timed_out:
        return Problem(504, "the company search did not answer in time; try again shortly", headers=RETRY_AFTER)
    return Problem(502, f"the company search failed: {failure.cause or failure}", title="Bad Gateway")
