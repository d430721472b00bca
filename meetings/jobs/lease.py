"""Leases: a named role (the scheduler) held by one process at a time, renewed before it expires."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, utcnow


class Lease(Base):
    """Who holds a named role, until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def acquire(
    db: AsyncSession, name: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take or renew the lease for ttl; True when this holder has it. The caller commits.

    One UPDATE renews our own lease or takes an expired one; when there is no row yet, an
    INSERT … ON CONFLICT DO NOTHING creates it, so of two processes inserting at once only
    one wins. Times come from the nodes' clocks, which must agree to well under the ttl.
    """
    now = now or utcnow()
    values = {"holder": holder, "expires_at": now + ttl}
    result = await db.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) == 1:
        return True
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await db.execute(
        insert(Lease).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
    )
    return _rowcount(result) == 1


async def release(db: AsyncSession, name: str, holder: str) -> bool:
    """Give the lease up (on a clean shutdown) so a standby takes over at once. The caller commits."""
    result = await db.execute(
        delete(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def holder_of(db: AsyncSession, name: str, now: datetime | None = None) -> str | None:
    """Who holds the lease now, if anyone."""
    now = now or utcnow()
    return await db.scalar(select(Lease.holder).where(Lease.name == name, Lease.expires_at >= now))
