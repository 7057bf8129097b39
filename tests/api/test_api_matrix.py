"""The 401/403/404 matrix of every operation in the OpenAPI document, for two tenants and every role.

The operations come from the document itself (`create_app().openapi()`, checked against the served
`/openapi.json`), so a route added later is in the matrix without touching this file, as long as its path
parameters name objects that tests/support/seed.py makes and its body schema has a minimal body there; if not, the
test fails and says what to add. Tenant A (ULTIMATE) owns one of every object; tenant B (FREE, so that a tier
check cannot stand in for the tenancy check) has its own. For each operation:

- no key, a garbage key, A's revoked admin key: 401 problem+json (the undocumented trailing-slash twin too);
- each of B's roles on A's objects: 404 problem+json with none of A's ids or text; on a route without an
  object in its path (lists, `/tenant`, creating things): 2xx with none of A's data, or 403 below the route's
  role; the event stream sends no `event:`;
- each of A's roles below the route's role: 403 problem+json;
- GET only, A with the route's role: 2xx, to show that the ids the 404s were asked about are real;
- with a body that cannot be valid (malformed JSON, not UTF-8, not an object), the same refusals: 401 without
  a key, 404 for B on A's objects, 403 below the role, never the 422 (or 400) of the body.

Nothing is started for A: every request for A's objects is refused before any work (the last test checks).
"""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs
import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.deps import StageDeps
from activities.lookup import CompanyLookup
from api.main import API_PREFIX, create_app
from models.db import Database
from models.enums import Role, Tier
from models.settings import Settings
from providers.router import ProviderRouter
from tests.support.seed import SeededTenant, counts_of, minimal_bodies, schema_name, seed_tenant
from tests.support.stack import free_port, make_tenant, serving
from workflows.lookup import CompanyLookupWorkflow
from workflows.policies import AI_QUEUE

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch")
# An open event stream that leaks keeps sending; this long is enough to see its first events.
STREAM_READ_SECONDS = 3.0

DOCUMENT: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]

# The routes that need more than the marketer role. The contract names them: the approvals and the inbox
# (`/approvals/`) are the supervisor's, API keys, `/tenant/webhook` and deleting a company the admin's; every
# other route is a marketer's. `test_the_role_table_is_the_contracts` holds this table to the document.
REQUIRED_ROLE: dict[tuple[str, str], Role] = {
    ("GET", "/api/v1/approvals/"): Role.SUPERVISOR,
    ("POST", "/api/v1/ai/pipelines/{pipeline_id}/approvals/personas/"): Role.SUPERVISOR,
    ("POST", "/api/v1/ai/pipelines/{pipeline_id}/approvals/topics/"): Role.SUPERVISOR,
    ("POST", "/api/v1/ai/pipelines/{pipeline_id}/approvals/blogposts/{blog_post_id}/"): Role.SUPERVISOR,
    ("POST", "/api/v1/ai/pipelines/{pipeline_id}/approvals/failures/{topic_id}/"): Role.SUPERVISOR,
    ("GET", "/api/v1/apikeys"): Role.ADMIN,
    ("POST", "/api/v1/apikeys"): Role.ADMIN,
    ("DELETE", "/api/v1/apikeys/{key_id}"): Role.ADMIN,
    ("PUT", "/api/v1/tenant/webhook"): Role.ADMIN,
    ("DELETE", "/api/v1/tenant/webhook"): Role.ADMIN,
    ("DELETE", "/api/v1/companies/{company_id}"): Role.ADMIN,
}

# The routes anyone may call, without a key: the probes outside /api/v1, and the platforms' OAuth callback (its
# `state`, good once, is its credential: tests/api/test_channels_mastodon.py).
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/api/v1/channels/callback/{platform}")}
# A public route that answers a problem to a caller without its credential (the callback without a `state`).
PUBLIC_REFUSALS = {("GET", "/api/v1/channels/callback/{platform}"): 400}


