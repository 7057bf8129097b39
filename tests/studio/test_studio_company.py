"""The studio's company pages over plain HTTP against the real stack: the list, a company's page with its DNA's
data points and numbered sources and its pipelines (hostile text shown as text), the edit form (CSRF, refusals
that change nothing), another tenant's company as the 404 page, and deleting (an admin's, with a confirmation)."""

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from models.db import Database
from models.enums import PipelineStage, PipelineStatus, Role
from models.tables import Company, CompanyDNA, Pipeline
from tests.studio.test_studio_http import csrf_of, signed_in
from tests.support.stack import RunningStack, Tenant

HOSTILE_NAME = '<script>alert("name")</script> Robots & Co'
HOSTILE_VALUE = "<script>alert('value')</script><img src=x onerror=alert(1)>"
SOURCES = [
    {"url": "https://acme.example/about", "title": "About <b>Acme</b>"},
    {"url": "javascript:alert(1)", "title": "A trap"},
    {"url": "https://news.example/acme", "title": ""},
]


async def company_with_work(db: Database, tenant: Tenant, status: PipelineStatus) -> tuple[Company, Pipeline]:
    """A company with a hostile name, a DNA (two versions: the page shows the latest) and one pipeline."""
    async with db.session() as session:
        company = Company(
            tenant_id=tenant.id,
            name=HOSTILE_NAME,
            website="https://acme.example",
            country="CZ",
            industry="Robots <i>for</i> plants",
            timezone="Europe/Prague",
        )
        session.add(company)
        await session.flush()
        old = CompanyDNA(
            tenant_id=tenant.id,
            company_id=company.id,
            version=1,
            summary="Old summary",
            data_points=[{"name": "Outdated", "category": "company", "value": "old", "source_indexes": [0]}],
            sources=SOURCES[:1],
        )
        latest = CompanyDNA(
            tenant_id=tenant.id,
            company_id=company.id,
            version=2,
            summary="Acme builds robots for small factories.",
            data_points=[
                {"name": "Founded", "category": "company", "value": "2015", "source_indexes": [0, 2]},
                {"name": "Slogan", "category": "brand", "value": HOSTILE_VALUE, "source_indexes": [1]},
                {"name": "Headcount", "category": "company", "value": "40", "source_indexes": [7]},
            ],
            sources=SOURCES,
        )
        pipeline = Pipeline(
            tenant_id=tenant.id,
            company_id=company.id,
            month="2027-05",
            platforms=["linkedin"],
            status=status,
            stage=PipelineStage.AWAITING_TOPIC_APPROVAL
            if status == PipelineStatus.AWAITING_APPROVAL
            else PipelineStage.DONE,
            workflow_id=f"pipeline-studio-company-{uuid.uuid4()}",
            completed_at=None if status == PipelineStatus.AWAITING_APPROVAL else datetime.now(UTC),
        )
        session.add_all([old, latest, pipeline])
        await session.commit()
    return company, pipeline


async def stored(db: Database, company_id: uuid.UUID) -> dict[str, Any] | None:
    """The company's row as it is in the database now (None: deleted)."""
    async with db.session() as session:
        row = await session.get(Company, company_id)
        return row.model_dump() if row is not None else None


