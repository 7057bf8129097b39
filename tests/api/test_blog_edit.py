"""A supervisor's own edit of a blog post, saved as its next revision: who may, when, what is checked, and how the
studio shows it (hostile Markdown stays text)."""

import uuid

from sqlmodel import col, select

from models.db import Database
from models.enums import JobStatus, JobType, Role
from models.tables import AIJob, BlogPost, BlogPostRevision, Company, Persona, Topic
from tests.support.stack import RunningStack, Tenant

CITATIONS = [
    {"number": 1, "url": "https://news.example/one", "title": "One"},
    {"number": 2, "url": "https://news.example/two", "title": "Two"},
]


async def draft_post(db: Database, tenant: Tenant, status: str = "DRAFT") -> tuple[uuid.UUID, uuid.UUID]:
    """A company with a draft blog post at revision 1 (two sources); returns (company id, post id)."""
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Edit Co", website="https://edit.example")
        session.add(company)
        await session.flush()
        persona = Persona(tenant_id=tenant.id, company_id=company.id, name="Pat", role="Plant manager")
        session.add(persona)
        await session.flush()
        topic = Topic(tenant_id=tenant.id, company_id=company.id, persona_id=persona.id, month="2027-01", title="T")
        session.add(topic)
        await session.flush()
        post = BlogPost(
            tenant_id=tenant.id, company_id=company.id, topic_id=topic.id, title="Halve your downtime", slug="h"
        )
        post.status = status
        session.add(post)
        await session.flush()
        session.add(
            BlogPostRevision(
                tenant_id=tenant.id,
                blog_post_id=post.id,
                revision=1,
                markdown="# Halve your downtime\n\nPlants lose hours [1] and money [2].",
                word_count=9,
                citations=CITATIONS,
            )
        )
        await session.commit()
        return company.id, post.id


async def test_a_supervisor_edit_becomes_the_next_revision_written_by_a_person(
    stack: RunningStack, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    company, post = await draft_post(db, tenant)
    url = f"/api/v1/companies/{company}/blogposts/{post}/revisions/"
    text = "# Halve your downtime\n\nPlants lose hours [1], money [2] and sleep [1]."
    supervisor = tenant.headers(Role.SUPERVISOR)

    # Who: a marketer is refused (403), another tenant's supervisor sees nothing (404).
    assert (await stack.http.post(url, json={"markdown": text}, headers=tenant.headers())).status_code == 403
    foreign = await stack.http.post(url, json={"markdown": text}, headers=other_tenant.headers(Role.SUPERVISOR))
    assert foreign.status_code == 404
    # What: markers must name the post's sources, one number each; an unchanged or empty text is refused.
    for bad, words in (
        ("Hours [3].", "point at no source"),
        ("Hours [1, 2].", "one number per citation marker"),
        ("# Halve your downtime\n\nPlants lose hours [1] and money [2].\n", "the same as revision 1"),
    ):
        refused = await stack.http.post(url, json={"markdown": bad}, headers=supervisor)
        assert refused.status_code == 422 and words in refused.json()["detail"], refused.text
    assert (await stack.http.post(url, json={"markdown": ""}, headers=supervisor)).status_code == 422

    saved = await stack.http.post(url, json={"markdown": text}, headers=supervisor)
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["revision"] == 2 and body["writtenBy"] == "person" and body["wordCount"] == 9
    assert body["citations"] == [{"number": c["number"], "url": c["url"], "title": c["title"]} for c in CITATIONS]
    detail = (await stack.http.get(f"/api/v1/companies/{company}/blogposts/{post}", headers=tenant.headers())).json()
    assert detail["currentRevision"] == 2 and detail["markdown"] == text
    assert [r["writtenBy"] for r in detail["revisions"]] == ["model", "person"]
    async with db.session() as session:
        row = (await session.exec(select(BlogPostRevision).where(col(BlogPostRevision.blog_post_id) == post))).all()
        assert {r.revision: r.edited_by_key_id is not None for r in row} == {1: False, 2: True}


async def test_only_a_draft_waiting_for_review_can_be_edited(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    supervisor = tenant.headers(Role.SUPERVISOR)
    company, post = await draft_post(db, tenant, status="APPROVED")
    approved = await stack.http.post(
        f"/api/v1/companies/{company}/blogposts/{post}/revisions/", json={"markdown": "New [1]."}, headers=supervisor
    )
    assert approved.status_code == 409 and "APPROVED" in approved.json()["detail"]

    company, post = await draft_post(db, tenant)
    async with db.session() as session:
        topic_id = (await session.get(BlogPost, post)).topic_id  # type: ignore[union-attr]
        session.add(
            AIJob(
                tenant_id=tenant.id,
                company_id=company,
                job_type=JobType.GENERATE_BLOGPOST,
                status=JobStatus.PROCESSING,
                topic_id=topic_id,
            )
        )
        await session.commit()
    writing = await stack.http.post(
        f"/api/v1/companies/{company}/blogposts/{post}/revisions/", json={"markdown": "New [1]."}, headers=supervisor
    )
    assert writing.status_code == 409 and "being written" in writing.json()["detail"]
    async with db.session() as session:
        assert (await session.get(BlogPost, post)).current_revision == 1  # type: ignore[union-attr]
