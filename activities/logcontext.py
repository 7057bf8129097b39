"""Log ids for every activity attempt: the workflow id, and the tenant, pipeline and job ids of its input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from models.logs import log_scope

INPUT_IDS = ("tenant_id", "pipeline_id", "job_id")


def ids_of(args: Sequence[Any]) -> dict[str, Any]:
    """The ids an activity's input names: its own `job_id`, `pipeline_id`, `tenant_id`, else its `spec`'s."""
    ids: dict[str, Any] = {}
    for arg in args:
        for holder in (arg, getattr(arg, "spec", None)):
            for name in INPUT_IDS:
                if ids.get(name) is None:
                    ids[name] = getattr(holder, name, None)
    return {name: value for name, value in ids.items() if value is not None}


class LogContextInterceptor(Interceptor):
    """Opens a log scope for each activity attempt, so every line it logs, from any logger, carries its ids."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Scoped(next)


class _Scoped(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with log_scope(workflow_id=activity.info().workflow_id, **ids_of(input.args)):
            return await self.next.execute_activity(input)
