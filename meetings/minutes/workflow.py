"""The life of minutes: draft → submitted → approved (locked, hashed) → published (emailed).

The content of a version is a canonical JSON text (sorted keys, no spaces, UTF-8); its SHA-256
is recorded at approval, so anyone can check that an exported or mailed version is the one the
chair approved. A correction after approval reopens the minutes as the next version; every
approved version stays readable.
"""

from __future__ import annotations

import email.policy
import hashlib
import json
from datetime import date, datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import audit, i18n
from meetings.accounts.permissions import Actor, Permission
from meetings.db.base import utcnow
from meetings.errors import N_, Conflict, Forbidden, NotFound
from meetings.mail.outbox import enqueue, idempotency_key
from meetings.minutes import attendance as minutes_attendance
from meetings.minutes import export
from meetings.minutes.models import Minutes, MinutesStatus, MinutesVersion
from meetings.minutes.service import (
    EDITABLE,
    can_edit,
    carried_entries,
    context_of,
    entry_data,
    get_minutes,
    own_entries,
    since_raised,
)
from meetings.minutes.templates import sections_of
from meetings.schedule.service import invitees_of

MAIL_KIND = "minutes"


async def content(db: AsyncSession, minutes: Minutes) -> dict[str, Any]:
    """The minutes as plain data: what is approved, hashed, exported and shown for a version."""
    occ, series = await context_of(db, minutes)
    own = [await entry_data(db, e) for e in await own_entries(db, minutes.id)]
    carried = []
    for entry in await carried_entries(db, minutes.id):
        item = await entry_data(db, entry)
        item["since"] = [
            {"id": s["id"], "kind": s["kind"], "text": s["text"], "raised_on": s["raised_on"]}
            for s in await since_raised(db, entry)
        ]
        carried.append(item)
    header = {k: v for k, v in minutes.header.items() if k != minutes_attendance.ROOM_KEY}
    if minutes.status in EDITABLE:
        # Until approved, the attendance is the room's records with the secretary's corrections.
        header["attendance"] = await minutes_attendance.header_rows(db, minutes)
    return {
        "minutes_id": minutes.id,
        "version": minutes.version_no,
        "occurrence_id": occ.id,
        "title": series.title,
        "template": minutes.template,
        "header": header,
        "attendance_changes": [
            minutes_attendance.correction_data(c)
            for c in await minutes_attendance.corrections(db, minutes.id)
        ],
        "sections": [
            {
                "key": s.key,
                "title": s.title_vi,
                "entries": [e for e in own if e["section"] == s.key],
            }
            for s in sections_of(minutes.template)
        ],
        "carried": carried,
    }


def canonical(data: dict[str, Any]) -> str:
    """The one text of a content: sorted keys, no insignificant spaces, characters as they are."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def digest(text: str) -> str:
    """SHA-256 (hex) of a canonical text in UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def _audit(db: AsyncSession, actor: Actor, action: str, minutes: Minutes, **details: Any) -> None:
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action=f"minutes.{action}",
        target_type="minutes",
        target_id=minutes.id,
        details={"version": minutes.version_no, **details},
    )


async def _check_attendance(db: AsyncSession, minutes: Minutes, confirmed: bool) -> list[dict[str, Any]]:
    """The differences between the minutes' attendance and the room's records; unless the person
    confirmed them, AttendanceDisagrees lists them."""
    found = await minutes_attendance.differences(db, minutes)
    if found and not confirmed:
        raise minutes_attendance.AttendanceDisagrees(found)
    return [minutes_attendance.difference_data(d) for d in found]


