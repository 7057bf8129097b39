"""Fuzzing the API from its OpenAPI document with schemathesis: no 5xx, no answer that breaks the document.

Every operation of the document (the one `/openapi.json` serves) is fuzzed over HTTP against a live stack of
its own (the API, a worker and the Temporal dev server, so that start endpoints really start; rate limits
raised so that 429s do not hide the routes), twice: with tenant A's marketer key and with tenant B's admin
key. Each run of an operation sends

- the smallest valid request naming A's seeded objects, and (B's run) B's own: the success answers;
- schemathesis's coverage phase, with the caller's objects in the path: boundary values, missing and
  malformed parameters and bodies, each once;
- MAX_EXAMPLES Hypothesis cases, valid and not, with generated paths or A's (and B's) objects in them.

B's objects include a live pipeline waiting at the personas gate, so that decisions reach the workflow's
validators. The checks are schemathesis's: not a server error, status code, content type, headers and body
as documented, invalid input refused, auth enforced; and for B, none of A's ids or text in any answer.
Hypothesis is derandomized (the same cases every run) and does not shrink; a failure prints its case as curl.
"""

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import AuthContext, Case, CheckContext, GenerationMode, Response
from schemathesis.auths import AuthStorage, set_on_case
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from models.db import Database
from models.enums import Role, Tier
from models.pipeline import month_after, month_bounds
from models.settings import Settings
from tests.support.seed import SeededTenant, minimal_bodies, next_month, schema_name, seed_tenant
from tests.support.stack import RunningStack, make_tenant, running_stack

MAX_EXAMPLES = 40
REQUEST_TIMEOUT_SECONDS = 30
GENEROUS = 100_000  # start requests a minute: a 429 is documented, but it would hide what the route does

DOCUMENT: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
LOADED = list(SCHEMA.get_all_operations())
OPERATIONS = {result.ok().label: result.ok() for result in LOADED if isinstance(result, Ok)}
# An operation schemathesis cannot read is not skipped: test_every_operation_is_fuzzed names it.
UNREADABLE = [str(result.err()) for result in LOADED if isinstance(result, Err)]
CALLERS = ("A marketer", "B admin")


@dataclass
class Fuzzing:
    stack: RunningStack
    a: SeededTenant
    b: SeededTenant
    runs: dict[str, Counter[int]] = field(default_factory=dict)

    def key(self, caller: str) -> str:
        return self.a.tenant.keys[Role.MARKETER] if caller == "A marketer" else self.b.tenant.keys[Role.ADMIN]

    def object_sets(self, caller: str) -> list[SeededTenant]:
        """Whose objects the path parameters may name: A's always, and the caller's own."""
        return [self.a] if caller == "A marketer" else [self.a, self.b]


@pytest.fixture(scope="module")
async def fuzzing(
    db: Database,
    database_url: str,
    dev_temporal: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> AsyncIterator[Fuzzing]:
    media_dir = tmp_path_factory.mktemp("fuzz-media")
    async with running_stack(
        database_url,
        dev_temporal.client,
        media_dir=media_dir,
        rate_limit_free_per_minute=GENEROUS,
        rate_limit_pro_per_minute=GENEROUS,
        rate_limit_ultimate_per_minute=GENEROUS,
        worker_graceful_shutdown_seconds=1,
    ) as stack:
        a = await seed_tenant(db, await make_tenant(db, Tier.ULTIMATE, "Fuzz tenant A"), media_dir)
        b = await seed_tenant(db, await make_tenant(db, Tier.FREE, "Fuzz tenant B"), media_dir)
        # B's admin may decide at gates: its pipeline is a live one waiting at the personas gate, so that the
        # approvals reach the workflow's validators (A's marketer is refused them; A's pipeline is a row).
        b = dataclasses.replace(b, pipeline_id=await pipeline_at_personas_gate(stack, b))
        served = await stack.http.get("/openapi.json")
        assert served.json() == DOCUMENT, "the fuzzed document must be the one the API serves"
        fuzzing = Fuzzing(stack, a, b)
        yield fuzzing
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        seen = sum(fuzzing.runs.values(), Counter())
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nfuzzing: {seen.total()} cases in {len(fuzzing.runs)} runs (operation x key);"
                f" statuses {dict(sorted(seen.items()))}"
            )


async def pipeline_at_personas_gate(stack: RunningStack, owner: SeededTenant, wait_seconds: float = 60) -> uuid.UUID:
    headers = owner.tenant.headers(Role.ADMIN)
    month = month_after(month_bounds(next_month())[0])  # the seeded pipeline holds the next month
    started = await stack.http.post(
        f"/api/v1/ai/companies/{owner.company_id}/pipelines/",
        json={"month": month, "platforms": ["linkedin"]},
        headers=headers,
    )
    assert started.status_code == 202, started.text
    pipeline = started.json()["pipelineId"]
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        state = (await stack.http.get(f"/api/v1/ai/pipelines/{pipeline}/", headers=headers)).json()
        if (state.get("pendingApproval") or {}).get("gate") == "personas":
            return uuid.UUID(pipeline)
        assert state["status"] in ("RUNNING", "AWAITING_APPROVAL"), state
        assert asyncio.get_running_loop().time() < deadline, f"the pipeline is not at the personas gate: {state}"
        await asyncio.sleep(0.2)


