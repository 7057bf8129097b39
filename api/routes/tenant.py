"""The caller's own tenant, its API keys and its webhook (admins manage both; keys and secrets are shown once)."""

import base64
import secrets
import uuid
from datetime import UTC, datetime

from sqlmodel import col, select

from api.deps import AdminDep, KeyDep, MarketerDep, SessionDep, SettingsDep, check_role
from api.errors import PROBLEMS, Problem, not_found
from api.keys import add_key
from api.routing import SlashRouter
from models.api import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, TenantPublic, WebhookConfig, WebhookCreated
from models.destinations import DestinationError, check_url
from models.enums import Role
from models.tables import ApiKey, Tenant

router = SlashRouter(tags=["tenant"])

# Standard Webhooks secrets: `whsec_` and the base64 of random bytes, which are the HMAC key.
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = 32


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(WEBHOOK_SECRET_BYTES)).decode("ascii")


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


@router.post(
    "/apikeys", status_code=201, response_model=ApiKeyCreated, responses=PROBLEMS, summary="Create an API key (admin)"
)
async def create_key(body: ApiKeyCreate, principal: AdminDep, session: SessionDep) -> ApiKeyCreated:
    key, row = await add_key(session, principal.tenant_id, body.role)
    await session.commit()
    return ApiKeyCreated(id=row.id, api_key=key, prefix=row.prefix, role=body.role)


@router.delete("/apikeys/{key_id}", status_code=204, responses=PROBLEMS, summary="Revoke an API key (admin)")
async def revoke_key(key_id: uuid.UUID, principal: KeyDep, session: SessionDep) -> None:
    row = await session.get(ApiKey, key_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise not_found("the API key")  # another tenant's key is a 404 whatever the caller's role
    check_role(principal, Role.ADMIN)
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        await session.commit()


@router.put(
    "/tenant/webhook",
    response_model=WebhookCreated,
    responses=PROBLEMS,
    summary="Set the webhook that receives posts and notices (admin); answers a new signing secret, once",
)
async def set_webhook(
    body: WebhookConfig, principal: AdminDep, session: SessionDep, settings: SettingsDep
) -> WebhookCreated:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise not_found("the tenant")
    # The publisher checks the address again at every send (DNS may change); this catches the mistake now.
    try:
        await check_url(body.url, allow_private_networks=settings.webhook_allow_private_networks)
    except DestinationError as exc:
        detail = f"the webhook URL cannot be used: {exc}"
        error = {"field": "url", "message": str(exc), "type": exc.code}
        raise Problem(422, detail, title="Unprocessable Content", errors=[error]) from None
    # Every PUT rotates the secret. It is stored in clear, unlike API keys (kept as hashes): signing
    # with HMAC needs the secret itself, so a hash would be useless here.
    secret = new_webhook_secret()
    tenant.webhook_url = body.url
    tenant.webhook_secret = secret
    session.add(tenant)
    await session.commit()
    return WebhookCreated(url=body.url, secret=secret)


@router.delete(
    "/tenant/webhook", status_code=204, responses=PROBLEMS, summary="Remove the webhook and its secret (admin)"
)
async def delete_webhook(principal: AdminDep, session: SessionDep) -> None:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise not_found("the tenant")
    if tenant.webhook_url is not None or tenant.webhook_secret is not None:
        tenant.webhook_url = None
        tenant.webhook_secret = None
        session.add(tenant)
        await session.commit()