async def test_the_company_page_shows_its_dna_with_sources_and_its_pipelines_as_text(
    stack: RunningStack, db: Database, tenant: Tenant
) -> None:
    company, pipeline = await company_with_work(db, tenant, PipelineStatus.COMPLETED)
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        listed = await client.get("/studio/companies")
        assert listed.status_code == 200, listed.text
        assert f'href="/studio/companies/{company.id}"' in listed.text
        assert "<script>alert" not in listed.text and "&lt;script&gt;alert(&#34;name&#34;)" in listed.text

        answer = await client.get(f"/studio/companies/{company.id}")
        assert answer.status_code == 200, answer.text
        html = answer.text
        # Hostile text is shown, escaped; nothing of it is markup.
        assert "<script>alert" not in html and "<img src=x" not in html and "<i>for</i>" not in html
        assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt; Robots &amp; Co" in html
        assert "&lt;script&gt;alert(&#39;value&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
        assert "About &lt;b&gt;Acme&lt;/b&gt;" in html
        # The latest DNA: every data point with its value and its sources as numbered links to the list.
        assert "Acme builds robots for small factories." in html and "Outdated" not in html
        founded = re.search(r"<th scope=\"row\"[^>]*>Founded</th>.*?</tr>", html, re.S)
        assert founded, html
        assert "2015" in founded.group(0)
        assert 'href="#source-1"' in founded.group(0) and 'href="#source-3"' in founded.group(0)
        headcount = re.search(r">Headcount</th>.*?</tr>", html, re.S)
        assert headcount and "#source-" not in headcount.group(0)  # an index outside the list is no link
        assert re.search(r'<li id="source-1" value="1"[^>]*><a href="https://acme.example/about"', html)
        assert re.search(r'<li id="source-3" value="3"[^>]*><a href="https://news.example/acme"', html)
        # A source URL that is no http(s) URL is text, never a link.
        assert 'href="javascript:' not in html and "javascript:alert(1)" in html
        # The pipelines, each with a link to its page.
        assert f'href="/studio/pipelines/{pipeline.id}"' in html and "2027-05" in html and "COMPLETED" in html
        # The edit form: labelled fields, the CSRF token, the button.
        for name, label in (("name", "Name"), ("website", "Website"), ("timezone", "Time zone")):
            assert f'<label for="company-{name}">{label}</label>' in html
            assert f'id="company-{name}" name="{name}"' in html
        assert f'name="csrf_token" value="{csrf_of(html)}"' in html and ">Save company</button>" in html
        # A marketer sees the delete form disabled, with the reason.
        assert re.search(r'<button type="submit" class="danger" disabled[^>]*>Delete company</button>', html)
        assert "Only an admin can delete a company: this key has the marketer role." in html


async def test_editing_needs_the_csrf_token_and_a_refusal_changes_nothing(
    stack: RunningStack, db: Database, tenant: Tenant
) -> None:
    company, _ = await company_with_work(db, tenant, PipelineStatus.COMPLETED)
    url = f"/studio/companies/{company.id}"
    fields = {
        "name": "Acme Robotics",
        "website": "https://acme.example",
        "country": "CZ",
        "language": "en",
        "industry": "Robots",
        "timezone": "Europe/Prague",
    }
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        token = csrf_of((await client.get(url)).text)
        forged = await client.post(url, data=fields)
        assert forged.status_code == 403 and "Form refused" in forged.text
        wrong = await client.post(url, data={**fields, "csrf_token": "0" * 64})
        assert wrong.status_code == 403
        assert (await stored(db, company.id)) == company.model_dump()

        refused = await client.post(
            url,
            data={**fields, "name": "Renamed", "timezone": "Mars/Olympus", "website": "ftp://x", "csrf_token": token},
        )
        assert refused.status_code == 422, refused.text
        assert "Nothing was changed." in refused.text
        assert re.search(r'id="company-timezone-error" class="error-text">unknown time zone', refused.text)
        assert "website must start with http:// or https://" in refused.text
        assert 'aria-invalid="true"' in refused.text
        assert 'value="Mars/Olympus"' in refused.text and 'value="Renamed"' in refused.text  # what was typed stays
        assert (await stored(db, company.id)) == company.model_dump()

        blank = await client.post(url, data={**fields, "name": "   ", "csrf_token": token})
        assert blank.status_code == 422 and 'id="company-name-error"' in blank.text
        assert (await stored(db, company.id)) == company.model_dump()

        saved = await client.post(
            url, data={**fields, "name": "  Acme <New> ", "website": "", "industry": "", "csrf_token": token}
        )
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"].startswith(f"{url}?notice=")
        after = await stored(db, company.id)
        assert after == {
            **company.model_dump(),
            "name": "Acme <New>",
            "website": None,
            "industry": None,
            "language": "en",
        }
        shown = await client.get(saved.headers["location"])
        assert "Company saved." in shown.text and "Acme &lt;New&gt;" in shown.text
        # The API reads the same.
        api = await stack.http.get(f"/api/v1/companies/{company.id}", headers=tenant.headers())
        assert api.json()["name"] == "Acme <New>" and api.json()["website"] is None


