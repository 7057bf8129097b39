"""job events (with the trigger that writes them and NOTIFYs), idempotency keys, rate buckets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:06:49
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every change of an AIJob's status, progress or message becomes a job_event row, and listeners of
# `ai_job_events` hear `{"job": id, "event": n}`: the SSE stream is pushed, never polled.
EVENT_FUNCTION = """
CREATE OR REPLACE FUNCTION ai_job_event() RETURNS trigger AS $$
DECLARE
    event_id bigint;
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.status IS NOT DISTINCT FROM OLD.status
       AND NEW.progress IS NOT DISTINCT FROM OLD.progress
       AND NEW.progress_message IS NOT DISTINCT FROM OLD.progress_message THEN
        RETURN NEW;
    END IF;
    INSERT INTO job_event (tenant_id, job_id, status, progress, message)
    VALUES (NEW.tenant_id, NEW.id, NEW.status, NEW.progress, NEW.progress_message)
    RETURNING id INTO event_id;
    PERFORM pg_notify('ai_job_events', json_build_object('job', NEW.id, 'event', event_id)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""
EVENT_TRIGGER = """
CREATE TRIGGER ai_job_event AFTER INSERT OR UPDATE OF status, progress, progress_message ON ai_job
FOR EACH ROW EXECUTE FUNCTION ai_job_event()
"""


def upgrade() -> None:
    op.create_table(
        "rate_bucket",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "key"),
    )
    op.create_table(
        "job_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["ai_job.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_job_event_job_id"), "job_event", ["job_id"], unique=False)
    op.execute(EVENT_FUNCTION)
    op.execute(EVENT_TRIGGER)
    # Jobs made before this migration start their stream from their current state.
    op.execute(
        "INSERT INTO job_event (tenant_id, job_id, status, progress, message)"
        " SELECT tenant_id, id, status, progress, progress_message FROM ai_job ORDER BY created_at"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ai_job_event ON ai_job")
    op.execute("DROP FUNCTION IF EXISTS ai_job_event()")
    op.drop_index(op.f("ix_job_event_job_id"), table_name="job_event")
    op.drop_table("job_event")
    op.drop_table("idempotency_key")
    op.drop_table("rate_bucket")
