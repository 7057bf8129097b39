"""pipelines gates and publishing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:52:07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("blog_post", sa.Column("target_words", sa.Integer(), server_default="0", nullable=False))
    op.add_column("media_asset", sa.Column("alt_text", sa.Text(), server_default="", nullable=False))
    op.add_column("pipeline", sa.Column("tier", sa.String(length=32), server_default="free", nullable=False))
    op.add_column("pipeline", sa.Column("pending_gate", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column(
        "pipeline", sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False)
    )
    op.add_column("social_post", sa.Column("image_prompt", sa.Text(), server_default="", nullable=False))
    op.add_column("social_post", sa.Column("publish_error", sa.Text(), nullable=True))
    op.add_column("topic", sa.Column("previous_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("topic", "previous_id")
    op.drop_column("social_post", "publish_error")
    op.drop_column("social_post", "image_prompt")
    op.drop_column("pipeline", "summary")
    op.drop_column("pipeline", "pending_gate")
    op.drop_column("pipeline", "tier")
    op.drop_column("media_asset", "alt_text")
    op.drop_column("blog_post", "target_words")
