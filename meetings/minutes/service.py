"""Minutes: created per occurrence, typed entries with versions and history, carry-over, reading rules.

Every function takes a session and plain values and raises domain errors; the caller commits.
An entry is saved with the version the editor last saw: a stale version is refused with the
current entry (`EntryConflict.current`), so two editors never overwrite each other silently.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from meetings.accounts.permissions import Actor, Permission
from meetings.db.base import utcnow
from meetings.directory.models import Person, Unit
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.minutes import attendance as minutes_attendance
from meetings.minutes.models import (
    CARRIED_KINDS,
    CarriedEntry,
    Entry,
    EntryChange,
    EntryKind,
    EntryStatus,
    IssueCategory,
    Minutes,
    MinutesStatus,
    Severity,
)
from meetings.minutes.templates import default_section, section_keys
from meetings.schedule.models import Occurrence, OccurrenceState, Series, SeriesInvitee, SeriesKind
from meetings.schedule.service import get_occurrence, get_series, series_of_person
from meetings.text import fold, normalize

MAX_TEXT = 4000
EDITABLE = frozenset({MinutesStatus.DRAFT, MinutesStatus.SUBMITTED})
# The fields an entry change records (before and after).
TRACKED = (
    "kind",
    "section",
    "text",
    "unit_id",
    "category",
    "severity",
    "owner_unit_id",
    "owner_person_id",
    "due_date",
    "link_id",
    "status",
    "position",
    "deleted",
)


# The fields an editor changes by saving an entry.
_EDITED = (
    "kind",
    "section",
    "text",
    "unit_id",
    "category",
    "severity",
    "owner_unit_id",
    "owner_person_id",
    "due_date",
    "link_id",
)


class EntryConflict(Conflict):
    """A save with a stale version; `current` is the entry as it is now (plain data)."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(N_("Someone else changed this entry first. Here is the current text."))
        self.current = current


@dataclass
class EntryInput:
    """An entry as typed: codes and text, validated by `clean_entry`."""

    kind: str = "note"
    text: str = ""
    section: str = ""
    unit: str = ""  # unit code
    category: str = ""
    severity: str = ""
    owner_unit: str = ""  # unit code
    owner_person: str = ""  # email
    due_date: str = ""  # YYYY-MM-DD
    link_id: int | None = None


@dataclass
class _Clean:
    kind: EntryKind
    section: str
    text: str
    unit_id: int | None
    category: str | None
    severity: str | None
    owner_unit_id: int | None
    owner_person_id: int | None
    due_date: date | None
    link_id: int | None
    values: dict[str, Any] = field(default_factory=dict)


# --- reading ---------------------------------------------------------------------------------


async def get_minutes(db: AsyncSession, minutes_id: int) -> Minutes:
    """The minutes with this id."""
    found = await db.get(Minutes, minutes_id)
    if found is None:
        raise NotFound(N_("These minutes do not exist."))
    return found


async def minutes_of(db: AsyncSession, occurrence_id: int) -> Minutes | None:
    """The minutes of an occurrence, if written yet."""
    return await db.scalar(select(Minutes).where(Minutes.occurrence_id == occurrence_id))


async def context_of(db: AsyncSession, minutes: Minutes) -> tuple[Occurrence, Series]:
    """The occurrence and series of minutes."""
    occ = await get_occurrence(db, minutes.occurrence_id)
    return occ, await get_series(db, occ.series_id)


def can_edit(actor: Actor) -> bool:
    """Whether the person writes minutes (secretary, chair)."""
    return actor.can(Permission.MINUTES_EDIT)


async def check_read(db: AsyncSession, actor: Actor, minutes: Minutes, *, live: bool = False) -> None:
    """Editors read everything; invitees read published minutes, and the live draft in the room."""
    if can_edit(actor):
        return
    occ, series = await context_of(db, minutes)
    person = await db.get(Person, actor.id)
    if person is None or series.id not in await series_of_person(db, person):
        raise Forbidden(N_("You may not read these minutes."))
    if minutes.status == MinutesStatus.PUBLISHED or await _has_published(db, minutes.id):
        return
    if live and occ.state in {OccurrenceState.OPEN, OccurrenceState.IN_PROGRESS}:
        return
    raise Forbidden(N_("These minutes are not published yet."))


async def _has_published(db: AsyncSession, minutes_id: int) -> bool:
    from meetings.minutes.models import MinutesVersion

    found = await db.scalar(
        select(MinutesVersion.id).where(
            MinutesVersion.minutes_id == minutes_id, MinutesVersion.published_at.is_not(None)
        )
    )
    return found is not None


