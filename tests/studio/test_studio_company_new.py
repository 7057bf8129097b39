"""The studio's "New company" over plain HTTP against the real stack (offline: sample candidates): search, create a
candidate or a company typed in by hand, for the signed-in tenant only; a create without the CSRF token changes
nothing."""

import html
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlmodel import col, select

from models.db import Database
from models.enums import Role
from models.generation import SAMPLE_MARKER
from models.tables import Company
from tests.studio.test_studio_http import csrf_of, signed_in
from tests.support.stack import RunningStack, Tenant

NEW = "/studio/companies/new"
COMPANY_PAGE = re.compile(r"^/studio/companies/([0-9a-f-]{36})\?notice=")
CANDIDATE_FORM = re.compile(r'<form method="post" action="/studio/companies/new">(.*?)</form>', re.DOTALL)
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


async def companies_named(db: Database, tenant: Tenant, name: str) -> list[Company]:
    async with db.session() as session:
        rows = await session.exec(select(Company).where(col(Company.tenant_id) == tenant.id, col(Company.name) == name))
        return list(rows.all())


def candidate_forms(page: str) -> list[dict[str, str]]:
    """The hidden fields of each candidate's Create form (the manual form has none but the token)."""
    forms = []
    for body in CANDIDATE_FORM.findall(page):
        fields = {name: html.unescape(value) for name, value in HIDDEN.findall(body)}
        if "name" in fields:
            forms.append(fields)
    return forms


def created_id(response: httpx.Response) -> uuid.UUID:
    assert response.status_code == 303, response.text
    match = COMPANY_PAGE.match(response.headers["location"])
    assert match, response.headers["location"]
    return uuid.UUID(match.group(1))


async def test_search_then_create_a_candidate(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    query = f"Acme Studio {uuid.uuid4().hex[:6]}"
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        form = await client.get(NEW)
        assert form.status_code == 200
        assert '<label for="q">Company name</label>' in form.text and ">Search</button>" in form.text
        assert "Create without search" in form.text

        found = await client.get(NEW, params={"q": query})
        assert found.status_code == 200, found.text
        assert "These are <strong>samples</strong>" in found.text and SAMPLE_MARKER in html.unescape(found.text)
        forms = candidate_forms(found.text)
        assert len(forms) == 3
        assert forms[0]["name"] == f"{query} (sample)" and forms[0]["website"].endswith(".example")
        assert found.text.count(">Sample</span>") == 3
        assert (
            'name="timezone" type="text" value="UTC"' in found.text and '<option value="Europe/Prague">' in found.text
        )

        chosen = forms[0]
        created = await client.post(NEW, data={**chosen, "timezone": "Europe/Prague"})
        company_id = created_id(created)
        assert parse_qs(urlsplit(created.headers["location"]).query)["notice"] == [f"{query} (sample) was created."]

    rows = await companies_named(db, tenant, f"{query} (sample)")
    assert [(r.id, r.website, r.country, r.timezone) for r in rows] == [
        (company_id, chosen["website"], chosen["country"], "Europe/Prague")
    ]
    # The tenant's own company through the API; another tenant's key does not see it.
    mine = await stack.http.get(f"/api/v1/companies/{company_id}", headers=tenant.headers())
    assert mine.status_code == 200 and mine.json()["name"] == f"{query} (sample)"
    theirs = await stack.http.get(f"/api/v1/companies/{company_id}", headers=other_tenant.headers())
    assert theirs.status_code == 404
    assert await companies_named(db, other_tenant, f"{query} (sample)") == []


async def test_create_without_search_is_checked_as_the_api_checks(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    name = f"Hand Typed {uuid.uuid4().hex[:6]}"
    async with signed_in(stack, tenant.keys[Role.SUPERVISOR]) as client:
        token = csrf_of((await client.get(NEW)).text)
        wrong = await client.post(
            NEW, data={"csrf_token": token, "name": name, "website": "hand.example", "timezone": "Mars/Base"}
        )
        assert wrong.status_code == 422
        assert "Website: website must start with http:// or https://" in html.unescape(wrong.text)
        assert "Time zone: unknown time zone" in html.unescape(wrong.text) and "Nothing was created." in wrong.text
        assert f'value="{name}"' in wrong.text  # what was typed stays in the form
        assert await companies_named(db, tenant, name) == []

        made = await client.post(
            NEW, data={"csrf_token": token, "name": f"  {name} ", "website": "https://hand.example", "country": ""}
        )
        company_id = created_id(made)
    rows = await companies_named(db, tenant, name)
    assert [(r.id, r.website, r.country, r.timezone) for r in rows] == [
        (company_id, "https://hand.example", None, "UTC")
    ]


async def test_create_without_the_csrf_token_changes_nothing(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    name = f"Forged {uuid.uuid4().hex[:6]}"
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        refused = await client.post(NEW, data={"name": name, "website": "https://forged.example", "timezone": "UTC"})
        assert refused.status_code == 403 and "Form refused" in refused.text
        forged = await client.post(NEW, data={"csrf_token": "0" * 64, "name": name, "timezone": "UTC"})
        assert forged.status_code == 403
    assert await companies_named(db, tenant, name) == []
    # Signed out: the sign-in page, for the search as for the create.
    async with httpx.AsyncClient(base_url=stack.base_url) as stranger:
        assert (await stranger.get(NEW)).headers["location"] == "/studio/sign-in"
        assert (await stranger.post(NEW, data={"name": name})).headers["location"] == "/studio/sign-in"


async def test_a_bad_search_says_so_on_the_page(stack: RunningStack, tenant: Tenant) -> None:
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        short = await client.get(NEW, params={"q": " a "})
        assert short.status_code == 422 and "Type between 2 and 200 characters" in short.text
        assert candidate_forms(short.text) == []
