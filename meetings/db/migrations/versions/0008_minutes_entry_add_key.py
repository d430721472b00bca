"""minutes entries: an idempotency key per add, unique within the minutes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 12:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A column and a unique index: no table rebuild (on SQLite a rebuilt minutes_entries would
    # cascade-delete the entries' history on the way).
    op.add_column("minutes_entries", sa.Column("add_key", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_minutes_entries_minutes_add_key", "minutes_entries", ["minutes_id", "add_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_minutes_entries_minutes_add_key", table_name="minutes_entries")
    op.drop_column("minutes_entries", "add_key")  # SQLite 3.35+ drops a column in place