def check_edit(actor: Actor, minutes: Minutes) -> None:
    """Only the secretary and the chair write, and only while the minutes are not approved."""
    if not can_edit(actor):
        raise Forbidden(N_("Only the secretary and the chair write the minutes."))
    if minutes.status not in EDITABLE:
        raise Conflict(N_("Approved minutes are locked; open a correction to change them."))


# --- creation --------------------------------------------------------------------------------


async def header_from_attendance(db: AsyncSession, occ: Occurrence, series: Series) -> dict[str, Any]:
    """Date, time, chair, secretary and attendance by unit, from the room's records."""
    zone = ZoneInfo(series.timezone)
    start, end = occ.start.astimezone(zone), occ.end.astimezone(zone)
    names = {}
    for pid in (series.chair_id, series.secretary_id):
        if pid:
            person = await db.get(Person, pid)
            names[pid] = person.name if person else ""
    ended = occ.end if occ.state is OccurrenceState.ENDED else None
    states = await minutes_attendance.room_states(db, occ, ended)
    return {
        "date": start.date().isoformat(),
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
        "chair": names.get(series.chair_id or 0, ""),
        "secretary": names.get(series.secretary_id or 0, ""),
        "attendance": await minutes_attendance.unit_rows(db, states, series),
    }


async def ensure_minutes(db: AsyncSession, occurrence: Occurrence) -> Minutes:
    """The minutes of an occurrence, created from its kind's template on first use; carry-over synced.

    Two callers racing create one row (INSERT … ON CONFLICT DO NOTHING on the occurrence).
    """
    found = await minutes_of(db, occurrence.id)
    if found is None:
        series = await get_series(db, occurrence.series_id)
        now = utcnow()
        values = {
            "occurrence_id": occurrence.id,
            "template": series.kind.value,
            "status": MinutesStatus.DRAFT.value,
            "version_no": 1,
            "header_version": 1,
            "header": await header_from_attendance(db, occurrence, series),
            "created_at": now,
            "updated_at": now,
        }
        insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
        await db.execute(
            insert(Minutes).values(**values).on_conflict_do_nothing(index_elements=["occurrence_id"])
        )
        found = await minutes_of(db, occurrence.id)
        assert found is not None
    if found.status in EDITABLE:
        await sync_carried(db, found, occurrence)
        # Issues centres reported in the register since the last meeting join this agenda.
        from meetings.issues.service import take_onto_agenda

        await take_onto_agenda(db, found, occurrence)
    return found


async def carry_series(db: AsyncSession, series: Series) -> list[int]:
    """The series whose open items these minutes carry: the series they belong to.

    An ad hoc meeting carries only its own series' items (a one-off: none). A morning or
    afternoon meeting carries the daily rhythm it is part of: the morning and afternoon series
    that share an invited unit (or the chair) with it, never an ad hoc meeting's items.
    """
    if series.kind is SeriesKind.ADHOC:
        return [series.id]
    units = select(SeriesInvitee.unit_id).where(
        SeriesInvitee.series_id == series.id, SeriesInvitee.unit_id.is_not(None)
    )
    sharing = select(SeriesInvitee.series_id).where(SeriesInvitee.unit_id.in_(units))
    same_chair = Series.chair_id == series.chair_id if series.chair_id else false()
    related = await db.scalars(
        select(Series.id).where(
            Series.kind != SeriesKind.ADHOC,
            or_(Series.id == series.id, Series.id.in_(sharing), same_chair),
        )
    )
    return sorted(set(related))


async def sync_carried(db: AsyncSession, minutes: Minutes, occurrence: Occurrence | None = None) -> int:
    """Bring the open issues and undone actions of earlier minutes of the same series onto these
    (and drop carried items of other series); returns how many new."""
    occ = occurrence or await get_occurrence(db, minutes.occurrence_id)
    series_ids = await carry_series(db, await get_series(db, occ.series_id))
    carried = {
        c.entry_id: c
        for c in await db.scalars(select(CarriedEntry).where(CarriedEntry.minutes_id == minutes.id))
    }
    in_series = set(
        await db.scalars(
            select(Entry.id)
            .join(Minutes, Minutes.id == Entry.minutes_id)
            .join(Occurrence, Occurrence.id == Minutes.occurrence_id)
            .where(Entry.id.in_(list(carried) or [-1]), Occurrence.series_id.in_(series_ids))
        )
    )
    for entry_id, row in carried.items():
        if entry_id not in in_series:
            await db.delete(row)
    open_ids = await db.scalars(
        select(Entry.id)
        .join(Minutes, Minutes.id == Entry.minutes_id)
        .join(Occurrence, Occurrence.id == Minutes.occurrence_id)
        .where(
            Entry.kind.in_(list(CARRIED_KINDS)),
            Entry.status == EntryStatus.OPEN,
            Entry.deleted.is_(False),
            Entry.minutes_id != minutes.id,
            Occurrence.start < occ.start,
            Occurrence.series_id.in_(series_ids),
        )
        .order_by(Occurrence.start, Entry.position, Entry.id)
    )
    added = 0
    for entry_id in open_ids:
        if entry_id not in carried:
            db.add(CarriedEntry(minutes_id=minutes.id, entry_id=entry_id))
            added += 1
    if added or len(in_series) != len(carried):
        await db.flush()
    return added


