"""Migration 0006 creates exactly the tables of the register, the figures and the manual models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from meetings.db.base import Base
from tests.conftest import World

TABLES = {
    "issues",
    "issue_events",
    "figures_reports",
    "figures_revisions",
    "figures_tokens",
    "manual_articles",
    "manual_revisions",
    "manual_sources",
}


async def test_migration_0006_matches_the_models(world: World) -> None:
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in TABLES
        if type_ == "column" and name == "search_vector":
            return False  # PostgreSQL's generated tsvector for full-text search, outside the ORM
        if type_ == "index" and name == "ix_manual_articles_fts":
            return False
        table = getattr(obj, "table", None)
        return table is None or table.name in TABLES

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with world.db() as db:
        conn = await db.connection()
        assert await conn.run_sync(diff) == []
