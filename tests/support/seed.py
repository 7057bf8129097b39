"""One of every object a tenant can own, written straight to PostgreSQL, and the values the API's path
parameters take for them: what the auth matrix and the fuzzing run point the API at."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from api.keys import add_key
from models.db import Database
from models.enums import (
    Gate,
    JobStatus,
    JobType,
    MediaKind,
    PipelineStage,
    PipelineStatus,
    Platform,
    PublishState,
    Role,
)
from models.media_store import media_path
from models.pipeline import GateItem, GateView, month_after
from models.tables import (
    AIJob,
    ApiKey,
    BlogPost,
    BlogPostRevision,
    Channel,
    Company,
    MediaAsset,
    Persona,
    Pipeline,
    SocialPost,
    Topic,
)
from tests.support.stack import Tenant
from tests.support.stage_rows import add_dna
from workflows.policies import job_workflow_id

PERSONAS = 6


def next_month() -> str:
    """A month the API accepts for planning (the current one ends too soon to be safe near its last day)."""
    return month_after(datetime.now(UTC))


@dataclass(frozen=True)
class SeededTenant:
    """A tenant with one of every object (six personas, for a persona selection), and a revoked key.

    `marker` is written into every text field, so a response that carries any of this tenant's content
    can be told by it, as well as by an id.
    """

    tenant: Tenant
    marker: str
    company_id: uuid.UUID
    dna_id: uuid.UUID
    persona_ids: list[uuid.UUID]
    topic_id: uuid.UUID
    blog_post_id: uuid.UUID
    revision_id: uuid.UUID
    social_post_id: uuid.UUID
    media_id: uuid.UUID
    media_bytes: bytes
    job_id: uuid.UUID
    pipeline_id: uuid.UUID
    key_id: uuid.UUID  # a spare marketer key, for the routes that take a key id
    channel_id: uuid.UUID
    revoked_key: str  # an admin key, revoked
    workflow_ids: list[str] = field(default_factory=list)

    @property
    def persona_id(self) -> uuid.UUID:
        return self.persona_ids[0]

    def path_values(self) -> dict[str, str]:
        """Path parameter name -> this tenant's object of that kind."""
        return {
            "tenant_id": str(self.tenant.id),
            "company_id": str(self.company_id),
            "dna_id": str(self.dna_id),
            "persona_id": str(self.persona_id),
            "topic_id": str(self.topic_id),
            "blog_post_id": str(self.blog_post_id),
            "post_id": str(self.blog_post_id),
            "revision_id": str(self.revision_id),
            "social_post_id": str(self.social_post_id),
            "media_id": str(self.media_id),
            "job_id": str(self.job_id),
            "pipeline_id": str(self.pipeline_id),
            "key_id": str(self.key_id),
            "channel_id": str(self.channel_id),
            "platform": "mastodon",
        }

    def fingerprints(self) -> set[str]:
        """Every string that would show this tenant's data in a response: ids, workflow ids, the marker."""
        ids = {self.tenant.id, self.company_id, self.dna_id, *self.persona_ids, self.topic_id, self.blog_post_id}
        ids |= {self.revision_id, self.social_post_id, self.media_id, self.job_id, self.pipeline_id, self.key_id}
        ids |= {self.channel_id}
        return {str(i) for i in ids} | {i.hex for i in ids} | {self.marker, *self.workflow_ids}


