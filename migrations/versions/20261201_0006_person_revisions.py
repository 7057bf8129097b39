"""blog post revisions written by a person: who wrote each revision (the model, or a supervisor's edit) and, for
an edit, the API key it came through

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "blog_post_revision",
        sa.Column("written_by", sa.String(length=16), nullable=False, server_default="model"),
    )
    op.add_column("blog_post_revision", sa.Column("edited_by_key_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("blog_post_revision", "edited_by_key_id")
    op.drop_column("blog_post_revision", "written_by")
