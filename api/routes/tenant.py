"""The caller's own tenant and its API keys (admins manage keys; keys are shown once)."""

import uuid
from datetime import UTC, datetime

from sqlmodel import col, select

from api.deps import AdminDep, MarketerDep, SessionDep
from api.errors import not_found
from api.keys import add_key
from api.routes.companies import PROBLEMS
from api.routing import SlashRouter
from models.api import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, TenantPublic
from models.tables import ApiKey, Tenant

router = SlashRouter(tags=["tenant"])


@router.get("/tenant", response_model=TenantPublic, responses=PROBLEMS, summary="The caller's tenant")
async def get_tenant(principal: MarketerDep, session: SessionDep) -> Tenant:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise not_found("the tenant")
    return tenant


@router.get("/apikeys", response_model=list[ApiKeyPublic], responses=PROBLEMS, summary="The tenant's API keys (admin)")
async def list_keys(principal: AdminDep, session: SessionDep) -> list[ApiKey]:
    rows = await session.exec(
        select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id).order_by(col(ApiKey.created_at).desc())
    )
    return list(rows.all())


@router.post("/apikeys", status_code=201, response_model=ApiKeyCreated, responses=PROBLEMS, summary="Create an API key (admin)")
async def create_key(body: ApiKeyCreate, principal: AdminDep, session: SessionDep) -> ApiKeyCreated:
    key, row = await add_key(session, principal.tenant_id, body.role)
    await session.commit()
    return ApiKeyCreated(id=row.id, api_key=key, prefix=row.prefix, role=body.role)


@router.delete("/apikeys/{key_id}", status_code=204, responses=PROBLEMS, summary="Revoke an API key (admin)")
async def revoke_key(key_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> None:
    row = await session.get(ApiKey, key_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise not_found("the API key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        await session.commit()
