"""Factories for the connection history tests: meetings and their connection records."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.readiness.models import ConnectionOutcome, ConnectionRecord
from meetings.schedule.models import Occurrence, OccurrenceState, Series, SeriesKind

# The first test meeting: 07:30 in Huế on a Monday, long enough ago to be history.
FIRST = datetime(2026, 11, 2, 0, 30, tzinfo=UTC)


async def series(db: AsyncSession, title: str = "Họp giao ban sáng") -> Series:
    """A morning series to hang meetings on (found again by title)."""
    found = await db.scalar(select(Series).where(Series.title == title))
    if found is not None:
        return found
    row = Series(
        uid=f"history-test-{title}",
        title=title,
        description="",
        kind=SeriesKind.MORNING,
        start_time=time(7, 30),
        duration_minutes=45,
        weekdays="MO,TU,WE,TH,FR",
        start_date=date(2026, 11, 2),
        end_date=None,
        timezone="Asia/Ho_Chi_Minh",
        organizer_email="vp@hue.example",
        organizer_name="VP",
    )
    db.add(row)
    await db.flush()
    return row


async def meeting(db: AsyncSession, n: int) -> Occurrence:
    """The n-th test meeting (one a day from FIRST), ended."""
    owner = await series(db)
    start = FIRST + timedelta(days=n)
    found = await db.scalar(
        select(Occurrence).where(Occurrence.series_id == owner.id, Occurrence.original_start == start)
    )
    if found is not None:
        return found
    occ = Occurrence(
        series_id=owner.id,
        original_start=start,
        start=start,
        end=start + timedelta(minutes=45),
        state=OccurrenceState.ENDED,
        moved=False,
    )
    db.add(occ)
    await db.flush()
    return occ


def figures_for(outcome: ConnectionOutcome) -> dict[str, Any]:
    """Plausible figures for an outcome."""
    if outcome == ConnectionOutcome.GOOD:
        return {
            "join_delay_s": 0.0,
            "connected_s": 2700,
            "weak_s": 20,
            "dropouts": 0,
            "min_down_kbps": 1200.0,
        }
    if outcome == ConnectionOutcome.WEAK:
        return {
            "join_delay_s": 250.0,
            "connected_s": 2400,
            "weak_s": 720,
            "audio_only_s": 180,
            "dropouts": 2,
            "min_down_kbps": 180.0,
            "max_loss_pct": 8.5,
            "max_rtt_ms": 420.0,
        }
    if outcome == ConnectionOutcome.FAILED:
        return {"join_delay_s": None, "connected_s": 0, "weak_s": 0, "dropouts": 0}
    return {"join_delay_s": None, "connected_s": 0}


async def record(
    db: AsyncSession, unit_id: int, n: int, outcome: ConnectionOutcome, **overrides: Any
) -> ConnectionRecord:
    """The unit's connection record at the n-th test meeting."""
    occ = await meeting(db, n)
    values = {**figures_for(outcome), **overrides}
    row = ConnectionRecord(
        occurrence_id=occ.id, unit_id=unit_id, meeting_start=occ.start, outcome=outcome, details={}, **values
    )
    db.add(row)
    await db.flush()
    return row
