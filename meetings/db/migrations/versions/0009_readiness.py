"""readiness: units' phone and operator, connection checks, board marks, connection records

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VERDICT = sa.Enum("video", "audio", "failed", name="checkverdict", native_enum=False, length=16)
_OUTCOME = sa.Enum(
    "good", "weak", "failed", "excused", name="connectionoutcome", native_enum=False, length=16
)


def upgrade() -> None:
    # Columns added in place, the foreign key inline (batch mode would rebuild units, and on
    # SQLite a rebuilt parent table cascades its ON DELETE actions: what migration 0008 avoided).
    op.add_column("units", sa.Column("phone", sa.String(length=32), nullable=False, server_default=""))
    if op.get_bind().dialect.name == "sqlite":  # alembic adds no constraint there; SQLite takes it inline
        op.execute(
            "ALTER TABLE units ADD COLUMN operator_id INTEGER CONSTRAINT fk_units_operator_id_units "
            "REFERENCES units (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("units", sa.Column("operator_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_units_operator_id_units"), "units", "units", ["operator_id"], ["id"], ondelete="SET NULL"
        )
    op.create_table(
        "connection_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", _VERDICT, nullable=False),
        sa.Column("rtt_ms", sa.Float(), nullable=True),
        sa.Column("loss_pct", sa.Float(), nullable=True),
        sa.Column("up_kbps", sa.Float(), nullable=True),
        sa.Column("down_kbps", sa.Float(), nullable=True),
        sa.Column("camera_ok", sa.Boolean(), nullable=True),
        sa.Column("microphone_ok", sa.Boolean(), nullable=True),
        sa.Column("speaker_ok", sa.Boolean(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_connection_checks_occurrence_id_occurrences"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_connection_checks_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_connection_checks_unit_id_units"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_checks")),
    )
    op.create_index("ix_connection_checks_person_id", "connection_checks", ["person_id"])
    op.create_index("ix_connection_checks_unit_at", "connection_checks", ["unit_id", "at"])
    op.create_table(
        "readiness_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("excused", sa.Boolean(), nullable=False),
        sa.Column("excuse_reason", sa.Text(), nullable=False),
        sa.Column("excused_by_id", sa.Integer(), nullable=True),
        sa.Column("excused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("helper_id", sa.Integer(), nullable=True),
        sa.Column("help_note", sa.Text(), nullable=False),
        sa.Column("help_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["excused_by_id"],
            ["people.id"],
            name=op.f("fk_readiness_marks_excused_by_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["helper_id"],
            ["people.id"],
            name=op.f("fk_readiness_marks_helper_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_readiness_marks_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_readiness_marks_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readiness_marks")),
        sa.UniqueConstraint("occurrence_id", "unit_id", name="uq_readiness_marks_occurrence_unit"),
    )
    op.create_index("ix_readiness_marks_occurrence_id", "readiness_marks", ["occurrence_id"])
    op.create_table(
        "connection_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("meeting_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", _OUTCOME, nullable=False),
        sa.Column("join_delay_s", sa.Float(), nullable=True),
        sa.Column("connected_s", sa.Integer(), nullable=False),
        sa.Column("weak_s", sa.Integer(), nullable=False),
        sa.Column("audio_only_s", sa.Integer(), nullable=False),
        sa.Column("dropouts", sa.Integer(), nullable=False),
        sa.Column("min_down_kbps", sa.Float(), nullable=True),
        sa.Column("max_loss_pct", sa.Float(), nullable=True),
        sa.Column("max_rtt_ms", sa.Float(), nullable=True),
        sa.Column("follow_up_issue_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["follow_up_issue_id"],
            ["issues.id"],
            name=op.f("fk_connection_records_follow_up_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_connection_records_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_connection_records_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_records")),
        sa.UniqueConstraint("occurrence_id", "unit_id", name="uq_connection_records_occurrence_unit"),
    )
    op.create_index("ix_connection_records_occurrence_id", "connection_records", ["occurrence_id"])
    op.create_index("ix_connection_records_unit_start", "connection_records", ["unit_id", "meeting_start"])


def downgrade() -> None:
    op.drop_table("connection_records")
    op.drop_table("readiness_marks")
    op.drop_table("connection_checks")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_units_operator_id_units"), "units", type_="foreignkey")
    op.drop_column("units", "operator_id")  # SQLite 3.35+ drops a column in place
    op.drop_column("units", "phone")
