"""Migration 0009 creates exactly the readiness tables and the units' phone and operator."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select

from meetings.db.base import Base
from meetings.directory.models import Unit, UnitKind
from tests.conftest import World

TABLES = {"connection_checks", "readiness_marks", "connection_records", "units"}


async def test_migration_0009_matches_the_models(world: World) -> None:
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in TABLES
        table = getattr(obj, "table", None)
        return table is None or table.name in TABLES

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        found = list(compare_metadata(context, Base.metadata))
        # The phone's server default only fills the rows that existed before the migration.
        found = [d for d in found if d[0] != "modify_default"]
        if conn.dialect.name == "sqlite":
            # SQLite reflects an inline foreign key without its name; the next test proves it acts.
            found = [d for d in found if not (d[0] in ("add_fk", "remove_fk") and d[1].table.name == "units")]
        return found

    async with world.db() as db:
        conn = await db.connection()
        assert await conn.run_sync(diff) == []


async def test_a_units_operator_is_cleared_when_the_operator_is_deleted(world: World) -> None:
    async with world.db() as db, db.begin():
        operator = Unit(code="VNPT-T", kind=UnitKind.TELECOM, name="VNPT", search_text="vnpt")
        db.add(operator)
        await db.flush()
        centre = Unit(
            code="C-T", kind=UnitKind.CENTRE, name="C", phone="0234 3822 111", operator_id=operator.id
        )
        db.add(centre)
        await db.flush()
        await db.delete(operator)
    async with world.db() as db:
        row = (await db.execute(select(Unit.operator_id, Unit.phone).where(Unit.code == "C-T"))).one()
        assert tuple(row) == (None, "0234 3822 111")