async def test_another_tenants_company_is_the_404_page(
    stack: RunningStack, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    company, _ = await company_with_work(db, tenant, PipelineStatus.COMPLETED)
    url = f"/studio/companies/{company.id}"
    async with signed_in(stack, other_tenant.keys[Role.ADMIN]) as client:
        own = await client.get("/studio/companies")
        assert own.status_code == 200 and str(company.id) not in own.text
        token = csrf_of(own.text)
        for answer in (
            await client.get(url),
            await client.post(url, data={"name": "Stolen", "csrf_token": token}),
            await client.post(f"{url}/delete", data={"confirm": "yes", "csrf_token": token}),
            await client.get(f"/studio/companies/{uuid.uuid4()}"),
        ):
            assert answer.status_code == 404 and "Not found" in answer.text, answer.text
            assert "Robots &amp; Co" not in answer.text
    assert (await stored(db, company.id)) == company.model_dump()


async def test_deleting_is_refused_for_a_marketer(stack: RunningStack, db: Database, tenant: Tenant) -> None:
    company, _ = await company_with_work(db, tenant, PipelineStatus.COMPLETED)
    url = f"/studio/companies/{company.id}"
    async with signed_in(stack, tenant.keys[Role.MARKETER]) as client:
        token = csrf_of((await client.get(url)).text)
        refused = await client.post(f"{url}/delete", data={"confirm": "yes", "csrf_token": token})
        assert refused.status_code == 403, refused.text
        assert "Only an admin can delete a company" in refused.text
    assert await stored(db, company.id) is not None


async def test_an_admin_deletes_a_company_after_confirming(stack: RunningStack, db: Database, tenant: Tenant) -> None:
    company, pipeline = await company_with_work(db, tenant, PipelineStatus.AWAITING_APPROVAL)
    url = f"/studio/companies/{company.id}"
    async with signed_in(stack, tenant.keys[Role.ADMIN]) as client:
        page = (await client.get(url)).text
        assert re.search(r'<button type="submit" class="danger"\s*>Delete company</button>', page)
        assert 'name="confirm" value="yes" required' in page
        assert "I understand this deletes everything this company produced" in page
        token = csrf_of(page)

        without_csrf = await client.post(f"{url}/delete", data={"confirm": "yes"})
        assert without_csrf.status_code == 403
        unconfirmed = await client.post(f"{url}/delete", data={"csrf_token": token})
        assert unconfirmed.status_code == 422 and "Nothing was deleted." in unconfirmed.text
        # The pipeline waits at a gate: refused, named, nothing deleted.
        running = await client.post(f"{url}/delete", data={"confirm": "yes", "csrf_token": token})
        assert running.status_code == 409, running.text
        assert str(pipeline.id) in running.text and "Cancel it first" in running.text
        assert await stored(db, company.id) is not None

        async with db.session() as session:
            row = await session.get(Pipeline, pipeline.id)
            assert row is not None
            row.status, row.stage = PipelineStatus.CANCELLED, PipelineStage.DONE
            session.add(row)
            await session.commit()
        deleted = await client.post(f"{url}/delete", data={"confirm": "yes", "csrf_token": token})
        assert deleted.status_code == 303, deleted.text
        assert deleted.headers["location"].startswith("/studio/companies?notice=")
        listed = await client.get(deleted.headers["location"])
        assert "and everything it produced" in listed.text and "&lt;script&gt;" in listed.text
        assert f"/studio/companies/{company.id}" not in listed.text
        assert (await client.get(url)).status_code == 404
    assert await stored(db, company.id) is None
    async with db.session() as session:
        for table in (CompanyDNA, Pipeline):
            left = (await session.exec(select(table).where(col(table.company_id) == company.id))).all()
            assert left == [], table
