"""monitor: each invited unit's running connection measure while its meeting goes on

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 22:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connection_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("measured", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_connection_progress_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_connection_progress_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_progress")),
        sa.UniqueConstraint("occurrence_id", "unit_id", name="uq_connection_progress_occurrence_unit"),
    )
    op.create_index(
        op.f("ix_connection_progress_occurrence_id"), "connection_progress", ["occurrence_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_connection_progress_occurrence_id"), table_name="connection_progress")
    op.drop_table("connection_progress")
