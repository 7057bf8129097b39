"""How a workflow can end without its own code recording the end (an operator terminated it, it timed out), and what
its row then says: one answer for the API (a job read, a cancel that finds the workflow gone) and for the worker's
reconciler (activities/reconciler.py), so a row ends the same way whoever notices first."""

# Keyed by the name of temporalio's WorkflowExecutionStatus; the value completes "the <what>'s workflow ...",
# None for a cancellation (the row ends CANCELLED).
ENDED_WITHOUT_RECORD: dict[str, str | None] = {
    "TERMINATED": "was terminated (by an operator or a deployment)",
    "TIMED_OUT": "timed out",
    "FAILED": "failed",
    "CANCELED": None,
}

# The same statuses as Temporal's visibility queries spell them (`ExecutionStatus IN (...)`).
VISIBILITY_STATUSES: dict[str, str] = {
    "TERMINATED": "Terminated",
    "TIMED_OUT": "TimedOut",
    "FAILED": "Failed",
    "CANCELED": "Canceled",
}


def ended_without_record(workflow_status: str, what: str) -> tuple[bool, str] | None:
    """(cancelled?, reason) for a workflow that ended without recording it; None while it runs or ended normally.
    Rows are brought in line with it, so nothing stays PROCESSING or RUNNING forever."""
    if workflow_status not in ENDED_WITHOUT_RECORD:
        return None
    how = ENDED_WITHOUT_RECORD[workflow_status]
    return (True, "cancelled") if how is None else (False, f"the {what}'s workflow {how}")
