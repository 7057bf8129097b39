"""Tests of `publishers/`."""
