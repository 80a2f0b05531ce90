"""agencies an admin keeps (the intake form's list), staff display names, and the undo of a
decision (which decision a later one undid)

Revision ID: 0003
Revises: 0002
Created: 2026-12-01 20:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))
    with op.batch_alter_table("candidate_decisions") as batch:
        batch.add_column(sa.Column("undoes_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("candidate_decisions") as batch:
        batch.drop_column("undoes_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("display_name")
    op.drop_table("agencies")
