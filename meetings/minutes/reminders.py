"""The reminder rule: the secretary is reminded only while the minutes are not yet submitted.

The "minutes are due" job (meetings.schedule.jobs) runs `minutes_due_minutes` after a meeting
ends and asks `needs_reminder` before queuing its mail.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.minutes.models import Minutes, MinutesStatus


async def needs_reminder(db: AsyncSession, occurrence_id: int) -> bool:
    """True when the meeting has no minutes yet, or its minutes are still a draft."""
    status = await db.scalar(select(Minutes.status).where(Minutes.occurrence_id == occurrence_id))
    return status is None or status == MinutesStatus.DRAFT
