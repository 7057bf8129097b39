"""Nullable JSON columns hold SQL NULL, never the JSON value `null` (which `IS NOT NULL` matches): the inbox
stays whole once a pipeline has passed a gate, and rows written before the fix are migrated."""

import uuid

import psycopg
import sqlalchemy as sa
from alembic import command
from sqlmodel import col
from temporalio.testing import ActivityEnvironment

from activities.pipeline import PipelineActivities
from cli.migrate import alembic_config
from models.db import Database
from models.enums import JobType, PipelineStage, PipelineStatus, Role
from models.records import PipelineRecord
from models.tables import AIJob, Company, Pipeline
from tests.support.stack import RunningStack, Tenant, scratch_database


async def test_the_inbox_answers_once_a_pipeline_has_passed_a_gate(
    stack: RunningStack, tenant: Tenant, db: Database
) -> None:
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Gate passed")
        session.add(company)
        await session.flush()
        pipeline = Pipeline(
            tenant_id=tenant.id, company_id=company.id, month="2030-01", workflow_id=f"wf-{uuid.uuid4()}"
        )
        session.add(pipeline)
        await session.commit()
    # The workflow's bookkeeping after a decision: no gate is open any more.
    record = PipelineRecord(pipeline_id=pipeline.id, seq=1, status=PipelineStatus.RUNNING, stage=PipelineStage.TOPICS)
    listing = await ActivityEnvironment().run(PipelineActivities(db).record_pipeline, record)
    assert listing.items == []  # no gate was opening

    async with db.session() as session:
        query = sa.select(col(Pipeline.pending_gate).is_(None)).where(col(Pipeline.id) == pipeline.id)
        stored = (await session.exec(query)).one()  # type: ignore[call-overload]
    assert stored[0], "pending_gate is SQL NULL"
    inbox = await stack.http.get("/api/v1/approvals/", headers=tenant.headers(Role.SUPERVISOR))
    assert inbox.status_code == 200, inbox.text
    assert all(item["pipelineId"] != str(pipeline.id) for item in inbox.json())


async def test_nullable_json_columns_store_sql_null(db: Database, tenant: Tenant) -> None:
    async with db.session() as session:
        company = Company(tenant_id=tenant.id, name="Null JSON")
        session.add(company)
        await session.flush()
        job = AIJob(tenant_id=tenant.id, company_id=company.id, job_type=JobType.GENERATE_DNA, result_data=None)
        session.add(job)
        await session.commit()
        query = sa.select(sa.func.count()).where(col(AIJob.id) == job.id, col(AIJob.result_data).is_not(None))
        found = (await session.exec(query)).one()  # type: ignore[call-overload]
    assert found[0] == 0


def test_the_migration_turns_stored_json_null_into_sql_null(server_url: str) -> None:
    with scratch_database(server_url) as url:
        command.upgrade(alembic_config(url), "0003")
        tenant, company, pipeline, job = (uuid.uuid4() for _ in range(4))
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO tenant (id, name, tier, created_at) VALUES (%s, 't', 'pro', now())", (tenant,))
            conn.execute(
                "INSERT INTO company (id, tenant_id, name, language, timezone, created_at)"
                " VALUES (%s, %s, 'c', 'en', 'UTC', now())",
                (company, tenant),
            )
            conn.execute(
                "INSERT INTO pipeline (id, tenant_id, company_id, month, tier, platforms, options, status, stage,"
                " pending_gate, summary, workflow_id, created_at)"
                " VALUES (%s, %s, %s, '2030-01', 'pro', '[]', '{}', 'RUNNING', 'topics', 'null'::jsonb, '{}', 'wf',"
                " now())",
                (pipeline, tenant, company),
            )
            conn.execute(
                "INSERT INTO ai_job (id, tenant_id, job_type, status, company_id, params, progress, progress_message,"
                " result_data, error_message, created_at, input_tokens, output_tokens, cost_usd, usage_records)"
                " VALUES (%s, %s, 'generate_dna', 'PENDING', %s, '{}', 0, '', 'null'::jsonb, '', now(), 0, 0, 0, '[]')",
                (job, tenant, company),
            )
        command.upgrade(alembic_config(url), "head")
        with psycopg.connect(url) as conn:
            gate = conn.execute("SELECT pending_gate IS NULL FROM pipeline WHERE id = %s", (pipeline,)).fetchone()
            result = conn.execute("SELECT result_data IS NULL FROM ai_job WHERE id = %s", (job,)).fetchone()
    assert gate == (True,) and result == (True,)
