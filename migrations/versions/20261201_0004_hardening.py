"""hardening: SQL NULL instead of JSON null, the provider-failure budget, job steps, webhook delivery ids

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Nullable JSON columns that were written as the JSON value `null` (which `IS NOT NULL` matches).
NULLABLE_JSON = (("pipeline", "pending_gate"), ("ai_job", "result_data"))


def upgrade() -> None:
    for table, column in NULLABLE_JSON:
        op.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = 'null'::jsonb")
    op.add_column("ai_job", sa.Column("provider_failures", sa.Integer(), server_default="0", nullable=False))
    op.add_column("social_post", sa.Column("delivery_id", sa.String(length=64), nullable=True))
    op.add_column("social_post", sa.Column("delivery_attempts", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "job_step",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("data", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["ai_job.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("job_id", "step"),
    )


def downgrade() -> None:
    op.drop_table("job_step")
    op.drop_column("social_post", "delivery_attempts")
    op.drop_column("social_post", "delivery_id")
    op.drop_column("ai_job", "provider_failures")