async def seed_tenant(db: Database, tenant: Tenant, media_dir: Path) -> SeededTenant:
    """Company, DNA, personas, topic, blog post with a revision, social post, an image with its file under
    `media_dir`, a COMPLETED job with its events, a pipeline waiting at the personas gate, a spare key and a
    revoked one. No workflow is started: the job's and the pipeline's workflow ids name nothing in Temporal."""
    marker = f"seeded-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    async with db.session() as session:
        company = Company(
            tenant_id=tenant.id,
            name=f"Company {marker}",
            website="https://acme.example",
            industry=f"Robots {marker}",
            timezone="Europe/Prague",
        )
        session.add(company)
        await session.commit()
    dna = await add_dna(db, company)
    t, c = tenant.id, company.id
    media_bytes = b"\x89PNG\r\n\x1a\n" + marker.encode()
    async with db.session() as session:
        personas = [
            Persona(
                tenant_id=t,
                company_id=c,
                position=i,
                name=f"Persona {i} {marker}",
                role="Plant manager",
                details={"summary": marker},
            )
            for i in range(PERSONAS)
        ]
        session.add_all(personas)
        await session.flush()
        topic = Topic(
            tenant_id=t,
            company_id=c,
            persona_id=personas[0].id,
            month=next_month(),
            title=f"Topic {marker}",
            angle=marker,
            keywords=[marker],
        )
        session.add(topic)
        await session.flush()
        post = BlogPost(
            tenant_id=t,
            company_id=c,
            topic_id=topic.id,
            title=f"Post {marker}",
            slug=marker,
            meta_description=marker,
            keywords=[marker],
        )
        session.add(post)
        await session.flush()
        revision = BlogPostRevision(tenant_id=t, blog_post_id=post.id, revision=1, markdown=f"# {marker}", word_count=2)
        social = SocialPost(
            tenant_id=t,
            company_id=c,
            blog_post_id=post.id,
            platform=Platform.LINKEDIN,
            text=f"Social {marker}",
            hashtags=[f"#{marker}"],
            publish_state=PublishState.DRAFT,
        )
        session.add_all([revision, social])
        await session.flush()
        image = MediaAsset(
            tenant_id=t,
            company_id=c,
            social_post_id=social.id,
            kind=MediaKind.IMAGE,
            mime_type="image/png",
            path="",
            size_bytes=len(media_bytes),
            width=1200,
            height=627,
            alt_text=marker,
            prompt=marker,
        )
        image.path = media_path(tenant.id, image.id, image.mime_type)
        (media_dir / image.path).parent.mkdir(parents=True, exist_ok=True)
        (media_dir / image.path).write_bytes(media_bytes)
        session.add(image)

        gate = GateView(
            gate=Gate.PERSONAS,
            items=[GateItem(id=p.id, title=p.name, detail=marker) for p in personas],
            deadline=now + timedelta(days=7),
            opened_at=now,
        )
        pipeline = Pipeline(
            tenant_id=t,
            company_id=c,
            month=next_month(),
            tier=tenant.tier,
            platforms=[Platform.LINKEDIN.value],
            status=PipelineStatus.AWAITING_APPROVAL,
            stage=PipelineStage.AWAITING_PERSONA_SELECTION,
            pending_gate=gate.model_dump(mode="json"),
            workflow_id="",
        )
        pipeline.workflow_id = f"pipeline-{company.id}-{pipeline.month}-{marker}"
        session.add(pipeline)

        job = AIJob(
            tenant_id=t, company_id=c, job_type=JobType.GENERATE_DNA, progress_message="queued", params={"note": marker}
        )
        job.workflow_id = job_workflow_id(job.id)
        session.add(job)

        # A connected Bluesky account whose credentials no deployment key reads: enough for the routes that name it.
        channel = Channel(
            tenant_id=t,
            company_id=c,
            platform=Platform.BLUESKY,
            service="https://bsky.social",
            account_id=f"did:plc:{marker}",
            handle=f"{marker}.bsky.social",
            display_name=marker,
            credentials=f"unreadable-{marker}",
        )
        session.add(channel)

        _, spare = await add_key(session, tenant.id, Role.MARKETER)
        revoked_key, revoked = await add_key(session, tenant.id, Role.ADMIN)
        revoked.revoked_at = now
        await session.commit()

    # A job that ran: the trigger on ai_job writes an event per change, so its stream has progress and an end.
    for status, progress in ((JobStatus.PROCESSING, 50), (JobStatus.COMPLETED, 100)):
        async with db.session() as session:
            done = status == JobStatus.COMPLETED
            await session.exec(  # type: ignore[call-overload]
                sa.update(AIJob)
                .where(col(AIJob.id) == job.id)
                .values(
                    status=status.value,
                    progress=progress,
                    progress_message=f"{status.value.lower()} {marker}",
                    started_at=now,
                    completed_at=datetime.now(UTC) if done else None,
                    result_data={"dnaId": str(dna.id), "note": marker} if done else None,
                )
            )
            await session.commit()

    return SeededTenant(
        tenant=tenant,
        marker=marker,
        company_id=company.id,
        dna_id=dna.id,
        persona_ids=[p.id for p in personas],
        topic_id=topic.id,
        blog_post_id=post.id,
        revision_id=revision.id,
        social_post_id=social.id,
        media_id=image.id,
        media_bytes=media_bytes,
        job_id=job.id,
        pipeline_id=pipeline.id,
        key_id=spare.id,
        channel_id=channel.id,
        revoked_key=revoked_key,
        workflow_ids=[pipeline.workflow_id, job.workflow_id],
    )


