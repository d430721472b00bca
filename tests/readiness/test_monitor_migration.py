"""Migration 0010 creates exactly the monitoring's running-measure table of the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from meetings.db.base import Base
from tests.conftest import World

TABLES = {"connection_progress"}


async def test_migration_0010_matches_the_model(world: World) -> None:
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in TABLES
        table = getattr(obj, "table", None)
        return table is None or table.name in TABLES

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with world.db() as db:
        conn = await db.connection()
        assert await conn.run_sync(diff) == []