def role_by_contract(method: str, path: str) -> Role:
    segments = path.strip("/").split("/")
    if (method, path) == ("DELETE", f"{API_PREFIX}/companies/{{company_id}}"):
        return Role.ADMIN  # a company with everything it produced
    if "approvals" in segments:
        return Role.SUPERVISOR
    if "apikeys" in segments or path.startswith(f"{API_PREFIX}/tenant/webhook"):
        return Role.ADMIN
    return Role.MARKETER


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def secured(self) -> bool:
        return bool(self.spec.get("security"))

    @property
    def required_role(self) -> Role:
        return REQUIRED_ROLE.get(self.key, Role.MARKETER)

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    @property
    def path_parameters(self) -> list[str]:
        return [p["name"] for p in self.parameters("path")]

    @property
    def streams(self) -> bool:
        return any("text/event-stream" in r.get("content", {}) for r in self.spec.get("responses", {}).values())

    def url(self, values: dict[str, str]) -> str:
        missing = [name for name in self.path_parameters if name not in values]
        if missing:
            pytest.fail(
                f"{self.label}: the matrix has no object for path parameter(s) {missing}; seed one in "
                "tests/support/seed.py (seed_tenant) and name it in SeededTenant.path_values()"
            )
        return self.path.format(**{name: values[name] for name in self.path_parameters})

    def query(self) -> dict[str, str]:
        required = [p["name"] for p in self.parameters("query") if p.get("required")]
        missing = [name for name in required if name not in QUERY_VALUES]
        if missing:
            pytest.fail(
                f"{self.label}: required query parameter(s) {missing} have no value in the matrix; add them to "
                "QUERY_VALUES"
            )
        return {name: QUERY_VALUES[name] for name in required}

    def body(self, owner: SeededTenant) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        if not content:
            return None
        schema = content.get("application/json", {}).get("schema")
        name = schema_name(schema) if schema else None
        bodies = minimal_bodies(owner)
        if name is None or name not in bodies:
            pytest.fail(
                f"{self.label}: no minimal body for its request schema {name or content}; add one to minimal_bodies() "
                "in tests/support/seed.py"
            )
        body = bodies[name]
        errors = [
            e.message
            for e in jsonschema_rs.validator_for({**schema, "components": DOCUMENT["components"]}).iter_errors(body)
        ]
        assert not errors, f"{self.label}: the matrix's minimal {name} body {body} breaks the schema: {errors}"
        return body


def operations(document: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method.upper(), path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in METHODS
    ]


OPERATIONS = operations(DOCUMENT)

NO_KEY, GARBAGE_KEY, REVOKED_KEY = "no key", "garbage key", "A's revoked admin key"
UNAUTHENTICATED = (NO_KEY, GARBAGE_KEY, REVOKED_KEY)
ROLES = (Role.MARKETER, Role.SUPERVISOR, Role.ADMIN)


def role_of(caller: str) -> Role:
    return Role(caller.split(" ")[1])


def callers(operation: Operation) -> list[str]:
    if not operation.secured:
        return ["anyone"]
    found = [*UNAUTHENTICATED, *(f"B {role.value}" for role in ROLES)]
    found += [f"A {role.value}" for role in ROLES if not role.allows(operation.required_role)]
    if operation.method == "GET":
        found.append("A owner")
    return found


CASES = [pytest.param(op, caller, id=f"{op.label} | {caller}") for op in OPERATIONS for caller in callers(op)]


# Values of required query parameters: nothing of either tenant's (the company lookup's `q`).
QUERY_VALUES = {"q": "Matrixcorp"}


@dataclass
class World:
    http: httpx.AsyncClient
    a: SeededTenant
    b: SeededTenant
    a_before: dict[str, int]


