"""Personal calendar feeds: a secret, revocable address serving a person's series as iCalendar."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.errors import N_, NotFound
from meetings.schedule import ical
from meetings.schedule.invitations import cal_series
from meetings.schedule.models import FeedToken, Series, SeriesStatus

# The address is "<row id>.<HMAC of a random nonce>": the database keeps only the nonce, so the
# address can be shown again, yet a stolen database without the secret key cannot forge one.


def _mac(secret: str, row_id: int, nonce: str) -> str:
    return hmac.new(secret.encode(), f"feed:{row_id}:{nonce}".encode(), hashlib.sha256).hexdigest()[:40]


async def current_token(db: AsyncSession, secret: str, person_id: int) -> str | None:
    """The person's live feed token, if they have one."""
    row = await db.scalar(
        select(FeedToken).where(FeedToken.person_id == person_id, FeedToken.revoked_at.is_(None))
    )
    return f"{row.id}.{_mac(secret, row.id, row.nonce)}" if row else None


async def renew_token(db: AsyncSession, secret: str, person_id: int) -> str:
    """Revoke the person's feed address (if any) and make a new one."""
    await db.execute(
        update(FeedToken)
        .where(FeedToken.person_id == person_id, FeedToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    row = FeedToken(person_id=person_id, nonce=secrets.token_hex(20))
    db.add(row)
    await db.flush()
    return f"{row.id}.{_mac(secret, row.id, row.nonce)}"


async def revoke_token(db: AsyncSession, person_id: int) -> None:
    """Stop the person's feed address from working."""
    await db.execute(
        update(FeedToken)
        .where(FeedToken.person_id == person_id, FeedToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def person_for_token(db: AsyncSession, secret: str, token: str) -> Person:
    """The active person whose live feed token this is; NotFound otherwise (no hint why)."""
    row_id, _, mac = token.partition(".")
    if not row_id.isdigit() or len(row_id) > 12 or len(mac) != 40:
        raise NotFound(N_("This calendar address does not exist."))
    row = await db.get(FeedToken, int(row_id))
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(_mac(secret, row.id, row.nonce), mac)
    ):
        raise NotFound(N_("This calendar address does not exist."))
    person = await db.get(Person, row.person_id)
    if person is None or not person.active:
        raise NotFound(N_("This calendar address does not exist."))
    return person


async def feed_for(db: AsyncSession, person: Person, ctx: object) -> bytes:
    """The person's calendar: their active series with every exception, no METHOD, no attendees."""
    from meetings.schedule.invitations import join_url
    from meetings.schedule.service import Context, series_of_person, working_calendar

    assert isinstance(ctx, Context)
    calendar = await working_calendar(db)
    ids = await series_of_person(db, person)
    series_list = (
        list(await db.scalars(select(Series).where(Series.id.in_(ids), Series.status == SeriesStatus.ACTIVE)))
        if ids
        else []
    )
    cals = [
        await cal_series(db, s, calendar, ctx, location=join_url(s, person, ctx), attendees=[])
        for s in series_list
    ]
    return ical.feed(cals, ctx.now, name="Giao Ban")
