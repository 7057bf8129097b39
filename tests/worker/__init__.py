"""Tests of `worker.py`: the worker process, its shutdown and its crashes."""
