"""The tenant's webhook over the HTTP API: admins set it (and get the signing secret once), replace and
remove it; GET /tenant shows the URL, never the secret; bad URLs are 422, other roles 403, no key 401."""

import pytest

from models.db import Database
from models.enums import Role
from models.tables import Tenant as TenantRow
from publishers.webhook import send_notification
from tests.conftest import RunningStack, Tenant
from tests.webhook_receiver import receiving

PROBLEM = "application/problem+json"
HOOK = "https://hooks.example.com/content-pipeline?token=abc"


async def tenant_row(db: Database, tenant: Tenant) -> TenantRow:
    async with db.session() as session:
        row = await session.get(TenantRow, tenant.id)
    assert row is not None
    return row


async def test_an_admin_sets_replaces_and_removes_the_webhook(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    admin = tenant.headers(Role.ADMIN)
    before = await stack.http.get("/api/v1/tenant", headers=tenant.headers())
    assert before.status_code == 200 and before.json()["webhookUrl"] is None

    created = await stack.http.put("/api/v1/tenant/webhook", json={"url": HOOK}, headers=admin)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["url"] == HOOK and body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    row = await tenant_row(db, tenant)
    assert (row.webhook_url, row.webhook_secret) == (HOOK, body["secret"])

    shown = await stack.http.get("/api/v1/tenant", headers=tenant.headers())
    assert shown.json()["webhookUrl"] == HOOK
    assert body["secret"] not in shown.text and "secret" not in shown.text.lower()

    # Setting it again rotates the secret.
    again = await stack.http.put("/api/v1/tenant/webhook/", json={"url": "http://127.0.0.1:9/hook"}, headers=admin)
    assert again.status_code == 200 and again.json()["secret"] != body["secret"]
    assert (await tenant_row(db, tenant)).webhook_secret == again.json()["secret"]

    removed = await stack.http.delete("/api/v1/tenant/webhook", headers=admin)
    assert removed.status_code == 204 and removed.content == b""
    row = await tenant_row(db, tenant)
    assert row.webhook_url is None and row.webhook_secret is None
    assert (await stack.http.get("/api/v1/tenant", headers=tenant.headers())).json()["webhookUrl"] is None
    assert (await stack.http.delete("/api/v1/tenant/webhook", headers=admin)).status_code == 204  # already gone


async def test_the_secret_returned_is_the_one_that_signs(stack: RunningStack, tenant: Tenant) -> None:
    async with receiving("notice", secret="placeholder") as receiver:
        answer = await stack.http.put("/api/v1/tenant/webhook", json={"url": receiver.url}, headers=tenant.headers(Role.ADMIN))
        receiver.secret = answer.json()["secret"]
        assert await send_notification(receiver.url, receiver.secret, "webhook.test", {}, timeout_seconds=2) == 204
    assert [r.verified for r in receiver.requests] == [True]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.SUPERVISOR])
async def test_only_an_admin_may_change_the_webhook(stack: RunningStack, tenant: Tenant, db: Database, role: Role) -> None:
    put = await stack.http.put("/api/v1/tenant/webhook", json={"url": HOOK}, headers=tenant.headers(role))
    delete = await stack.http.delete("/api/v1/tenant/webhook", headers=tenant.headers(role))
    for response in (put, delete):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
    assert (await tenant_row(db, tenant)).webhook_url is None


async def test_the_webhook_needs_a_key(stack: RunningStack) -> None:
    for response in (
        await stack.http.put("/api/v1/tenant/webhook", json={"url": HOOK}),
        await stack.http.delete("/api/v1/tenant/webhook"),
        await stack.http.put("/api/v1/tenant/webhook", json={"url": HOOK}, headers={"Authorization": "Bearer cpk_nope"}),
    ):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://hooks.example.com/x"},
        {"url": "hooks.example.com/x"},
        {"url": "not a url"},
        {"url": "http://"},
        {"url": "https://user:pass@hooks.example.com/x"},
        {"url": "https://hooks.example.com:99999/x"},
        {"url": "javascript:alert(1)"},
        {"url": "https://hooks.example.com/" + "a" * 2000},
        {"url": ""},
        {"url": 42},
        {"url": "https://hooks.example.com/\x00"},
        {"url": HOOK, "secret": "mine"},
        {},
    ],
    ids=["ftp", "no-scheme", "words", "no-host", "userinfo", "bad-port", "javascript", "too-long", "empty", "number", "nul", "extra-field", "missing"],
)
async def test_a_bad_webhook_url_is_422(stack: RunningStack, tenant: Tenant, db: Database, body: dict[str, object]) -> None:
    response = await stack.http.put("/api/v1/tenant/webhook", json=body, headers=tenant.headers(Role.ADMIN))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["errors"]
    assert (await tenant_row(db, tenant)).webhook_url is None