@pytest.fixture(scope="module")
async def world(
    db: Database, database_url: str, dev_temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """The API on 127.0.0.1 with a real Temporal behind it (so that no route answers 503 instead of its auth
    check) and no worker but the company lookup's (it makes nothing, and a caller waits for its answer):
    nothing A's requests could start would run."""
    port, media_dir = free_port(), tmp_path_factory.mktemp("matrix-media")
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_temporal.client.service_client.config.target_host,
        task_queue_suffix=f"-matrix-{uuid.uuid4().hex[:8]}",
        ai_provider="offline",
        media_dir=media_dir,
        public_base_url=f"http://127.0.0.1:{port}",
        _env_file=None,  # type: ignore[call-arg]
    )
    a = await seed_tenant(db, await make_tenant(db, Tier.ULTIMATE, "Tenant A"), media_dir)
    b = await seed_tenant(db, await make_tenant(db, Tier.FREE, "Tenant B"), media_dir)
    before = await counts_of(db, a.tenant.id)
    lookup_db = Database.from_url(database_url, pool_size=2)
    router = ProviderRouter.from_settings(settings, db=lookup_db)
    lookup = Worker(
        dev_temporal.client,
        task_queue=AI_QUEUE + settings.task_queue_suffix,
        workflows=[CompanyLookupWorkflow],
        activities=[CompanyLookup(StageDeps(db=lookup_db, router=router, settings=settings)).lookup_company],
    )
    try:
        async with (
            lookup,
            serving(create_app(settings), port) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield World(http, a, b, before)
    finally:
        await router.close()
        await lookup_db.close()


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def send(
    http: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: Any, params: dict[str, str]
) -> Answer:
    """The whole answer, or what an event stream sent in STREAM_READ_SECONDS if it is still open by then."""
    async with http.stream(method, url, headers=headers, json=body, params=params) as response:
        chunks: list[bytes] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STREAM_READ_SECONDS):
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
        return Answer(response.status_code, response.headers, b"".join(chunks))


def headers_of(world: World, caller: str, operation: Operation) -> dict[str, str]:
    if caller in (NO_KEY, "anyone"):
        return {}
    if caller == GARBAGE_KEY:
        return {"Authorization": "Bearer cpk_00000000_this-is-not-a-key-of-anyone"}
    if caller == REVOKED_KEY:
        return {"Authorization": f"Bearer {world.a.revoked_key}"}
    if caller == "A owner":
        return world.a.tenant.headers(operation.required_role)
    tenant, role = caller.split(" ")
    return (world.a if tenant == "A" else world.b).tenant.headers(Role(role))


def twin(path: str) -> str:
    """The route's undocumented twin: the contract makes the trailing slash optional."""
    return path[:-1] if path.endswith("/") else path + "/"


def describe(operation: Operation, caller: str, answer: Answer) -> str:
    return f"{operation.label} as {caller}: {answer.status} {answer.headers.get('content-type')} {answer.text[:500]!r}"


def assert_problem(operation: Operation, caller: str, answer: Answer, status: int) -> dict[str, Any]:
    context = describe(operation, caller, answer)
    assert answer.status == status, f"expected {status}; {context}"
    assert answer.headers.get("content-type", "").startswith(PROBLEM), f"not problem+json; {context}"
    problem: dict[str, Any] = answer.json()
    assert {"type", "title", "status", "detail"} <= problem.keys(), f"problem fields missing; {context}"
    assert problem["status"] == status, context
    return problem


def assert_nothing_of(owner: SeededTenant, operation: Operation, caller: str, answer: Answer) -> None:
    shown = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    leaked = sorted(f for f in owner.fingerprints() if f in shown)
    assert not leaked, f"tenant A's data {leaked} in the answer; {describe(operation, caller, answer)}"
    if operation.streams:
        assert b"event:" not in answer.content, f"the stream sent events; {describe(operation, caller, answer)}"


@pytest.mark.parametrize(("operation", "caller"), CASES)
async def test_matrix(world: World, operation: Operation, caller: str) -> None:
    a = world.a
    url = operation.url(a.path_values())
    body = operation.body(a)
    params = operation.query()
    answer = await send(world.http, operation.method, url, headers_of(world, caller, operation), body, params)

    if caller == "anyone":
        if operation.key in PUBLIC_REFUSALS:
            assert_problem(operation, caller, answer, PUBLIC_REFUSALS[operation.key])
        else:
            assert 200 <= answer.status < 300, describe(operation, caller, answer)
        assert_nothing_of(a, operation, caller, answer)
    elif caller in UNAUTHENTICATED:
        assert_problem(operation, caller, answer, 401)
        assert answer.headers.get("www-authenticate") == "Bearer", describe(operation, caller, answer)
        assert_nothing_of(a, operation, caller, answer)
        if caller == NO_KEY:
            other = await send(world.http, operation.method, twin(url), {}, body, params)
            assert_problem(operation, f"{caller}, at {twin(url)}", other, 401)
    elif caller.startswith("B "):
        role = role_of(caller)
        if operation.path_parameters:
            assert_problem(operation, caller, answer, 404)
        elif not role.allows(operation.required_role):
            assert_problem(operation, caller, answer, 403)
        else:
            assert 200 <= answer.status < 300, f"B's own data should be served; {describe(operation, caller, answer)}"
        assert_nothing_of(a, operation, caller, answer)
    elif caller == "A owner":
        assert 200 <= answer.status < 300, f"A's own objects should be served; {describe(operation, caller, answer)}"
        if operation.streams:
            assert b"event: end" in answer.content, describe(operation, caller, answer)
        if "media_id" in operation.path_parameters:
            assert answer.content == a.media_bytes, describe(operation, caller, answer)
    else:
        problem = assert_problem(operation, caller, answer, 403)
        assert operation.required_role.value in problem["detail"], describe(operation, caller, answer)


