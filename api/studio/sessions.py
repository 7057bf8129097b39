"""The studio's sign-in: a signed session cookie made from an API key, and the CSRF token of every form.

The cookie never holds the key. It holds the key's id, when it was issued and a random nonce, signed with
HMAC-SHA256 keyed by the key's stored hash (as stream tokens are): only this deployment can make one, and it dies
with the key (every request looks the key up by id and refuses a revoked one) or when it expires. HttpOnly,
SameSite=Strict, Secure when the request came over https, path /studio.

Every form carries `csrf_token`, an HMAC of the session's nonce; a POST without the right one changes nothing.
The sign-in form (no session yet) is protected by a double-submit token: a random value in a short-lived
SameSite=Strict cookie that the form must repeat.
"""

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from api.deps import Principal, SessionDep, SettingsDep, driver_rows, key_holder
from models.enums import Role, Tier

SESSION_COOKIE = "studio_session"
SIGN_IN_COOKIE = "studio_sign_in"
COOKIE_PATH = "/studio"
SIGN_IN_TOKEN_SECONDS = 3600

# The studio's session: the key by id (never by the key itself), live, with its tenant, and the hash that signs.
SESSION_KEY = """
    SELECT k.id, k.role, t.id, t.tier, k.key_hash, t.name
    FROM api_key k JOIN tenant t ON t.id = k.tenant_id
    WHERE k.id = %(key_id)s AND k.revoked_at IS NULL
"""


class SignInRequired(Exception):
    """No live session: the page answers with the sign-in form (htmx: a redirect to it); `reason` is a code of
    pages.SIGNED_OUT_REASONS ("" when there was no session at all)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A form came without this session's CSRF token: nothing was changed."""


@dataclass(frozen=True)
class StudioUser:
    """Who is signed in: the key's principal, the tenant's name, and the session's CSRF token."""

    principal: Principal
    tenant_name: str
    csrf_token: str

    @property
    def can_decide(self) -> bool:
        return self.principal.role.allows(Role.SUPERVISOR)

    @property
    def role(self) -> Role:
        return self.principal.role


def _sign(key_hash: str, purpose: str, payload: str) -> str:
    return hmac.new(key_hash.encode(), f"{purpose}.{payload}".encode(), hashlib.sha256).hexdigest()


def session_value(key_id: uuid.UUID, key_hash: str, issued: int | None = None) -> str:
    """`<key id>.<issued, unix seconds>.<nonce>.<signature>`."""
    payload = f"{key_id.hex}.{issued if issued is not None else int(time.time())}.{secrets.token_hex(16)}"
    return f"{payload}.{_sign(key_hash, 'studio-session', payload)}"


def csrf_of(key_hash: str, nonce: str) -> str:
    return _sign(key_hash, "studio-csrf", nonce)


def _parse(value: str) -> tuple[uuid.UUID, int, str, str] | None:
    parts = value.split(".")
    if len(parts) != 4:
        return None
    key_hex, issued, nonce, signature = parts
    try:
        return uuid.UUID(hex=key_hex), int(issued), nonce, signature
    except ValueError:
        return None


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict")


async def sign_in(session: AsyncSession, key: str) -> tuple[str, uuid.UUID] | None:
    """A new session's cookie value for a live key; None for a key that is unknown or revoked."""
    holder = await key_holder(session, key.strip())
    if holder is None:
        return None
    rows = await driver_rows(session, SESSION_KEY, {"key_id": holder.key_id})
    if not rows:
        return None
    return session_value(holder.key_id, rows[0][4]), holder.key_id


async def studio_user(request: Request, session: SessionDep, settings: SettingsDep) -> StudioUser:
    """The signed-in user of a page; SignInRequired when there is no live session (none, forged, expired, or its
    key revoked)."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        raise SignInRequired()
    parsed = _parse(value)
    if parsed is None:
        raise SignInRequired("invalid")
    key_id, issued, nonce, signature = parsed
    if time.time() - issued > settings.studio_session_hours * 3600:
        raise SignInRequired("expired")
    rows = await driver_rows(session, SESSION_KEY, {"key_id": key_id})
    if not rows:
        raise SignInRequired("revoked")
    _, role, tenant_id, tier, key_hash, tenant_name = rows[0]
    if not hmac.compare_digest(signature, _sign(key_hash, "studio-session", f"{key_id.hex}.{issued}.{nonce}")):
        raise SignInRequired("invalid")
    principal = Principal(tenant_id=tenant_id, tier=Tier(tier), role=Role(role), key_id=key_id)
    return StudioUser(principal=principal, tenant_name=tenant_name, csrf_token=csrf_of(key_hash, nonce))


StudioUserDep = Annotated[StudioUser, Depends(studio_user)]


async def checked_form(request: Request, user: StudioUser) -> FormData:
    """The posted form, once its CSRF token is checked (a form field, or htmx's X-CSRF-Token header)."""
    form = await request.form()
    token = str(form.get("csrf_token") or request.headers.get("x-csrf-token") or "")
    if not token or not hmac.compare_digest(token, user.csrf_token):
        raise CsrfRefused()
    return form


def new_sign_in_token() -> str:
    return secrets.token_urlsafe(24)


def sign_in_token_ok(request: Request, posted: str) -> bool:
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    return bool(posted) and bool(expected) and hmac.compare_digest(posted, expected)
