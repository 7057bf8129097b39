"""Fixtures for the provider tests: the local protocol server (one per session, reset per test).

Test modules import the `*_fixture` functions; pytest knows them by their `name=`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.provider_server import ProviderServer

API_KEY = "test-key-SECRET-1234567890"


@pytest.fixture(scope="session", name="provider_server_session")
def provider_server_session_fixture() -> Iterator[ProviderServer]:
    server = ProviderServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="provider_server")
def provider_server_fixture(provider_server_session: ProviderServer) -> Iterator[ProviderServer]:
    provider_server_session.reset()
    yield provider_server_session
    provider_server_session.reset()