# Bodies that cannot be valid: a refusal for the caller (401, 403, 404) must still win over the 422 (or 400)
# the body alone would get, or the answer would tell a stranger something about the route's input.
BAD_BODIES = {"malformed JSON": b'{"', "not UTF-8": b"\xff{}", "not an object": b"[]"}


def bad_body_callers(operation: Operation) -> list[tuple[str, int]]:
    if not operation.secured or "requestBody" not in operation.spec:
        return []
    found = [(NO_KEY, 401)]
    if operation.path_parameters:
        found.append(("B admin", 404))
    found += [(f"A {role.value}", 403) for role in ROLES if not role.allows(operation.required_role)]
    return found


BAD_BODY_CASES = [
    pytest.param(op, caller, status, bad, id=f"{op.label} | {caller} | {bad}")
    for op in OPERATIONS
    for caller, status in bad_body_callers(op)
    for bad in BAD_BODIES
]


@pytest.mark.parametrize(("operation", "caller", "status", "bad"), BAD_BODY_CASES)
async def test_refusal_wins_over_a_bad_body(
    world: World, operation: Operation, caller: str, status: int, bad: str
) -> None:
    headers = {**headers_of(world, caller, operation), "Content-Type": "application/json"}
    url = operation.url(world.a.path_values())
    async with world.http.stream(operation.method, url, headers=headers, content=BAD_BODIES[bad]) as response:
        answer = Answer(response.status_code, response.headers, await response.aread())
    assert_problem(operation, f"{caller} with a body that is {bad}", answer, status)
    assert_nothing_of(world.a, operation, caller, answer)


def test_the_role_table_is_the_contracts() -> None:
    by_contract = {op.key: role_by_contract(*op.key) for op in OPERATIONS if role_by_contract(*op.key) != Role.MARKETER}
    assert REQUIRED_ROLE == by_contract, (
        "REQUIRED_ROLE must list exactly the document's supervisor and admin routes; "
        f"missing {sorted(by_contract.keys() - REQUIRED_ROLE.keys())},"
        f" not in the document {sorted(REQUIRED_ROLE.keys() - by_contract.keys())}"
    )


def test_only_the_probes_go_without_a_key() -> None:
    assert {op.key for op in OPERATIONS if not op.secured} == PUBLIC
    assert all(op.path.startswith(f"{API_PREFIX}/") for op in OPERATIONS if op.secured)


async def test_every_operation_can_be_filled(world: World) -> None:
    """Every path parameter names a seeded object, and every body schema has a minimal example that fits it."""
    for op in OPERATIONS:
        op.url(world.a.path_values())
        op.body(world.a)
        op.query()


async def test_the_matrix_is_the_served_document(world: World) -> None:
    served = await world.http.get("/openapi.json")
    assert served.status_code == 200
    assert {op.key for op in operations(served.json())} == {op.key for op in OPERATIONS}


async def test_nothing_changed_for_tenant_a(world: World, db: Database) -> None:
    """Runs after the matrix (pytest keeps the file's order): no job, pipeline, company or key of A was made
    or revoked by the requests of B, of A's lower roles or of the unauthenticated."""
    assert await counts_of(db, world.a.tenant.id) == world.a_before
