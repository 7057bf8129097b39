"""Workflows: deterministic orchestration only; every side effect happens in an activity."""
