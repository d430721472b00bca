"""Alembic environment: runs migrations on a given connection or on the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from meetings.db.base import Base
from meetings.db.engine import create_engine
from meetings.db.models import import_all

import_all()
target_metadata = Base.metadata
config = context.config


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Leave APScheduler's job table alone: its job store creates and owns it."""
    return not (type_ == "table" and name == "apscheduler_jobs")


def run_on(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    """Open an engine on the configured URL and migrate."""
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as conn:
        await conn.run_sync(run_on)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
    else:
        asyncio.run(run_async())
