"""channels: connected accounts, connection attempts, OAuth clients

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "oauth_client",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=500), nullable=False),
        sa.Column("redirect_uri", sa.String(length=1000), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "service", "redirect_uri", name="uq_oauth_client"),
    )
    op.create_table(
        "channel",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=500), nullable=False),
        sa.Column("account_id", sa.String(length=500), nullable=False),
        sa.Column("handle", sa.String(length=500), nullable=False),
        sa.Column("display_name", sa.String(length=500), nullable=False),
        sa.Column("account_url", sa.String(length=1000), nullable=True),
        sa.Column("credentials", sa.Text(), nullable=False),
        sa.Column("rules", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connected_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "platform", name="uq_channel_company_platform"),
    )
    op.create_index(op.f("ix_channel_company_id"), "channel", ["company_id"], unique=False)
    op.create_index(op.f("ix_channel_tenant_id"), "channel", ["tenant_id"], unique=False)
    op.create_table(
        "channel_attempt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=500), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=True),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("created_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state_hash"),
    )
    op.create_index(op.f("ix_channel_attempt_company_id"), "channel_attempt", ["company_id"], unique=False)
    op.create_index(op.f("ix_channel_attempt_tenant_id"), "channel_attempt", ["tenant_id"], unique=False)


def downgrade() -> None:

    op.drop_index(op.f("ix_channel_attempt_tenant_id"), table_name="channel_attempt")
    op.drop_index(op.f("ix_channel_attempt_company_id"), table_name="channel_attempt")
    op.drop_table("channel_attempt")
    op.drop_index(op.f("ix_channel_tenant_id"), table_name="channel")
    op.drop_index(op.f("ix_channel_company_id"), table_name="channel")
    op.drop_table("channel")
    op.drop_table("oauth_client")
