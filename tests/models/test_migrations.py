"""The schema's history: up from an empty database, matching the SQLModel tables, and back down."""

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import models.tables  # noqa: F401
from cli.migrate import alembic_config, upgrade_to_head
from models.settings import psycopg_url
from tests.support.stack import scratch_database

TABLES = {
    "tenant",
    "api_key",
    "company",
    "company_dna",
    "persona",
    "topic",
    "blog_post",
    "blog_post_revision",
    "social_post",
    "media_asset",
    "pipeline",
    "ai_job",
}


def tables_of(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_migrations_up_from_empty_match_the_models_and_go_down_again(server_url: str) -> None:
    with scratch_database(server_url) as url:
        assert tables_of(url) == set()
        upgrade_to_head(url)
        assert TABLES <= tables_of(url)

        engine = create_engine(psycopg_url(url))
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
        engine.dispose()
        assert diff == [], f"the models changed without a migration: {diff}"

        command.downgrade(alembic_config(url), "base")
        assert tables_of(url) <= {"alembic_version"}
        upgrade_to_head(url)
        assert TABLES <= tables_of(url)


# Tables of the deployment, not of a tenant: a provider's rate limits bind every tenant together.
# The deployment's own: the tenants themselves, a provider's budget, this deployment's app on an OAuth server.
DEPLOYMENT_TABLES = {"tenant", "provider_rate_bucket", "oauth_client"}


def test_every_table_is_tenant_scoped() -> None:
    for name, table in SQLModel.metadata.tables.items():
        if name not in DEPLOYMENT_TABLES:
            assert "tenant_id" in table.columns, f"{name} has no tenant_id"
