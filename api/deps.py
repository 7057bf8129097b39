"""FastAPI dependencies as Annotated aliases: the session, the caller, the Temporal client, the settings, the stores."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, LiteralString, NamedTuple

import psycopg
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg.rows import dict_row, tuple_row
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import Problem, database_unreachable, outage_summary
from api.keys import KEY_PREFIX, hash_key
from models.db import Database
from models.enums import Role, Tier
from models.logs import bind_log_ids
from models.settings import Settings
from models.stores.jobs import JobStore
from models.stores.pipelines import PipelineStore

logger = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="An API key made with `content-pipeline apikey create`.")


# The dependencies below are `async def` although they do not wait for anything: FastAPI runs a plain `def`
# dependency in its thread pool, and a thread hop per dependency was a good part of a short read's cost.
async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    """The request's session, closed after the answer is sent. If the database went away in between, closing
    fails (its ROLLBACK has no connection): that is no error, the transaction ended with the connection and the
    client has its answer."""
    answered = False
    try:
        async with db.session() as session:
            yield session
            answered = True
    except Exception as exc:
        if not (answered and database_unreachable(exc)):
            raise  # the route's own error, or a bug: the error handlers answer it
        logger.warning("a session lost its connection after its request was answered (%s)", outage_summary(exc))


async def driver_rows(
    session: AsyncSession, sql: LiteralString, params: Mapping[str, Any], *, as_dicts: bool = False
) -> list[Any]:
    """The rows of one of the hot reads (the API key on every request, a pipeline's status page that clients poll),
    run in the session's own transaction straight through the driver (psycopg, `%(name)s` parameters): SQLAlchemy's
    statement and result machinery cost several times what the query itself does there."""
    connection = await session.connection()
    fairy = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = fairy.driver_connection  # type: ignore[assignment]
    async with driver.cursor(row_factory=dict_row if as_dicts else tuple_row) as cursor:  # type: ignore[arg-type]
        await cursor.execute(sql, params)
        return await cursor.fetchall()


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client, connecting now if the engine was down when the API started."""
    client: Client | None = request.app.state.temporal
    if client is None:
        try:
            client = await asyncio.wait_for(request.app.state.connect_temporal(), timeout=3)
        except Exception as exc:
            raise Problem(
                503, "the workflow engine is not reachable; try again shortly", headers={"Retry-After": "5"}
            ) from exc
        request.app.state.temporal = client
    assert client is not None
    return client


async def optional_temporal(request: Request) -> Client | None:
    """The Temporal client if the engine answers; reads that can do without it use this."""
    try:
        return await get_temporal(request)
    except Problem:
        return None


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# Paging of every list endpoint.
LimitQuery = Annotated[int, Query(ge=1, le=200, description="how many items to return")]
OffsetQuery = Annotated[int, Query(ge=0, le=1_000_000, description="how many items to skip")]

SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
OptionalTemporalDep = Annotated[Client | None, Depends(optional_temporal)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_db)]


async def get_job_store(db: DatabaseDep) -> JobStore:
    return JobStore(db)


JobStoreDep = Annotated[JobStore, Depends(get_job_store)]


async def get_pipeline_store(db: DatabaseDep) -> PipelineStore:
    return PipelineStore(db)


PipelineStoreDep = Annotated[PipelineStore, Depends(get_pipeline_store)]


class KeyHolder(NamedTuple):
    """What a request needs to know about the live key it came with."""

    key_id: uuid.UUID
    role: str
    tenant_id: uuid.UUID
    tier: str


# Every authenticated request runs this: one lookup by a unique index (api_key.key_hash), joined to the tenant.
KEY_HOLDER = """
    SELECT k.id, k.role, t.id, t.tier
    FROM api_key k JOIN tenant t ON t.id = k.tenant_id
    WHERE k.key_hash = %(key_hash)s AND k.revoked_at IS NULL
"""


async def key_holder(session: AsyncSession, key: str) -> KeyHolder | None:
    """The caller behind a live key, in one round trip; None for a key that is unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    rows = await driver_rows(session, KEY_HOLDER, {"key_hash": hash_key(key)})
    return KeyHolder(*rows[0]) if rows else None


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one of its keys, with that key's role."""

    tenant_id: uuid.UUID
    tier: Tier
    role: Role
    key_id: uuid.UUID


async def authenticate(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "an API key is required: send Authorization: Bearer <key>", headers=unauthorized)
    holder = await key_holder(session, credentials.credentials)
    if holder is None:
        raise Problem(401, "the API key is not valid or has been revoked", headers=unauthorized)
    bind_log_ids(tenant_id=holder.tenant_id)  # every line of this request from here on, and its access line, name it
    return Principal(tenant_id=holder.tenant_id, tier=Tier(holder.tier), role=Role(holder.role), key_id=holder.key_id)


def check_role(principal: Principal, role: Role) -> Principal:
    if not principal.role.allows(role):
        raise Problem(403, f"this needs the {role.value} role; the key has {principal.role.value}")
    return principal


def require(role: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        return check_role(principal, role)

    check.required_role = role  # type: ignore[attr-defined]
    return check


def dependencies_of(dependant: Any) -> list[Any]:
    """Every dependency of a route, depth first."""
    found = []
    for sub in dependant.dependencies:
        found += [sub, *dependencies_of(sub)]
    return found


def owned_by_path(parameter: str, role: Role | None = None) -> Callable[[Any], Any]:
    """Marks a dependency `(object id, principal, session) -> row` that answers 404 for another tenant's object
    named by the path `parameter`, so refusal_before_body can run it too. With `role`, the lookup checks the role
    itself, after the tenancy: another tenant's object is a 404 whatever the key's role (CONTRACT: never 403)."""

    def mark(lookup: Any) -> Any:
        lookup.path_parameter = parameter
        if role is not None:
            lookup.required_role = role
        return lookup

    return mark


async def refusal_before_body(request: Request) -> Problem | None:
    """The 401, 403 or 404 a request would get if its body were valid: FastAPI parses the body before it runs
    dependencies, and a caller without the right key, or asking about another tenant's object, must learn that,
    not what is wrong with the body."""
    route: Any = request.scope.get("route")
    dependencies = [d.call for d in dependencies_of(route.dependant)] if hasattr(route, "dependant") else []
    role = next(
        (getattr(call, "required_role", None) for call in dependencies if getattr(call, "required_role", None)), None
    )
    if role is None:
        return None
    credentials = await bearer(request)
    db: Database = request.app.state.db
    async with db.session() as session:
        try:
            principal = await authenticate(session, credentials)
            for lookup in (call for call in dependencies if hasattr(call, "path_parameter")):
                try:
                    object_id = uuid.UUID(str(request.path_params.get(lookup.path_parameter)))
                except ValueError:
                    return None  # the malformed id is part of the validation error
                await lookup(object_id, principal, session)
            check_role(principal, role)
        except Problem as refusal:
            return refusal
    return None


MarketerDep = Annotated[Principal, Depends(require(Role.MARKETER))]
SupervisorDep = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
# Any valid key, whatever its role: for routes that check the tenancy of their object before the role.
KeyDep = Annotated[Principal, Depends(authenticate)]
