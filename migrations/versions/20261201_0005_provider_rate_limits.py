"""provider rate limits: a token bucket per (provider, requests|tokens), shared by every worker process

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_rate_bucket",
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("budget", sa.String(length=16), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "budget"),
    )


def downgrade() -> None:
    op.drop_table("provider_rate_bucket")
