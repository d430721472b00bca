"""The benchmarks' own PostgreSQL database, beside the test database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url

from meetings.db import create_engine
from meetings.db.migrate import upgrade


async def reset_postgres(url: str) -> str:
    """The bench's own PostgreSQL database (created if missing), emptied and migrated."""
    base = make_url(url)
    name = f"{base.database}_bench"
    admin = create_engine(url)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    bench_url = base.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(bench_url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(engine)
    await engine.dispose()
    return bench_url