def minimal_bodies(owner: SeededTenant) -> dict[str, dict[str, Any]]:
    """The smallest valid body per request schema of the document, naming `owner`'s objects where the schema
    takes an id: past validation, what answers is the auth and tenancy check, or the real thing for the owner."""
    month = next_month()
    return {
        "CompanyCreate": {"name": "Matrix company"},
        "CompanyUpdate": {"name": "Matrix company"},
        "PersonasJobCreate": {},
        "TopicsJobCreate": {"personaId": str(owner.persona_id), "month": month},
        "BlogPostJobCreate": {"topicId": str(owner.topic_id)},
        "SocialJobCreate": {"blogPostId": str(owner.blog_post_id), "platforms": ["linkedin"]},
        "ImageJobCreate": {"socialPostId": str(owner.social_post_id)},
        "VideoJobCreate": {"blogPostId": str(owner.blog_post_id)},
        "PipelineCreate": {"month": month, "platforms": ["linkedin"]},
        "SelectPersonas": {"selectedPersonaIds": [str(p) for p in owner.persona_ids[:3]]},
        "TopicDecision": {"approvedTopicIds": [str(owner.topic_id)], "rejected": []},
        "BlogPostVerdictIn": {"decision": "approve"},
        "FailureVerdictIn": {"decision": "drop"},
        "ApiKeyCreate": {"role": "marketer"},
        "BlogPostEdit": {"markdown": "# Matrix\n\nEdited."},
        "SocialPostEdit": {"text": "Matrix text"},
        "SocialPostMove": {"publishAt": "2030-01-01T09:00:00"},
        "PublishAgainIn": {"receiverChecked": True},
        # A public address as a literal: it resolves offline, and nothing is sent to it when it is set.
        "WebhookConfig": {"url": "https://93.184.215.14/matrix"},
        # Public literal addresses that answer nothing here: the worker finds the platform unreachable.
        "ChannelCreate": {
            "platform": "bluesky",
            "handle": "matrix.bsky.social",
            "appPassword": "abcd-efgh-ijkl-mnop",
            "service": "https://93.184.215.14",
        },
        "ChannelConnect": {"platform": "mastodon", "instance": "https://93.184.215.14"},
    }


def schema_name(schema: dict[str, Any]) -> str | None:
    """The component a request body refers to, directly or as the non-null branch of an optional body."""
    ref = schema.get("$ref") or next((s["$ref"] for s in schema.get("anyOf", []) if "$ref" in s), None)
    return str(ref).rsplit("/", 1)[-1] if ref else None


async def counts_of(db: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    """How many rows of each kind the tenant has, and how many of its keys are live: to show nothing changed."""
    tables: dict[str, Any] = {
        "companies": Company,
        "jobs": AIJob,
        "pipelines": Pipeline,
        "personas": Persona,
        "topics": Topic,
        "blog posts": BlogPost,
        "social posts": SocialPost,
        "media": MediaAsset,
        "keys": ApiKey,
    }
    found: dict[str, int] = {}
    async with db.session() as session:
        for name, table in tables.items():
            statement = sa.select(sa.func.count()).select_from(table).where(col(table.tenant_id) == tenant_id)
            found[name] = int((await session.exec(statement)).one()[0])  # type: ignore[call-overload]
        live = (
            sa.select(sa.func.count())
            .select_from(ApiKey)
            .where(col(ApiKey.tenant_id) == tenant_id, col(ApiKey.revoked_at).is_(None))
        )
        found["live keys"] = int((await session.exec(live)).one()[0])  # type: ignore[call-overload]
    return found
