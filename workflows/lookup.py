"""CompanyLookupWorkflow: the "New company" search, one activity on the ai queue whose answer the API waits for."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.lookup import LookupRequest, LookupResult
    from models.names import Activity, WorkflowName
    from workflows.policies import LOOKUP_DEADLINE, LOOKUP_RETRY, LOOKUP_TIMEOUT


@workflow.defn(name=WorkflowName.COMPANY_LOOKUP)
class CompanyLookupWorkflow:
    @workflow.run
    async def run(self, request: LookupRequest) -> LookupResult:
        # The workflow runs on the ai queue (the API starts it there), so its one activity does too. A search that
        # fails for good fails the workflow with the activity's typed error, which the API turns into a 502.
        result: LookupResult = await workflow.execute_activity(
            Activity.LOOKUP_COMPANY,
            request,
            result_type=LookupResult,
            start_to_close_timeout=LOOKUP_TIMEOUT,
            schedule_to_close_timeout=LOOKUP_DEADLINE,
            retry_policy=LOOKUP_RETRY,
            summary="company lookup",
        )
        return result