def no_data_of(owner: SeededTenant) -> Callable[[CheckContext, Response, Case], bool | None]:
    """A check: the answer carries none of `owner`'s ids or text (for the other tenant's requests)."""
    fingerprints = owner.fingerprints()

    def tenant_isolation(ctx: CheckContext, response: Response, case: Case) -> bool | None:
        shown = response.content.decode("utf-8", "replace") + str(dict(response.headers))
        leaked = sorted(f for f in fingerprints if f in shown)
        assert not leaked, f"tenant A's data {leaked} in the answer to the other tenant"
        return None

    return tenant_isolation


def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis's `not_a_server_error`, but for the documented 502 of a channel whose platform cannot be
    reached: this stack has no platform to reach, and a generated PDS or instance address may name a real host."""
    if response.status_code == 502 and "platform_unavailable" in response.content.decode("utf-8", "replace"):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


def fixed_path(operation: Any, owner: SeededTenant) -> dict[str, str]:
    names = [p.name for p in operation.path_parameters]
    values = owner.path_values()
    return {name: values[name] for name in names if name in values}


def minimal_case(operation: Any, owner: SeededTenant) -> Case | None:
    """The operation with `owner`'s objects in its path and the smallest valid body; None when it takes neither."""
    path = fixed_path(operation, owner)
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    name = schema_name(schema) if schema else None
    bodies = minimal_bodies(owner)
    if content and name not in bodies:
        pytest.fail(
            f"{operation.label}: no minimal body for request schema {name or content};"
            " add one to minimal_bodies() in tests/support/seed.py"
        )
    if not path and not content:
        return None
    case: Case = operation.Case(
        path_parameters=path, **({"body": bodies[name], "media_type": "application/json"} if name else {})
    )
    return case


def bearer(key: str) -> AuthStorage[str]:
    """The key as schemathesis's own auth: it knows the credentials are real (so `ignored_auth` probes without
    them), and a negative case that drops the Authorization header goes without it."""
    storage: AuthStorage[str] = AuthStorage()

    class Bearer:
        def get(self, case: Case, context: AuthContext) -> str:
            return key

        def set(self, case: Case, data: str, context: AuthContext) -> None:
            headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
            headers["Authorization"] = f"Bearer {data}"
            case.headers = headers

    storage.auth(refresh_interval=None)(Bearer)
    return storage


def generated(operation: Any, owners: list[SeededTenant], auth: AuthStorage[str]) -> st.SearchStrategy[Case]:
    """Wholly generated cases, valid and not; and valid ones whose path names an owner's real objects."""
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE, auth_storage=auth)]
    if operation.path_parameters or operation.query or operation.headers or operation.body:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, auth_storage=auth))
    for owner in owners:
        if fixed_path(operation, owner):
            strategies.append(
                operation.as_strategy(
                    generation_mode=GenerationMode.POSITIVE,
                    auth_storage=auth,
                    path_parameters=fixed_path(operation, owner),
                )
            )
    return st.one_of(strategies)


def coverage(operation: Any, owner: SeededTenant, auth: AuthStorage[str]) -> Iterator[Case]:
    """Schemathesis's coverage phase: boundary values, missing and malformed parameters and bodies, each once;
    the path names `owner`'s objects unless the path is what the case spoils."""
    config = SCHEMA.config.generation_for(operation=operation)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for case in SCHEMA.iter_coverage_cases(operation, generation_modes=modes, generation_config=config):
        if not (case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)):
            case.path_parameters = {**(case.path_parameters or {}), **fixed_path(operation, owner)}
        set_on_case(case, AuthContext(operation=operation, app=None), auth)
        yield case


def fuzz(operation: Any, base_url: str, key: str, owners: list[SeededTenant], checks: list[Any]) -> Counter[int]:
    """Runs in a thread (requests blocks; the stack lives on the test's event loop). Returns the statuses seen."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    statuses: Counter[int] = Counter()

    def call(case: Case, explicit: dict[str, str] | None = None) -> None:
        response = case.call(base_url=base_url, session=session, headers=explicit, timeout=REQUEST_TIMEOUT_SECONDS)
        statuses[response.status_code] += 1
        # What a re-sending check (ignored_auth) needs to send its probes the same way.
        sent = {
            "base_url": base_url,
            "session": session,
            "timeout": REQUEST_TIMEOUT_SECONDS,
            **({"headers": explicit} if explicit else {}),
        }
        case.validate_response(response, checks=checks, headers=explicit, transport_kwargs=sent)

    for owner in owners:
        case = minimal_case(operation, owner)
        if case is not None:
            call(case, headers)
    auth = bearer(key)
    for case in coverage(operation, owners[-1], auth):
        call(case)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its case as curl
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=generated(operation, owners, bearer(key)))
    def run(case: Case) -> None:
        call(case)

    try:
        run()
    finally:
        session.close()
    return statuses


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("label", list(OPERATIONS))
async def test_fuzz(fuzzing: Fuzzing, label: str, caller: str) -> None:
    operation = OPERATIONS[label]
    owners = fuzzing.object_sets(caller)
    checks = [*CHECKS, no_data_of(fuzzing.a)] if caller == "B admin" else CHECKS
    statuses = await asyncio.to_thread(fuzz, operation, fuzzing.stack.base_url, fuzzing.key(caller), owners, checks)
    fuzzing.runs[f"{label} as {caller}"] = statuses
    # Proof that the key was sent and the route reached: not every answer is the 401 of a spoiled key.
    assert set(statuses) - {401}, f"{label} as {caller}: only 401s ({statuses})"


def test_every_operation_is_fuzzed() -> None:
    assert not UNREADABLE, f"schemathesis cannot read these operations, so they are not fuzzed: {UNREADABLE}"
    methods = ("get", "put", "post", "delete", "patch")
    assert len(OPERATIONS) == sum(m in methods for item in DOCUMENT["paths"].values() for m in item)
