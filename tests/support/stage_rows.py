"""Rows and runners for the stage tests: companies, DNA, personas, topics, posts and AIJobs written directly,
and a stage activity run in temporalio's ActivityEnvironment against the real database."""

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.deps import StageDeps
from models.contracts import StageInput, StageResult
from models.db import Database
from models.enums import JobStatus, JobType
from models.pipeline import JobSpec
from models.settings import Settings
from models.tables import AIJob, BlogPost, BlogPostRevision, Company, CompanyDNA, Persona, Pipeline, Topic
from providers.base import WorkKind
from providers.offline import OfflineProvider
from providers.router import ProviderRouter
from tests.support.stack import Tenant

DNA_SOURCES = [
    {"url": "https://acme.example/about", "title": "About Acme"},
    {"url": "https://news.example/acme-raises", "title": "Acme raises a seed round"},
    {"url": "https://registry.example/acme", "title": "Company registry entry"},
]


class RecordingProvider(OfflineProvider):
    """The offline provider, keeping every prompt it was sent (a repair request is marked as one)."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[tuple[str, bool]] = []

    async def _complete(self, prompt: str, *, repair: bool = False, **kwargs: Any) -> str:
        self.prompts.append((prompt, repair))
        return await super()._complete(prompt, repair=repair, **kwargs)

    def sent(self, containing: str) -> list[str]:
        return [prompt for prompt, _ in self.prompts if containing in prompt]

    @property
    def repairs(self) -> list[str]:
        return [prompt for prompt, repair in self.prompts if repair]


def stage_deps(db: Database, provider: OfflineProvider | None = None) -> StageDeps:
    provider = provider or OfflineProvider()
    router = ProviderRouter(chains={kind: [provider] for kind in WorkKind})
    return StageDeps(db=db, router=router, settings=Settings(_env_file=None))  # type: ignore[call-arg]


async def run_stage(
    method: Callable[[StageInput], Awaitable[StageResult]], job_id: uuid.UUID, spec: JobSpec | None = None
) -> StageResult:
    env = ActivityEnvironment()
    # The default test info allows one second per attempt; a stage's budget is the AI queue's 300 s.
    env.info = dataclasses.replace(env.info, start_to_close_timeout=timedelta(seconds=300))
    result: StageResult = await env.run(method, StageInput(job_id=job_id, spec=spec))
    return result


async def pipeline_job_spec(db: Database, company: Company, job_type: JobType, **fields: Any) -> JobSpec:
    """A Pipeline row of the company, and the spec of a job of it that no row exists for yet."""
    async with db.session() as session:
        pipeline = Pipeline(
            tenant_id=company.tenant_id, company_id=company.id, month="2026-03", workflow_id=f"pipeline-{uuid.uuid4()}"
        )
        session.add(pipeline)
        await session.commit()
    return JobSpec(
        job_id=uuid.uuid4(),
        job_type=job_type,
        tenant_id=company.tenant_id,
        company_id=company.id,
        pipeline_id=pipeline.id,
        workflow_id=pipeline.workflow_id,
        **fields,
    )


async def new_company(db: Database, tenant: Tenant, **fields: Any) -> Company:
    values: dict[str, Any] = {
        "name": f"Acme {uuid.uuid4().hex[:6]}",
        "website": "https://acme.example",
        "industry": "Industrial automation",
        "country": "Germany",
        "language": "en",
        **fields,
    }
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, **values)
        session.add(company)
        await session.commit()
        return company


async def add_dna(db: Database, company: Company, version: int = 1) -> CompanyDNA:
    points = [
        {"name": f"Fact {i}", "category": "company", "value": f"value {i} of {company.name}", "source_indexes": [i % 3]}
        for i in range(32)
    ]
    async with db.session() as session:
        dna = CompanyDNA(
            tenant_id=company.tenant_id,
            company_id=company.id,
            version=version,
            summary=f"{company.name} builds robots for small factories and sells them on subscription.",
            data_points=points,
            sources=DNA_SOURCES,
        )
        session.add(dna)
        await session.commit()
        return dna


async def add_persona(db: Database, company: Company, name: str = "Operations Olivia") -> Persona:
    async with db.session() as session:
        persona = Persona(
            tenant_id=company.tenant_id,
            company_id=company.id,
            name=name,
            role="Operations Manager",
            details={
                "summary": "Runs a 40-person plant and hates downtime.",
                "goals": ["less downtime", "safer shifts"],
            },
        )
        session.add(persona)
        await session.commit()
        return persona


async def add_topic(
    db: Database, persona: Persona, title: str = "Five ways to halve unplanned downtime", **fields: Any
) -> Topic:
    values: dict[str, Any] = {
        "month": "2026-03",
        "angle": "Downtime is a planning problem before it is a maintenance problem.",
        "keywords": ["downtime", "predictive maintenance"],
        **fields,
    }
    async with db.session() as session:
        topic = Topic(
            tenant_id=persona.tenant_id, company_id=persona.company_id, persona_id=persona.id, title=title, **values
        )
        session.add(topic)
        await session.commit()
        return topic


async def new_job(db: Database, company: Company, job_type: JobType, **fields: Any) -> AIJob:
    async with db.session() as session:
        job = AIJob(tenant_id=company.tenant_id, company_id=company.id, job_type=job_type, **fields)
        session.add(job)
        await session.commit()
        return job


async def job_row(db: Database, job_id: uuid.UUID) -> AIJob:
    async with db.session() as session:
        job = await session.get(AIJob, job_id)
        assert job is not None
        return job


async def reopen_job(db: Database, job_id: uuid.UUID) -> None:
    """The job as a retried attempt sees it when the artifacts were stored but the result was not: the
    writer's own idempotency is all that keeps a second set of rows out."""
    async with db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            sa.update(AIJob)
            .where(col(AIJob.id) == job_id)
            .values(status=JobStatus.PROCESSING.value, result_data=None, completed_at=None, progress=0)
        )
        await session.commit()


async def rows(db: Database, table: Any, *where: Any, order: Any = None) -> list[Any]:
    async with db.session() as session:
        statement = select(table).where(*where)
        if order is not None:
            statement = statement.order_by(order)
        return list((await session.exec(statement)).all())


async def blog_post_with_revision(
    db: Database, topic: Topic, markdown: str, title: str = "Halve your downtime"
) -> BlogPost:
    async with db.session() as session:
        post = BlogPost(
            tenant_id=topic.tenant_id,
            company_id=topic.company_id,
            topic_id=topic.id,
            title=title,
            slug="halve-your-downtime",
            meta_description="How small plants cut unplanned downtime in half.",
            keywords=["downtime"],
            target_words=2000,
        )
        session.add(post)
        await session.flush()
        session.add(
            BlogPostRevision(
                tenant_id=topic.tenant_id,
                blog_post_id=post.id,
                revision=1,
                markdown=markdown,
                word_count=len(markdown.split()),
            )
        )
        await session.commit()
        return post