async def _move(
    db: AsyncSession,
    minutes: Minutes,
    came_from: MinutesStatus,
    to: MinutesStatus,
    refused: str,
    **values: Any,
) -> None:
    """Compare-and-set the status: of two people acting at once, one moves the minutes on and
    the other gets a Conflict (409), on every database (the UPDATE … WHERE status is atomic)."""
    result = await db.execute(
        update(Minutes)
        .where(Minutes.id == minutes.id, Minutes.status == came_from)
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict(refused)
    await db.refresh(minutes)


async def submit(
    db: AsyncSession, actor: Actor, minutes_id: int, now: datetime | None = None, *, confirmed: bool = False
) -> Minutes:
    """The secretary hands the draft to the chair (an attendance unlike the room's must be confirmed)."""
    minutes = await get_minutes(db, minutes_id)
    if not can_edit(actor):
        raise Forbidden(N_("Only the secretary and the chair write the minutes."))
    refused = N_("Only a draft can be submitted.")
    if minutes.status != MinutesStatus.DRAFT:
        raise Conflict(refused)
    confirmed_differences = await _check_attendance(db, minutes, confirmed)
    await _move(
        db,
        minutes,
        MinutesStatus.DRAFT,
        MinutesStatus.SUBMITTED,
        refused,
        submitted_at=now or utcnow(),
        submitted_by_id=actor.id or None,
    )
    await _audit(db, actor, "submit", minutes, attendance_differences=confirmed_differences)
    await db.flush()
    return minutes


async def return_to_draft(db: AsyncSession, actor: Actor, minutes_id: int) -> Minutes:
    """The chair (or the secretary) takes submitted minutes back to the draft."""
    minutes = await get_minutes(db, minutes_id)
    if not can_edit(actor):
        raise Forbidden(N_("Only the secretary and the chair write the minutes."))
    refused = N_("Only submitted minutes go back to the draft.")
    if minutes.status != MinutesStatus.SUBMITTED:
        raise Conflict(refused)
    await _move(db, minutes, MinutesStatus.SUBMITTED, MinutesStatus.DRAFT, refused)
    await _audit(db, actor, "return", minutes)
    await db.flush()
    return minutes


async def approve(
    db: AsyncSession, actor: Actor, minutes_id: int, now: datetime | None = None, *, confirmed: bool = False
) -> MinutesVersion:
    """The chair approves submitted minutes: locked, and the content's hash recorded (an
    attendance unlike the room's records must be confirmed)."""
    if not actor.can(Permission.MINUTES_APPROVE):
        raise Forbidden(N_("Only the chair approves the minutes."))
    minutes = await get_minutes(db, minutes_id)
    refused = N_("Only submitted minutes can be approved.")
    if minutes.status != MinutesStatus.SUBMITTED:
        raise Conflict(refused)
    confirmed_differences = await _check_attendance(db, minutes, confirmed)
    # Claimed first: a second approval at the same moment gets a 409, never a second version.
    await _move(db, minutes, MinutesStatus.SUBMITTED, MinutesStatus.APPROVED, refused)
    await minutes_attendance.materialise(db, minutes)
    if minutes.template == "morning":
        # The daily figures the morning meeting saw are kept in its approved, hashed content.
        from meetings.figures.service import freeze_into_minutes

        minutes.header = await freeze_into_minutes(db, minutes.header)
    text = canonical(await content(db, minutes))
    version = MinutesVersion(
        minutes_id=minutes.id,
        number=minutes.version_no,
        content=text,
        sha256=digest(text),
        approved_by_id=actor.id or None,
        approved_by_name=actor.name,
        approved_at=now or utcnow(),
    )
    db.add(version)
    await _audit(
        db, actor, "approve", minutes, sha256=version.sha256, attendance_differences=confirmed_differences
    )
    await db.flush()
    return version


async def versions(db: AsyncSession, minutes_id: int) -> list[MinutesVersion]:
    """Every approved version, oldest first."""
    return list(
        await db.scalars(
            select(MinutesVersion)
            .where(MinutesVersion.minutes_id == minutes_id)
            .order_by(MinutesVersion.number)
        )
    )


async def get_version(db: AsyncSession, minutes_id: int, number: int) -> MinutesVersion:
    """One approved version."""
    found = await db.scalar(
        select(MinutesVersion).where(MinutesVersion.minutes_id == minutes_id, MinutesVersion.number == number)
    )
    if found is None:
        raise NotFound(N_("This version does not exist."))
    return found


def version_content(version: MinutesVersion) -> dict[str, Any]:
    """The approved content of a version."""
    data = json.loads(version.content)
    assert isinstance(data, dict)
    return data


async def latest_version(db: AsyncSession, minutes_id: int) -> MinutesVersion | None:
    """The newest approved version, if any."""
    found = await versions(db, minutes_id)
    return found[-1] if found else None


async def record_version(db: AsyncSession, minutes: Minutes) -> MinutesVersion | None:
    """The version that stands as the record now: the approved one while the minutes are
    approved or published; None while they are a draft (the first, or a correction) or submitted."""
    if minutes.status not in {MinutesStatus.APPROVED, MinutesStatus.PUBLISHED}:
        return None
    return await get_version(db, minutes.id, minutes.version_no)


async def newest_published(db: AsyncSession, minutes_id: int) -> MinutesVersion | None:
    """The newest version that was published, if any (what invitees read)."""
    for version in reversed(await versions(db, minutes_id)):
        if version.published_at is not None:
            return version
    return None


async def zone_of(db: AsyncSession, minutes: Minutes) -> ZoneInfo:
    """The time zone of the meeting (its series'), in which the record shows times."""
    _occ, series = await context_of(db, minutes)
    return ZoneInfo(series.timezone)


def approval_of(version: MinutesVersion, zone: tzinfo) -> dict[str, Any]:
    """Who approved a version, when (ISO 8601 in the city's time, with its offset) and its hash."""
    return {
        "by": version.approved_by_name,
        "at": version.approved_at.astimezone(zone).isoformat(),
        "sha256": version.sha256,
    }


async def correct(db: AsyncSession, actor: Actor, minutes_id: int) -> Minutes:
    """Open a correction of approved minutes: the next version starts as a draft."""
    minutes = await get_minutes(db, minutes_id)
    if not can_edit(actor):
        raise Forbidden(N_("Only the secretary and the chair write the minutes."))
    refused = N_("Only approved minutes are corrected; a draft is simply edited.")
    if minutes.status not in {MinutesStatus.APPROVED, MinutesStatus.PUBLISHED}:
        raise Conflict(refused)
    await _move(db, minutes, minutes.status, MinutesStatus.DRAFT, refused, version_no=minutes.version_no + 1)
    await _audit(db, actor, "correct", minutes)
    await db.flush()
    return minutes


def minutes_url(base_url: str, minutes_id: int, number: int | None = None) -> str:
    """The address of minutes (or of one version) for links in mail."""
    url = f"{base_url.rstrip('/')}/minutes/{minutes_id}"
    return f"{url}/versions/{number}" if number else url


async def publish(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    *,
    base_url: str,
    sender_email: str,
    sender_name: str,
    now: datetime | None = None,
) -> int:
    """Email the approved version to every invitee (DOCX and PDF attached, and a link).

    Returns how many mails were queued; a repeated publish queues none (idempotency keys).
    """
    now = now or utcnow()
    minutes = await get_minutes(db, minutes_id)
    if not can_edit(actor):
        raise Forbidden(N_("Only the secretary and the chair write the minutes."))
    if minutes.status not in {MinutesStatus.APPROVED, MinutesStatus.PUBLISHED}:
        raise Conflict(N_("Only approved minutes can be published."))
    version = await get_version(db, minutes.id, minutes.version_no)
    data = version_content(version)
    occ, series = await context_of(db, minutes)
    approval = approval_of(version, ZoneInfo(series.timezone))
    docx = export.to_docx(data, approval)
    pdf = export.to_pdf(data, approval)
    name = export.file_stem(data, approval)
    link = minutes_url(base_url, minutes.id, version.number)
    queued = 0
    meeting_day = date.fromisoformat(data["header"]["date"]) if data["header"].get("date") else None
    for person in await invitees_of(db, series):
        with i18n.language(person.language):
            day = i18n.fmt_date(meeting_day) if meeting_day else ""
            subject = (
                "["
                + i18n.gettext("Giao Ban")
                + "] "
                + i18n.gettext("Minutes: %(title)s, %(date)s", title=series.title, date=day)
            )
            # The content hash is printed in the approval line of both documents, where it
            # can be checked; the mail itself speaks to a person.
            body = (
                i18n.gettext("Dear %(name)s,", name=person.name)
                + "\n\n"
                + i18n.gettext(
                    "The minutes of %(title)s (%(date)s) have been approved (version %(n)s).\n"
                    "They are attached as DOCX and PDF, and you can read them online:\n%(url)s\n",
                    title=series.title,
                    date=day,
                    n=version.number,
                    url=link,
                )
                + "\n-- \n"
                + i18n.gettext("Giao Ban — the daily meetings of the City People's Committee")
                + "\n"
            )
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = Address(display_name=sender_name, addr_spec=sender_email)
        msg["To"] = Address(display_name=person.name, addr_spec=person.email)
        msg["Subject"] = subject
        msg.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
        msg.add_attachment(
            docx,
            maintype="application",
            subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
            filename=f"{name}.docx",
        )
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{name}.pdf")
        key = idempotency_key(
            series.uid, occ.original_start.isoformat(), version.number, person.email, MAIL_KIND
        )
        queued += int(await enqueue(db, key=key, kind=MAIL_KIND, message=msg, now=now))
    if version.published_at is None:
        version.published_at = now
        version.published_by_id = actor.id or None
    minutes.status = MinutesStatus.PUBLISHED
    await _audit(db, actor, "publish", minutes, queued=queued)
    await db.flush()
    return queued
