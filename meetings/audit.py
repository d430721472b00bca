"""Audit log of administrative changes: who did what, to what, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """One administrative change."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


async def record(
    session: AsyncSession,
    *,
    actor_id: int | None,
    actor_email: str,
    action: str,
    target_type: str,
    target_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the current transaction (it commits with the change)."""
    entry = AuditEntry(
        actor_id=actor_id or None,  # 0 is the command line, not a person
        actor_email=actor_email,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        at=utcnow(),
    )
    session.add(entry)
    return entry


async def recent(session: AsyncSession, *, limit: int = 100, offset: int = 0) -> tuple[list[AuditEntry], int]:
    """The newest audit entries and the total count."""
    rows = await session.scalars(
        select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
    )
    total = await session.scalar(select(func.count()).select_from(AuditEntry))
    return list(rows), int(total or 0)
