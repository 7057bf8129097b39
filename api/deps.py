"""FastAPI dependencies as Annotated aliases: the session, the caller, the Temporal client, the settings."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import Problem
from api.keys import principal_for_key
from models.db import Database
from models.enums import Role, Tier
from models.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key made with `content-pipeline apikey create`.")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client, connecting now if the engine was down when the API started."""
    client: Client | None = request.app.state.temporal
    if client is None:
        try:
            client = await asyncio.wait_for(request.app.state.connect_temporal(), timeout=3)
        except Exception as exc:
            raise Problem(503, "the workflow engine is not reachable; try again shortly", headers={"Retry-After": "5"}) from exc
        request.app.state.temporal = client
    assert client is not None
    return client


async def optional_temporal(request: Request) -> Client | None:
    """The Temporal client if the engine answers; reads that can do without it use this."""
    try:
        return await get_temporal(request)
    except Problem:
        return None


def get_settings_dep(request: Request) -> Settings:
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
    found = await principal_for_key(session, credentials.credentials)
    if found is None:
        raise Problem(401, "the API key is not valid or has been revoked", headers=unauthorized)
    api_key, tenant = found
    return Principal(tenant_id=tenant.id, tier=Tier(tenant.tier), role=Role(api_key.role), key_id=api_key.id)


def require(role: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.role.allows(role):
            raise Problem(403, f"this needs the {role.value} role; the key has {principal.role.value}")
        return principal

    check.required_role = role  # type: ignore[attr-defined]
    return check


def required_role(dependant: Any) -> Role | None:
    """The role a route's dependencies require (None: the route takes no key)."""
    for sub in dependant.dependencies:
        role = getattr(sub.call, "required_role", None) or required_role(sub)
        if role is not None:
            return role
    return None


async def refusal_before_body(request: Request) -> Problem | None:
    """The 401 or 403 a request would get if its body were valid: FastAPI parses the body before it runs
    dependencies, and a caller without the right key must learn that, not what is wrong with the body."""
    route = request.scope.get("route")
    role = required_role(route.dependant) if route is not None and hasattr(route, "dependant") else None
    if role is None:
        return None
    credentials = await bearer(request)
    db: Database = request.app.state.db
    async with db.session() as session:
        try:
            await require(role)(await authenticate(session, credentials))
        except Problem as refusal:
            return refusal
    return None


MarketerDep = Annotated[Principal, Depends(require(Role.MARKETER))]
SupervisorDep = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