async def _claim_header(db: AsyncSession, minutes: Minutes, expected: int) -> None:
    """Compare-and-set the header's version (see _check_version)."""
    if expected == minutes.header_version:
        result = await db.execute(
            update(Minutes)
            .where(Minutes.id == minutes.id, Minutes.header_version == expected)
            .values(header_version=expected + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            minutes.header_version = expected + 1
            return
    raise Conflict(N_("Someone else changed the header first. Reload to see it."))


async def refresh_attendance(
    db: AsyncSession, actor: Actor, minutes_id: int, expected_version: int
) -> Minutes:
    """Show the attendance again as the room's records (and the secretary's corrections) give it."""
    minutes = await get_minutes(db, minutes_id)
    check_edit(actor, minutes)
    await _claim_header(db, minutes, expected_version)
    await minutes_attendance.materialise(db, minutes)
    return minutes


async def correct_attendance(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    expected_version: int,
    person_id: int,
    state: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> Minutes:
    """The secretary corrects one person's attendance, with a reason (kept in the history)."""
    minutes = await get_minutes(db, minutes_id)
    check_edit(actor, minutes)
    await _claim_header(db, minutes, expected_version)
    await minutes_attendance.correct(db, actor, minutes, person_id, state, reason, now=now)
    return minutes


ATTENDANCE_STATES = minutes_attendance.STATES


async def update_header(
    db: AsyncSession, actor: Actor, minutes_id: int, expected_version: int, data: dict[str, Any]
) -> Minutes:
    """Change the header: chair, secretary, and who of each unit was present, late, absent, excused.

    Attendance is the room's: a name moved to another state becomes a correction (with the
    optional `reason`), recorded in the attendance history.
    """
    minutes = await get_minutes(db, minutes_id)
    check_edit(actor, minutes)
    await _claim_header(db, minutes, expected_version)
    errors: list[FieldError] = []
    header = dict(minutes.header)
    for name in ("chair", "secretary"):
        if name in data:
            value = data[name]
            if not isinstance(value, str) or len(value) > 200:
                errors.append(FieldError(name, N_("Use at most %(n)s characters."), {"n": 200}))
            else:
                header[name] = normalize(value)
    rows: dict[str, dict[str, list[str]]] = {}
    if "attendance" in data:
        raw = data["attendance"]
        known = {u["unit_code"] for u in await minutes_attendance.header_rows(db, minutes)}
        if not isinstance(raw, dict):
            errors.append(FieldError("attendance", N_("This field is not valid.")))
        else:
            for code, states in raw.items():
                if code not in known or not isinstance(states, dict):
                    errors.append(FieldError("attendance", N_("Unknown unit %(code)s."), {"code": str(code)}))
                    continue
                for state, people in states.items():
                    ok = state in ATTENDANCE_STATES and isinstance(people, list)
                    if not ok or not all(isinstance(p, str) and len(p) <= 200 for p in people):
                        errors.append(FieldError("attendance", N_("This field is not valid.")))
                        continue
                    rows.setdefault(code, {})[state] = [normalize(p) for p in people if p.strip()]
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > minutes_attendance.MAX_REASON:
        errors.append(
            FieldError("reason", N_("Use at most %(n)s characters."), {"n": minutes_attendance.MAX_REASON})
        )
        reason = ""
    if errors:
        raise InvalidInput(errors)
    minutes.header = header
    await db.flush()
    await minutes_attendance.correct_by_names(db, actor, minutes, rows, reason)
    await minutes_attendance.materialise(db, minutes)
    return minutes


# --- entries ---------------------------------------------------------------------------------


def _clean_text(raw: str) -> str:
    # Control characters other than line breaks and tabs would break DOCX (XML) and PDF output.
    text = normalize(raw)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


async def _unit_id(db: AsyncSession, code: str, name: str, errors: list[FieldError]) -> int | None:
    if not code.strip():
        return None
    found = await db.scalar(select(Unit.id).where(func.upper(Unit.code) == code.strip().upper()))
    if found is None:
        errors.append(FieldError(name, N_("Unknown unit %(code)s."), {"code": code.strip()[:40]}))
    return found


async def clean_entry(
    db: AsyncSession, minutes: Minutes, data: EntryInput, today: date, *, entry: Entry | None = None
) -> _Clean:
    """Validate typed input into column values; every problem reported at once."""
    errors: list[FieldError] = []
    kind = EntryKind.NOTE
    try:
        kind = EntryKind(data.kind or "note")
    except ValueError:
        errors.append(FieldError("kind", N_("Choose a kind of entry.")))
    text = _clean_text(data.text or "")
    if not text:
        errors.append(FieldError("text", N_("Write the text of the entry.")))
    elif len(text) > MAX_TEXT:
        errors.append(FieldError("text", N_("Use at most %(n)s characters."), {"n": MAX_TEXT}))
    section = data.section or (entry.section if entry and entry.kind == kind else "")
    section = section or default_section(minutes.template, kind)
    home = await db.get(Minutes, entry.minutes_id) if entry is not None else minutes
    if section not in section_keys((home or minutes).template):
        errors.append(FieldError("section", N_("Choose a section of these minutes.")))
    unit_id = await _unit_id(db, data.unit, "unit", errors)
    owner_unit_id = await _unit_id(db, data.owner_unit, "owner_unit", errors)
    owner_person_id = None
    if data.owner_person.strip():
        owner_person_id = await db.scalar(
            select(Person.id).where(func.lower(Person.email) == data.owner_person.strip().lower())
        )
        if owner_person_id is None:
            errors.append(FieldError("owner_person", N_("Nobody has this email address.")))
    category = data.category.strip() or None
    if category is not None and category not in set(IssueCategory):
        errors.append(FieldError("category", N_("Choose a category from the list.")))
    severity = data.severity.strip() or None
    if severity is not None and severity not in set(Severity):
        errors.append(FieldError("severity", N_("Choose a severity from the list.")))
    due: date | None = None
    if data.due_date.strip():
        try:
            due = date.fromisoformat(data.due_date.strip())
        except ValueError:
            errors.append(FieldError("due_date", N_("Write the date as YYYY-MM-DD.")))
        else:
            unchanged = entry is not None and entry.due_date == due
            if due < today and not unchanged:
                errors.append(FieldError("due_date", N_("The due date is in the past.")))
    if kind == EntryKind.ISSUE and unit_id is None and not data.unit.strip():
        errors.append(FieldError("unit", N_("Say which unit raised the issue.")))
    if kind == EntryKind.ACTION and not data.owner_unit.strip() and not data.owner_person.strip():
        errors.append(FieldError("owner_unit", N_("Say who owns the action: a unit or a person.")))
    if kind == EntryKind.ACTION and due is None and not data.due_date.strip():
        errors.append(FieldError("due_date", N_("Give the action a due date.")))
    link_id = data.link_id
    if link_id is not None:
        target = await db.get(Entry, link_id)
        visible = target is not None and not target.deleted and target.id != (entry.id if entry else None)
        if visible and target is not None and target.minutes_id != minutes.id:
            carried = await db.scalar(
                select(CarriedEntry.id).where(
                    CarriedEntry.minutes_id == minutes.id, CarriedEntry.entry_id == target.id
                )
            )
            visible = carried is not None
        if not visible:
            errors.append(FieldError("link_id", N_("Link to an entry of these minutes.")))
    if errors:
        raise InvalidInput(errors)
    return _Clean(
        kind=kind,
        section=section,
        text=text,
        unit_id=unit_id,
        category=category if kind == EntryKind.ISSUE else None,
        severity=severity if kind == EntryKind.ISSUE else None,
        owner_unit_id=owner_unit_id,
        owner_person_id=owner_person_id,
        due_date=due,
        link_id=link_id,
    )


def _tracked(entry: Entry) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in TRACKED:
        value = getattr(entry, name)
        if isinstance(value, date):
            value = value.isoformat()
        elif hasattr(value, "value"):
            value = value.value
        values[name] = value
    return values


async def _unit_codes(db: AsyncSession, entry: Entry) -> list[str]:
    ids = [uid for uid in (entry.unit_id, entry.owner_unit_id) if uid]
    if not ids:
        return []
    return list(await db.scalars(select(Unit.code).where(Unit.id.in_(ids))))


async def _record(
    db: AsyncSession,
    actor: Actor,
    entry: Entry,
    minutes_id: int,
    action: str,
    before: dict[str, Any],
    now: datetime,
    *,
    codes: list[str] | None = None,
) -> None:
    # Inside the write transaction, the minutes must still be open to edits: an approval that
    # came between the reading (check_edit) and this write either waits for this transaction
    # (PostgreSQL: FOR SHARE against its UPDATE; SQLite: writers take turns) or wins, and then
    # this edit is refused instead of slipping into approved minutes.
    # Both reads leave the entry's pending changes alone (no autoflush): one flush at the end
    # writes them with the history line, so that a writer's turn stays short.
    with db.no_autoflush:
        status = await db.scalar(
            select(Minutes.status).where(Minutes.id == minutes_id).with_for_update(read=True)
        )
        if codes is None:
            codes = await _unit_codes(db, entry)
    if status not in EDITABLE:
        raise Conflict(N_("Approved minutes are locked; open a correction to change them."))
    after = _tracked(entry)
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    db.add(
        EntryChange(
            entry_id=entry.id,
            minutes_id=minutes_id,
            version=entry.version,
            action=action,
            person_id=actor.id or None,
            person_name=actor.name,
            at=now,
            before={k: before.get(k) for k in changed} if before else {},
            after=changed if before else after,
        )
    )
    entry.search_text = fold(" ".join([entry.text, *codes]))
    await db.flush()


ADD_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
ADD_KEY_MAX = 64


def check_add_key(key: str | None) -> str | None:
    """An add's idempotency key as sent (None or ''→ none); up to 64 letters, digits, '-' and '_'."""
    if key is None or key == "":
        return None
    if len(key) > ADD_KEY_MAX or not set(key) <= ADD_KEY_CHARS:
        raise InvalidInput(
            [FieldError("key", N_("The key of an addition is up to 64 letters, digits, '-' or '_'."))]
        )
    return key


async def _added_with(db: AsyncSession, minutes_id: int, key: str) -> Entry | None:
    return await db.scalar(select(Entry).where(Entry.minutes_id == minutes_id, Entry.add_key == key))


async def add_entry(
    db: AsyncSession, actor: Actor, minutes_id: int, data: EntryInput, *, now: datetime | None = None
) -> Entry:
    """Add an entry at the end of the minutes (or of its section)."""
    entry, _new = await add_entry_once(db, actor, minutes_id, data, key=None, now=now)
    return entry


async def add_entry_once(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    data: EntryInput,
    *,
    key: str | None,
    now: datetime | None = None,
) -> tuple[Entry, bool]:
    """Add an entry, at most once per idempotency key: (the entry, whether this call made it).

    An add sent again with its key (an editor resending after a reconnect) finds the entry the
    first one made, even if the minutes were approved since, instead of making a second one.
    """
    now = now or utcnow()
    key = check_add_key(key)
    minutes = await get_minutes(db, minutes_id)
    if not can_edit(actor):
        raise Forbidden(N_("Only the secretary and the chair write the minutes."))
    if key is not None and (found := await _added_with(db, minutes.id, key)) is not None:
        return found, False
    check_edit(actor, minutes)
    _occ, series = await context_of(db, minutes)
    clean = await clean_entry(db, minutes, data, now.astimezone(ZoneInfo(series.timezone)).date())
    last = await db.scalar(select(func.max(Entry.position)).where(Entry.minutes_id == minutes.id))
    entry = Entry(
        minutes_id=minutes.id,
        position=(last or 0) + 1,
        kind=clean.kind,
        section=clean.section,
        text=clean.text,
        unit_id=clean.unit_id,
        category=clean.category,
        severity=clean.severity,
        owner_unit_id=clean.owner_unit_id,
        owner_person_id=clean.owner_person_id,
        due_date=clean.due_date,
        link_id=clean.link_id,
        status=EntryStatus.OPEN,
        version=1,
        deleted=False,
        created_by_id=actor.id or None,
        add_key=key,
        created_at=now,
        updated_at=now,
    )
    entry.search_text = fold(" ".join([entry.text, *await _unit_codes(db, entry)]))  # before the write
    if key is None:
        db.add(entry)
        await db.flush()
    else:
        # The same key arriving twice at once: the unique index lets one insert through
        # (ON CONFLICT DO NOTHING, one statement); the other finds the entry it made.
        values = {c.key: getattr(entry, c.key) for c in Entry.__table__.columns if c.key != "id"}
        insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
        made = await db.scalar(
            insert(Entry)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["minutes_id", "add_key"])
            .returning(Entry)
        )
        if made is None:
            found = await _added_with(db, minutes.id, key)
            assert found is not None
            return found, False
        entry = made
    await _record(db, actor, entry, minutes.id, "create", {}, now)
    return entry, True


async def _locked_entry(db: AsyncSession, entry_id: int) -> Entry:
    # FOR UPDATE serialises two editors on PostgreSQL; SQLite serialises writers on the file.
    entry = await db.scalar(
        select(Entry).where(Entry.id == entry_id).with_for_update().execution_options(populate_existing=True)
    )
    if entry is None or entry.deleted:
        raise NotFound(N_("This entry does not exist."))
    return entry


async def _entry_in(db: AsyncSession, minutes: Minutes, entry_id: int) -> tuple[Entry, bool]:
    """The entry (locked) and whether it is carried (raised in earlier minutes)."""
    entry = await _locked_entry(db, entry_id)
    if entry.minutes_id == minutes.id:
        return entry, False
    carried = await db.scalar(
        select(CarriedEntry.id).where(
            CarriedEntry.minutes_id == minutes.id, CarriedEntry.entry_id == entry.id
        )
    )
    if carried is None:
        raise NotFound(N_("This entry does not exist."))
    return entry, True


async def _check_version(db: AsyncSession, entry: Entry, expected: int) -> None:
    """Claim the next version of an entry: an atomic compare-and-set on its version column.

    The UPDATE … WHERE version = expected is what serialises two editors on every database
    (SQLite has no row locks: both may have read version 1; only one UPDATE matches it).
    """
    if expected == entry.version:
        result = await db.execute(
            update(Entry)
            .where(Entry.id == entry.id, Entry.version == expected)
            .values(version=expected + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            entry.version = expected + 1
            return
        await db.refresh(entry)
    raise EntryConflict(await entry_data(db, entry))


async def _claim_entry(
    db: AsyncSession, actor: Actor, minutes_id: int, entry_id: int, expected_version: int
) -> tuple[Minutes, Entry, bool]:
    """The minutes (the actor may edit them), the entry (locked, its next version claimed: a stale
    version raises EntryConflict) and whether it is carried from earlier minutes."""
    minutes = await get_minutes(db, minutes_id)
    check_edit(actor, minutes)
    entry, carried = await _entry_in(db, minutes, entry_id)
    await _check_version(db, entry, expected_version)
    return minutes, entry, carried


async def _save_context(
    db: AsyncSession, actor: Actor, minutes_id: int, entry_id: int
) -> tuple[Minutes, Entry, bool, Series]:
    """The minutes (the actor may edit them), the entry (locked), whether it is carried and the
    series, read in one query: on a busy node every round trip to the database waits for the
    event loop, so a save reads once before its write turn instead of four times.

    The minutes and the person who raised the entry are kept in the session (`db.info`), so
    that entry_data after the commit finds them in the identity map and sends no query."""
    row = (
        await db.execute(
            select(Entry, Minutes, Series, Person)
            .select_from(Entry)
            .join(Minutes, Minutes.id == minutes_id)
            .join(Occurrence, Occurrence.id == Minutes.occurrence_id)
            .join(Series, Series.id == Occurrence.series_id)
            .outerjoin(Person, Person.id == Entry.created_by_id)
            .where(Entry.id == entry_id)
            .with_for_update(of=Entry)  # FOR UPDATE serialises two editors on PostgreSQL
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:  # no such minutes or entry: the step-by-step reads say which
        minutes = await get_minutes(db, minutes_id)
        check_edit(actor, minutes)
        entry, carried = await _entry_in(db, minutes, entry_id)
        _occ, series = await context_of(db, minutes)
        return minutes, entry, carried, series
    entry, minutes, series, raised_by = row
    check_edit(actor, minutes)
    if entry.deleted:
        raise NotFound(N_("This entry does not exist."))
    carried = False
    if entry.minutes_id != minutes.id:
        entry, carried = await _entry_in(db, minutes, entry_id)
    db.info.setdefault(_KEPT, []).extend([minutes, raised_by])
    return minutes, entry, carried, series


_KEPT = "giaoban_kept"  # db.info: objects held for entry_data after the commit (the identity map is weak)


async def update_entry(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    entry_id: int,
    expected_version: int,
    data: EntryInput,
    *,
    now: datetime | None = None,
) -> Entry:
    """Save an entry typed over the version the editor saw; a stale version raises EntryConflict.

    The write turn holds three statements: the compare-and-set of the version with the new
    values in one UPDATE, the minutes' status, the history line."""
    now = now or utcnow()
    minutes, entry, carried, series = await _save_context(db, actor, minutes_id, entry_id)
    if expected_version != entry.version:
        raise EntryConflict(await entry_data(db, entry))
    if carried:
        raise Conflict(N_("A carried entry is changed in the minutes that raised it; here you may close it."))
    clean = await clean_entry(
        db, minutes, data, now.astimezone(ZoneInfo(series.timezone)).date(), entry=entry
    )
    before = _tracked(entry)
    fields = {name: getattr(clean, name) for name in _EDITED}
    if all(getattr(entry, name) == value for name, value in fields.items()):
        return entry  # nothing changed: no new version, no history line
    # Read before the turn: the unit codes the search text holds.
    ids = [uid for uid in (clean.unit_id, clean.owner_unit_id) if uid]
    codes = list(await db.scalars(select(Unit.code).where(Unit.id.in_(ids)))) if ids else []
    values: dict[str, Any] = {
        **fields,
        "updated_at": now,
        "search_text": fold(" ".join([clean.text, *codes])),
    }
    # The version is claimed and the row written in one statement (no flush of the new text
    # can come before the claim); a stale version matches no row.
    result = await db.execute(
        update(Entry)
        .where(Entry.id == entry.id, Entry.version == expected_version)
        .values(version=expected_version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        await db.refresh(entry)
        raise EntryConflict(await entry_data(db, entry))
    for name, value in {**values, "version": expected_version + 1}.items():
        set_committed_value(entry, name, value)
    await _record(db, actor, entry, minutes.id, "update", before, now, codes=codes)
    return entry


async def set_status(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    entry_id: int,
    expected_version: int,
    status: str,
    *,
    now: datetime | None = None,
) -> Entry:
    """Close (or reopen) an issue or an action, here or in later minutes where it is carried."""
    now = now or utcnow()
    minutes, entry, _carried = await _claim_entry(db, actor, minutes_id, entry_id, expected_version)
    try:
        wanted = EntryStatus(status)
    except ValueError as exc:
        raise InvalidInput([FieldError("status", N_("Choose open or closed."))]) from exc
    if entry.kind not in CARRIED_KINDS:
        raise InvalidInput([FieldError("status", N_("Only issues and actions are opened and closed."))])
    if wanted == entry.status:
        return entry
    before = _tracked(entry)
    entry.status = wanted
    entry.closed_at = now if wanted == EntryStatus.CLOSED else None
    entry.closed_in_id = minutes.id if wanted == EntryStatus.CLOSED else None
    entry.updated_at = now
    await _record(
        db, actor, entry, minutes.id, "close" if wanted == EntryStatus.CLOSED else "reopen", before, now
    )
    return entry


async def move_entry(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    entry_id: int,
    expected_version: int,
    position: int,
    *,
    now: datetime | None = None,
) -> list[Entry]:
    """Put an entry at a place (1 = first) among the minutes' own entries; returns them in order."""
    now = now or utcnow()
    minutes, entry, carried = await _claim_entry(db, actor, minutes_id, entry_id, expected_version)
    if carried:
        raise Conflict(N_("A carried entry keeps its place in the minutes that raised it."))
    own = await own_entries(db, minutes.id)
    others = [e for e in own if e.id != entry.id]
    index = max(0, min(position - 1, len(others)))
    ordered = [*others[:index], entry, *others[index:]]
    before = _tracked(entry)
    for i, e in enumerate(ordered, start=1):
        e.position = i
    entry.updated_at = now
    await _record(db, actor, entry, minutes.id, "move", before, now)
    return ordered


async def delete_entry(
    db: AsyncSession,
    actor: Actor,
    minutes_id: int,
    entry_id: int,
    expected_version: int,
    *,
    now: datetime | None = None,
) -> Entry:
    """Remove an entry from the minutes (kept, marked deleted, with its history)."""
    now = now or utcnow()
    minutes, entry, carried = await _claim_entry(db, actor, minutes_id, entry_id, expected_version)
    if carried:
        raise Conflict(N_("A carried entry is removed in the minutes that raised it; here you may close it."))
    before = _tracked(entry)
    entry.deleted = True
    entry.updated_at = now
    await _record(db, actor, entry, minutes.id, "delete", before, now)
    return entry


async def own_entries(db: AsyncSession, minutes_id: int) -> list[Entry]:
    """The entries raised in these minutes, in order."""
    return list(
        await db.scalars(
            select(Entry)
            .where(Entry.minutes_id == minutes_id, Entry.deleted.is_(False))
            .order_by(Entry.position, Entry.id)
        )
    )


async def carried_entries(db: AsyncSession, minutes_id: int) -> list[Entry]:
    """The issues and actions of earlier minutes shown on these, oldest first."""
    return list(
        await db.scalars(
            select(Entry)
            .join(CarriedEntry, CarriedEntry.entry_id == Entry.id)
            .where(CarriedEntry.minutes_id == minutes_id, Entry.deleted.is_(False))
            .order_by(Entry.created_at, Entry.id)
        )
    )


async def history(db: AsyncSession, entry_id: int) -> list[EntryChange]:
    """Every change of an entry, oldest first."""
    return list(
        await db.scalars(select(EntryChange).where(EntryChange.entry_id == entry_id).order_by(EntryChange.id))
    )


async def get_entry(db: AsyncSession, entry_id: int) -> Entry:
    """One entry (deleted ones too: their history stays readable)."""
    entry = await db.get(Entry, entry_id)
    if entry is None:
        raise NotFound(N_("This entry does not exist."))
    return entry


# --- plain data ------------------------------------------------------------------------------


async def entry_data(db: AsyncSession, entry: Entry) -> dict[str, Any]:
    """An entry as plain JSON-ready data (what the API, the live feed and the exports use)."""
    unit = await db.get(Unit, entry.unit_id) if entry.unit_id else None
    owner_unit = await db.get(Unit, entry.owner_unit_id) if entry.owner_unit_id else None
    owner_person = await db.get(Person, entry.owner_person_id) if entry.owner_person_id else None
    raised_by = await db.get(Person, entry.created_by_id) if entry.created_by_id else None
    home = await db.get(Minutes, entry.minutes_id)
    raised_on = home.header.get("date", "") if home else ""
    return {
        "id": entry.id,
        "minutes_id": entry.minutes_id,
        "position": entry.position,
        "kind": entry.kind.value,
        "section": entry.section,
        "text": entry.text,
        "unit": {"code": unit.code, "name": unit.name} if unit else None,
        "category": entry.category,
        "severity": entry.severity,
        "owner_unit": {"code": owner_unit.code, "name": owner_unit.name} if owner_unit else None,
        "owner_person": {"email": owner_person.email, "name": owner_person.name} if owner_person else None,
        "due_date": entry.due_date.isoformat() if entry.due_date else None,
        "link_id": entry.link_id,
        "status": entry.status.value,
        "version": entry.version,
        "raised_on": raised_on,
        "raised_by": raised_by.name if raised_by else "",
    }


def change_data(change: EntryChange) -> dict[str, Any]:
    """One history line as plain data."""
    return {
        "id": change.id,
        "entry_id": change.entry_id,
        "minutes_id": change.minutes_id,
        "version": change.version,
        "action": change.action,
        "person": change.person_name,
        "at": change.at.isoformat(),
        "before": change.before,
        "after": change.after,
    }


async def since_raised(db: AsyncSession, entry: Entry) -> list[dict[str, Any]]:
    """What was decided or done about a carried entry since: the entries linked to it, by date."""
    rows = await db.scalars(
        select(Entry)
        .where(Entry.link_id == entry.id, Entry.deleted.is_(False))
        .order_by(Entry.created_at, Entry.id)
    )
    return [await entry_data(db, e) for e in rows]


# --- search ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A search result: the entry and its minutes' date and title."""

    entry: Entry
    minutes: Minutes
    title: str


async def search(db: AsyncSession, actor: Actor, query: str, *, limit: int = 50) -> list[Hit]:
    """Entries whose text (or unit code) has every word of the query, with or without diacritics."""
    words = fold(query).split()[:10]
    if not words or len(query) > 200:
        return []
    stmt = (
        select(Entry, Minutes, Series.title)
        .join(Minutes, Minutes.id == Entry.minutes_id)
        .join(Occurrence, Occurrence.id == Minutes.occurrence_id)
        .join(Series, Series.id == Occurrence.series_id)
        .where(Entry.deleted.is_(False))
        .order_by(Occurrence.start.desc(), Entry.position)
        .limit(limit)
    )
    for word in words:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Entry.search_text.like(f"%{escaped}%", escape="\\"))
    if not can_edit(actor):
        person = await db.get(Person, actor.id)
        invited = await series_of_person(db, person) if person else []
        from meetings.minutes.models import MinutesVersion

        published = select(MinutesVersion.minutes_id).where(MinutesVersion.published_at.is_not(None))
        stmt = stmt.where(
            Series.id.in_(invited or [-1]),
            or_(Minutes.status == MinutesStatus.PUBLISHED, Minutes.id.in_(published)),
        )
    return [Hit(e, m, t) for e, m, t in (await db.execute(stmt)).all()]


async def list_minutes(
    db: AsyncSession, actor: Actor, *, limit: int = 100
) -> list[tuple[Minutes, Occurrence, Series]]:
    """The newest minutes the person may read."""
    stmt = (
        select(Minutes, Occurrence, Series)
        .join(Occurrence, Occurrence.id == Minutes.occurrence_id)
        .join(Series, Series.id == Occurrence.series_id)
        .order_by(Occurrence.start.desc())
        .limit(limit)
    )
    if not can_edit(actor):
        person = await db.get(Person, actor.id)
        invited = await series_of_person(db, person) if person else []
        stmt = stmt.where(Series.id.in_(invited or [-1]), Minutes.status == MinutesStatus.PUBLISHED)
    return [(m, o, s) for m, o, s in (await db.execute(stmt)).all()]
