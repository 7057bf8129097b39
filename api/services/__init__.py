"""Services beside the routes: idempotency, rate limits, Temporal operations, job starts and queries, pipelines
and the decisions at their gates."""
