"""The HTTP API: starts and messages workflows, reads what the pipeline produced. Never calls a provider."""
