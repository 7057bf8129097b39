"""The tenant's webhook over the HTTP API: admins set it (and get the Standard Webhooks signing secret once),
replace and remove it; GET /tenant shows the URL, never the secret; bad URLs are 422, and so are URLs whose
host is or resolves to a non-public address unless the server allows private networks; other roles 403, no
key 401."""

import base64
from collections.abc import AsyncIterator

import pytest
from standardwebhooks import Webhook
from temporalio.testing import WorkflowEnvironment

from models import destinations
from models.db import Database
from models.enums import Role
from models.tables import Tenant as TenantRow
from publishers.webhook import send_notification
from tests.support.stack import RunningStack, Tenant, running_stack
from tests.support.webhook_receiver import receiving

PROBLEM = "application/problem+json"
HOOK = "https://hooks.example.com/content-pipeline?token=abc"
# What the fake resolver answers (the tests run without internet): a public address, and a private one.
FAKE_DNS = {"hooks.example.com": ["93.184.216.34"], "intranet.example.com": ["10.20.30.40"]}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API runs in this process: its resolver answers the names above, others as usual."""
    real = destinations.lookup

    async def lookup(host: str, port: int) -> list[str]:
        return FAKE_DNS[host] if host in FAKE_DNS else await real(host, port)

    monkeypatch.setattr(destinations, "lookup", lookup)


@pytest.fixture(scope="module")
async def refusing_stack(database_url: str, dev_temporal: WorkflowEnvironment) -> AsyncIterator[RunningStack]:
    """The API as deployed by default: webhooks only to public addresses."""
    async with running_stack(database_url, dev_temporal.client, webhook_allow_private_networks=False) as running:
        yield running


async def tenant_row(db: Database, tenant: Tenant) -> TenantRow:
    async with db.session() as session:
        row = await session.get(TenantRow, tenant.id)
    assert row is not None
    return row


async def test_an_admin_sets_replaces_and_removes_the_webhook(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    admin = tenant.headers(Role.ADMIN)
    before = await stack.http.get("/api/v1/tenant", headers=tenant.headers())
    assert before.status_code == 200 and before.json()["webhookUrl"] is None

    created = await stack.http.put("/api/v1/tenant/webhook", json={"url": HOOK}, headers=admin)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["url"] == HOOK and body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    # A Standard Webhooks secret: whsec_ and the base64 of 32 random bytes (the HMAC key).
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"), validate=True)) == 32
    Webhook(body["secret"])
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
        answer = await stack.http.put(
            "/api/v1/tenant/webhook", json={"url": receiver.url}, headers=tenant.headers(Role.ADMIN)
        )
        receiver.secret = answer.json()["secret"]
        sent = await send_notification(
            receiver.url, receiver.secret, "webhook.test", {}, timeout_seconds=2, allow_private_networks=True
        )
        assert sent == 204
    assert [r.verified for r in receiver.requests] == [True]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.SUPERVISOR])
async def test_only_an_admin_may_change_the_webhook(
    stack: RunningStack, tenant: Tenant, db: Database, role: Role
) -> None:
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
        await stack.http.put(
            "/api/v1/tenant/webhook", json={"url": HOOK}, headers={"Authorization": "Bearer cpk_nope"}
        ),
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
    ids=[
        "ftp",
        "no-scheme",
        "words",
        "no-host",
        "userinfo",
        "bad-port",
        "javascript",
        "too-long",
        "empty",
        "number",
        "nul",
        "extra-field",
        "missing",
    ],
)
async def test_a_bad_webhook_url_is_422(
    stack: RunningStack, tenant: Tenant, db: Database, body: dict[str, object]
) -> None:
    response = await stack.http.put("/api/v1/tenant/webhook", json=body, headers=tenant.headers(Role.ADMIN))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["errors"]
    assert (await tenant_row(db, tenant)).webhook_url is None


# ---- where a webhook may point -------------------------------------------------------------------------------

NON_PUBLIC = {
    "temporal": ("http://127.0.0.1:7233", "127.0.0.1"),
    "metadata": ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    "ipv6-loopback": ("http://[::1]", "::1"),
    "unspecified": ("http://0.0.0.0", "0.0.0.0"),
    "decimal": ("http://2130706433", "127.0.0.1"),
    "private": ("http://10.0.0.1", "10.0.0.1"),
    "hex": ("http://0x7f.1/hook", "127.0.0.1"),
    "ipv4-mapped": ("http://[::ffff:127.0.0.1]/hook", "127.0.0.1"),
    "name-to-private": ("https://intranet.example.com/hook", "10.20.30.40"),
    "cgnat": ("http://100.64.0.9/hook", "100.64.0.9"),
}


@pytest.mark.parametrize(("url", "address"), list(NON_PUBLIC.values()), ids=list(NON_PUBLIC))
async def test_a_non_public_webhook_is_422_naming_the_address_and_changes_nothing(
    refusing_stack: RunningStack, tenant: Tenant, db: Database, url: str, address: str
) -> None:
    admin = tenant.headers(Role.ADMIN)
    first = await refusing_stack.http.put("/api/v1/tenant/webhook", json={"url": HOOK}, headers=admin)
    assert first.status_code == 200, first.text  # a public name is fine
    before = await tenant_row(db, tenant)

    response = await refusing_stack.http.put("/api/v1/tenant/webhook", json={"url": url}, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert address in problem["detail"] and "public internet address" in problem["detail"]
    assert problem["errors"][0]["field"] == "url" and problem["errors"][0]["type"] == "non_public_address"
    after = await tenant_row(db, tenant)
    assert (
        (after.webhook_url, after.webhook_secret)
        == (before.webhook_url, before.webhook_secret)
        == (
            HOOK,
            first.json()["secret"],
        )
    )


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "gopher://hooks.example.com/x", "file:///etc/passwd"])
async def test_only_http_and_https_are_accepted(
    refusing_stack: RunningStack, tenant: Tenant, db: Database, url: str
) -> None:
    admin = tenant.headers(Role.ADMIN)
    response = await refusing_stack.http.put("/api/v1/tenant/webhook", json={"url": url}, headers=admin)
    assert response.status_code == 422 and "http:// or https://" in response.text
    assert (await tenant_row(db, tenant)).webhook_url is None


async def test_a_name_that_does_not_resolve_is_422(refusing_stack: RunningStack, tenant: Tenant, db: Database) -> None:
    body = {"url": "https://no-such-host.invalid/hook"}
    response = await refusing_stack.http.put("/api/v1/tenant/webhook", json=body, headers=tenant.headers(Role.ADMIN))
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM)
    assert "no-such-host.invalid does not resolve" in response.json()["detail"]
    assert response.json()["errors"][0]["type"] == "unresolved_host"
    assert (await tenant_row(db, tenant)).webhook_url is None


@pytest.mark.parametrize(("url", "address"), list(NON_PUBLIC.values()), ids=list(NON_PUBLIC))
async def test_with_private_networks_allowed_they_are_accepted(
    stack: RunningStack, tenant: Tenant, db: Database, url: str, address: str
) -> None:
    assert stack.settings.webhook_allow_private_networks
    response = await stack.http.put("/api/v1/tenant/webhook", json={"url": url}, headers=tenant.headers(Role.ADMIN))
    assert response.status_code == 200, response.text
    assert (await tenant_row(db, tenant)).webhook_url == url
