"""Fixtures for tests against a real Bluesky PDS: one PDS (and PLC) per test session, running for every test.

Test modules import the `*_fixture` functions; pytest knows them by their `name=`:

    from tests.support.pds_fixtures import pds_fixture, pds_session_fixture  # noqa: F401

    async def test_something(pds: PdsServer) -> None:
        account = pds.create_account("alice")
        app_password = pds.create_app_password(account)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pds_server import PdsServer


@pytest.fixture(scope="session", name="pds_session")
def pds_session_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdsServer]:
    """Installs the PDS when it is not cached (tests/support/ensure_pds.sh) and fails with its message when that
    fails: never skipped."""
    server = PdsServer(tmp_path_factory.mktemp("pds"))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(name="pds")
def pds_fixture(pds_session: PdsServer) -> PdsServer:
    """The session's PDS, started again when an earlier test stopped it."""
    pds_session.ensure_running()
    return pds_session
