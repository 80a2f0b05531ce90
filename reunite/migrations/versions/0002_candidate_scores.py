"""candidate scores: normalised score and rank, superseded pending candidates, the rules a case
was matched by, and how a face was chosen among several

Revision ID: 0002
Revises: 0001
Created: 2026-12-01 17:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rank", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("matched_by_rules", sa.String(length=64), nullable=True))
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("face_choice", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("face_choice")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("matched_by_rules")
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("superseded_at")
        batch.drop_column("rank")
        batch.drop_column("score")
