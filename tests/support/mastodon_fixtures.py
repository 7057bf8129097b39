"""Fixtures for tests that talk to a Mastodon instance: the local server of tests/support/mastodon_server.py, one
per session, reset for every test.

Test modules import the `*_fixture` functions (`from tests.support.mastodon_fixtures import mastodon_fixture,
mastodon_session_fixture  # noqa: F401`); pytest knows them by their `name=`: `mastodon` for a test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mastodon_server import MastodonServer


@pytest.fixture(scope="session", name="mastodon_session")
def mastodon_session_fixture() -> Iterator[MastodonServer]:
    server = MastodonServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="mastodon")
def mastodon_fixture(mastodon_session: MastodonServer) -> Iterator[MastodonServer]:
    """The session's server as a fresh instance: no apps, tokens, statuses or faults, default configuration."""
    mastodon_session.reset()
    yield mastodon_session
    mastodon_session.release()  # a slow answer still waiting ends now
    mastodon_session.reset()
