"""The readiness board of a meeting: one row per invited unit, what it checked, whether it is in
the meeting, who is helping it; and what the support team does from it (send the personal link
again, excuse a unit, note who is helping).

Domain only: the caller says who is connected now (the node's live room, or None to read the
attendance records, which every node writes), and pushes the board to its watchers
(`BoardHub`, encoded once with meetings.wire).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import audit, i18n
from meetings.accounts.permissions import ROLE_PERMISSIONS, Actor, Permission
from meetings.directory.models import Person, Unit
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.mail.outbox import Kind, enqueue, idempotency_key
from meetings.readiness.models import CheckVerdict, ConnectionCheck, ReadinessMark
from meetings.rooms.models import Attendance
from meetings.rooms.participant import Participant
from meetings.schedule.emails import MailFacts, render
from meetings.schedule.invitations import join_url
from meetings.schedule.jobs import plain_message
from meetings.schedule.models import Occurrence, OccurrenceState, Series
from meetings.schedule.service import Context, invited_units, invitees_of
from meetings.settings import Settings
from meetings.text import has_control, normalize
from meetings.wire import ServerMessage

MAX_NOTE = 500  # characters of an excuse's reason or a helper's note


class UnitStatus(enum.StrEnum):
    """Where an invited unit stands before (and during) the meeting."""

    FAILED = "failed"  # its last check could not connect
    NOT_YET = "not_yet"  # no check, not in the meeting
    HELPING = "helping"  # someone of the support team is on it
    CHECKED = "checked"  # its last check passed (video or audio)
    JOINED = "joined"  # someone of the unit is in the meeting now
    EXCUSED = "excused"  # absent with a reason


STATUS_LABELS: dict[UnitStatus, str] = {
    UnitStatus.FAILED: N_("Check failed"),
    UnitStatus.NOT_YET: N_("Not yet"),
    UnitStatus.HELPING: N_("Being helped"),
    UnitStatus.CHECKED: N_("Checked"),
    UnitStatus.JOINED: N_("In the meeting"),
    UnitStatus.EXCUSED: N_("Excused absence"),
}
# Problems first: the board is read from the top while the clock runs.
STATUS_ORDER = {status: i for i, status in enumerate(UnitStatus)}


@dataclass(frozen=True)
class BoardRules:
    """The board's settings: when it opens, how old a check may be."""

    open_minutes: int = 30
    check_hours: int = 24

    @classmethod
    def from_settings(cls, settings: Settings) -> BoardRules:
        """The rules the service is configured with."""
        return cls(
            open_minutes=settings.readiness_board_open_minutes, check_hours=settings.readiness_check_hours
        )


@dataclass(frozen=True)
class CheckFigures:
    """A unit's last connection check."""

    at: datetime
    verdict: CheckVerdict
    rtt_ms: float | None
    loss_pct: float | None
    up_kbps: float | None
    down_kbps: float | None
    person: str  # who ran it ("" if unknown)


@dataclass(frozen=True)
class Contact:
    """Someone of the unit to call."""

    name: str
    phone: str


@dataclass(frozen=True)
class BoardRow:
    """One invited unit on the board."""

    unit_id: int
    code: str
    name: str
    status: UnitStatus
    connected: tuple[str, ...]  # who is in the meeting for it now
    phone: str  # the unit's contact phone ("" if none)
    contacts: tuple[Contact, ...]  # its invitees' phones, when the unit has no phone
    check: CheckFigures | None
    operator: str = ""  # the telecom operator or support team keeping it connected ("" if none)
    excused: bool = False
    excuse_reason: str = ""
    excused_by: str = ""
    helper_id: int | None = None
    helper: str = ""
    help_note: str = ""
    help_at: datetime | None = None


@dataclass(frozen=True)
class Board:
    """The readiness board of one meeting."""

    occurrence_id: int
    title: str
    start: datetime
    end: datetime
    opens_at: datetime
    rows: tuple[BoardRow, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many units stand where, every status named (zeros included)."""
        counts = dict.fromkeys((s.value for s in UnitStatus), 0)
        for row in self.rows:
            counts[row.status.value] += 1
        return counts


def status_of(connected: bool, mark: ReadinessMark | None, check: CheckFigures | None) -> UnitStatus:
    """A unit's status: in the meeting beats everything, then an excuse, help, its last check."""
    if connected:
        return UnitStatus.JOINED
    if mark is not None and mark.excused:
        return UnitStatus.EXCUSED
    if mark is not None and mark.helper_id is not None:
        return UnitStatus.HELPING
    if check is not None:
        return UnitStatus.FAILED if check.verdict is CheckVerdict.FAILED else UnitStatus.CHECKED
    return UnitStatus.NOT_YET


def opens_at(occurrence: Occurrence, rules: BoardRules) -> datetime:
    """When the board of a meeting opens."""
    return occurrence.start - timedelta(minutes=rules.open_minutes)


def is_open(occurrence: Occurrence, rules: BoardRules, now: datetime) -> bool:
    """Whether the board of a meeting is open now: from `open_minutes` before its start to its end."""
    if occurrence.state in {OccurrenceState.CANCELLED, OccurrenceState.ENDED}:
        return False
    return opens_at(occurrence, rules) <= now < occurrence.end


def check_open(occurrence: Occurrence, series: Series, rules: BoardRules, now: datetime) -> None:
    """Raise Conflict, saying why, unless the board of the meeting is open now."""
    if occurrence.state is OccurrenceState.CANCELLED:
        raise Conflict(N_("This meeting is cancelled."))
    if occurrence.state is OccurrenceState.ENDED or now >= occurrence.end:
        raise Conflict(N_("This meeting has ended: its readiness board is closed."))
    at = opens_at(occurrence, rules)
    if now < at:
        local = at.astimezone(ZoneInfo(series.timezone))
        raise Conflict(
            N_("The readiness board opens at %(time)s on %(date)s, %(minutes)s minutes before the meeting."),
            time=local.strftime("%H:%M"),
            date=i18n.fmt_date(local.date()),
            minutes=rules.open_minutes,
        )


def require(actor: Actor, permission: Permission) -> None:
    """Raise Forbidden unless the actor may read the board (or act on it)."""
    if not actor.can(permission):
        raise Forbidden(N_("Only the chair, the secretary and the support team use the readiness board."))


async def open_boards(db: AsyncSession, rules: BoardRules, now: datetime) -> list[tuple[Occurrence, Series]]:
    """The meetings whose board is open now, whoever they invite (the home page's links)."""
    rows = await db.execute(
        select(Occurrence, Series)
        .join(Series, Occurrence.series_id == Series.id)
        .where(
            Occurrence.start <= now + timedelta(minutes=rules.open_minutes),
            Occurrence.end > now,
            Occurrence.state.not_in([OccurrenceState.CANCELLED, OccurrenceState.ENDED]),
        )
        .order_by(Occurrence.start, Occurrence.id)
    )
    return [(o, s) for o, s in rows.all()]


async def _meeting(db: AsyncSession, occurrence_id: int) -> tuple[Occurrence, Series]:
    occurrence = await db.get(Occurrence, occurrence_id)
    if occurrence is None:
        raise NotFound(N_("This meeting does not exist."))
    series = await db.get(Series, occurrence.series_id)
    if series is None:  # the foreign key cascades; a race with a delete at most
        raise NotFound(N_("This meeting does not exist."))
    return occurrence, series


async def invited(db: AsyncSession, series: Series) -> dict[int, tuple[Unit, list[Person]]]:
    """The units a meeting invites, each with its invited people: the units invited as such and
    the units of the people invited (the chair's and the secretary's too), by unit id."""
    people = await invitees_of(db, series)
    units = {u.id: u for u in await invited_units(db, series)}
    missing = {p.unit_id for p in people if p.unit_id is not None and p.unit_id not in units}
    if missing:
        units.update({u.id: u for u in await db.scalars(select(Unit).where(Unit.id.in_(missing)))})
    out: dict[int, tuple[Unit, list[Person]]] = {uid: (u, []) for uid, u in units.items() if u.active}
    for person in people:
        if person.unit_id in out:
            out[person.unit_id][1].append(person)
    return out


async def connected_from_attendance(db: AsyncSession, occurrence_id: int) -> dict[int, list[str]]:
    """Who is in the meeting now by unit, as the attendance records say (any node's room)."""
    rows = await db.execute(
        select(Attendance.unit_id, Person.name)
        .join(Person, Person.id == Attendance.person_id)
        .where(Attendance.occurrence_id == occurrence_id, Attendance.connected.is_(True))
        .order_by(Person.name)
    )
    out: dict[int, list[str]] = {}
    for unit_id, name in rows:
        if unit_id is not None:
            out.setdefault(unit_id, []).append(name)
    return out


async def last_checks(db: AsyncSession, unit_ids: Sequence[int], since: datetime) -> dict[int, CheckFigures]:
    """Each unit's newest connection check since `since`."""
    if not unit_ids:
        return {}
    rows = await db.execute(
        select(ConnectionCheck, Person.name)
        .outerjoin(Person, Person.id == ConnectionCheck.person_id)
        .where(ConnectionCheck.unit_id.in_(unit_ids), ConnectionCheck.at >= since)
        .order_by(ConnectionCheck.at.desc(), ConnectionCheck.id.desc())
    )
    out: dict[int, CheckFigures] = {}
    for check, person in rows:
        if check.unit_id is not None and check.unit_id not in out:
            out[check.unit_id] = CheckFigures(
                at=check.at,
                verdict=check.verdict,
                rtt_ms=check.rtt_ms,
                loss_pct=check.loss_pct,
                up_kbps=check.up_kbps,
                down_kbps=check.down_kbps,
                person=person or "",
            )
    return out


async def load_board(
    db: AsyncSession,
    actor: Actor,
    occurrence_id: int,
    *,
    rules: BoardRules,
    now: datetime,
    connected: Mapping[int, Sequence[str]] | None = None,
) -> Board:
    """The board of a meeting, if it is open; `connected`: who is in the meeting now by unit
    (the node's live room), None to read the attendance records."""
    require(actor, Permission.READINESS_READ)
    occurrence, series = await _meeting(db, occurrence_id)
    check_open(occurrence, series, rules, now)
    return await build_board(db, occurrence, series, rules=rules, now=now, connected=connected)


async def build_board(
    db: AsyncSession,
    occurrence: Occurrence,
    series: Series,
    *,
    rules: BoardRules,
    now: datetime,
    connected: Mapping[int, Sequence[str]] | None = None,
) -> Board:
    """The board of a meeting, open or not (the live push checks no window: it was open when
    its watchers came)."""
    units = await invited(db, series)
    if connected is None:
        connected = await connected_from_attendance(db, occurrence.id)
    marks = {
        m.unit_id: m
        for m in await db.scalars(select(ReadinessMark).where(ReadinessMark.occurrence_id == occurrence.id))
    }
    checks = await last_checks(db, list(units), now - timedelta(hours=rules.check_hours))
    names_needed = {pid for m in marks.values() for pid in (m.helper_id, m.excused_by_id) if pid}
    names: dict[int, str] = {}
    if names_needed:
        rows = await db.execute(select(Person.id, Person.name).where(Person.id.in_(names_needed)))
        names = {pid: name for pid, name in rows}
    operator_ids = {u.operator_id for u, _people in units.values() if u.operator_id is not None}
    operators: dict[int, str] = {}
    if operator_ids:
        rows = await db.execute(select(Unit.id, Unit.name).where(Unit.id.in_(operator_ids)))
        operators = {uid: name for uid, name in rows}
    board_rows: list[BoardRow] = []
    for unit_id, (unit, people) in units.items():
        mark = marks.get(unit_id)
        check = checks.get(unit_id)
        here = tuple(connected.get(unit_id, ()))
        board_rows.append(
            BoardRow(
                unit_id=unit_id,
                code=unit.code,
                name=unit.name,
                status=status_of(bool(here), mark, check),
                connected=here,
                phone=unit.phone,
                contacts=()
                if unit.phone
                else tuple(Contact(p.name, p.phone) for p in sorted(people, key=lambda p: p.name) if p.phone),
                check=check,
                operator=operators.get(unit.operator_id, "") if unit.operator_id is not None else "",
                excused=bool(mark and mark.excused),
                excuse_reason=mark.excuse_reason if mark and mark.excused else "",
                excused_by=names.get(mark.excused_by_id, "")
                if mark and mark.excused and mark.excused_by_id
                else "",
                helper_id=mark.helper_id if mark else None,
                helper=names.get(mark.helper_id, "") if mark and mark.helper_id else "",
                help_note=mark.help_note if mark and mark.helper_id else "",
                help_at=mark.help_at if mark and mark.helper_id else None,
            )
        )
    board_rows.sort(key=lambda r: (STATUS_ORDER[r.status], r.code))
    return Board(
        occurrence_id=occurrence.id,
        title=series.title,
        start=occurrence.start,
        end=occurrence.end,
        opens_at=opens_at(occurrence, rules),
        rows=tuple(board_rows),
    )


def board_json(board: Board) -> dict[str, Any]:
    """The board as the JSON API and the socket give it (times in ISO 8601, no translated text:
    the page holds its words, so one encoding serves every watcher)."""

    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at is not None else None

    return {
        "occurrence_id": board.occurrence_id,
        "title": board.title,
        "start": iso(board.start),
        "end": iso(board.end),
        "opens_at": iso(board.opens_at),
        "counts": board.counts,
        "rows": [
            {
                "unit_id": r.unit_id,
                "code": r.code,
                "name": r.name,
                "status": r.status.value,
                "connected": list(r.connected),
                "phone": r.phone,
                "contacts": [{"name": c.name, "phone": c.phone} for c in r.contacts],
                "operator": r.operator,
                "check": None
                if r.check is None
                else {
                    "at": iso(r.check.at),
                    "verdict": r.check.verdict.value,
                    "rtt_ms": r.check.rtt_ms,
                    "loss_pct": r.check.loss_pct,
                    "up_kbps": r.check.up_kbps,
                    "down_kbps": r.check.down_kbps,
                    "person": r.check.person,
                },
                "excused": r.excused,
                "excuse_reason": r.excuse_reason,
                "excused_by": r.excused_by,
                "helper_id": r.helper_id,
                "helper": r.helper,
                "help_note": r.help_note,
                "help_at": iso(r.help_at),
            }
            for r in board.rows
        ],
    }


# --- actions -----------------------------------------------------------------------------------


async def _acting_on(
    db: AsyncSession, actor: Actor, occurrence_id: int, unit_id: int, rules: BoardRules, now: datetime
) -> tuple[Occurrence, Series, Unit, list[Person]]:
    """The open meeting and the invited unit an action is about (errors say which is wrong)."""
    require(actor, Permission.READINESS_MANAGE)
    occurrence, series = await _meeting(db, occurrence_id)
    check_open(occurrence, series, rules, now)
    unit = await db.get(Unit, unit_id)
    if unit is None:
        raise NotFound(N_("This unit does not exist."))
    units = await invited(db, series)
    if unit_id not in units:
        raise NotFound(N_("%(unit)s is not invited to this meeting."), unit=unit.name)
    return occurrence, series, unit, units[unit_id][1]


def clean_note(raw: str, field: str, *, required: bool) -> str:
    """An excuse's reason or a helper's note, trimmed; InvalidInput if empty (when required),
    too long or holding control characters."""
    if has_control(raw):
        raise InvalidInput.one(
            FieldError(field, N_("Control characters (such as NUL or a line break) are not allowed here."))
        )
    text = normalize(raw)
    if required and not text:
        raise InvalidInput.one(FieldError(field, N_("This field is required.")))
    if len(text) > MAX_NOTE:
        raise InvalidInput.one(FieldError(field, N_("Use at most %(n)s characters."), {"n": MAX_NOTE}))
    return text


async def _mark(db: AsyncSession, occurrence_id: int, unit_id: int) -> ReadinessMark:
    """The unit's mark at this meeting, created when it has none (locked on PostgreSQL)."""
    mark = await db.scalar(
        select(ReadinessMark)
        .where(ReadinessMark.occurrence_id == occurrence_id, ReadinessMark.unit_id == unit_id)
        .with_for_update()
    )
    if mark is None:
        # Two first marks at once: the unique key refuses the second (a 409, try again).
        mark = ReadinessMark(occurrence_id=occurrence_id, unit_id=unit_id)
        db.add(mark)
    return mark


async def _audit(
    db: AsyncSession, actor: Actor, action: str, occurrence_id: int, unit: Unit, **details: Any
) -> None:
    await audit.record(
        db,
        actor_id=actor.id or None,
        actor_email=actor.email,
        action=f"readiness.{action}",
        target_type="unit",
        target_id=unit.id,
        details={"occurrence_id": occurrence_id, "unit": unit.code, **details},
    )


async def excuse(
    db: AsyncSession,
    actor: Actor,
    occurrence_id: int,
    unit_id: int,
    reason: str,
    *,
    rules: BoardRules,
    now: datetime,
) -> ReadinessMark:
    """Mark an invited unit absent with a reason; audited. The caller commits."""
    require(actor, Permission.READINESS_MANAGE)
    text = clean_note(reason, "reason", required=True)
    _occ, _series, unit, _people = await _acting_on(db, actor, occurrence_id, unit_id, rules, now)
    mark = await _mark(db, occurrence_id, unit_id)
    mark.excused, mark.excuse_reason, mark.excused_by_id, mark.excused_at = True, text, actor.id or None, now
    await db.flush()
    await _audit(db, actor, "excuse", occurrence_id, unit, reason=text)
    return mark


async def unexcuse(
    db: AsyncSession, actor: Actor, occurrence_id: int, unit_id: int, *, rules: BoardRules, now: datetime
) -> ReadinessMark:
    """Take an excuse back; audited. The caller commits."""
    _occ, _series, unit, _people = await _acting_on(db, actor, occurrence_id, unit_id, rules, now)
    mark = await _mark(db, occurrence_id, unit_id)
    before = mark.excuse_reason
    mark.excused, mark.excuse_reason, mark.excused_by_id, mark.excused_at = False, "", None, None
    await db.flush()
    await _audit(db, actor, "unexcuse", occurrence_id, unit, reason=before)
    return mark


async def helpers(db: AsyncSession) -> list[Person]:
    """The active people who may act on the board (the helper select's choices)."""
    roles = [role for role, granted in ROLE_PERMISSIONS.items() if Permission.READINESS_MANAGE in granted]
    return list(
        await db.scalars(
            select(Person)
            .where(Person.active.is_(True), Person.role.in_(roles))
            .order_by(Person.name, Person.id)
        )
    )


async def start_helping(
    db: AsyncSession,
    actor: Actor,
    occurrence_id: int,
    unit_id: int,
    note: str,
    *,
    helper_id: int | None = None,
    rules: BoardRules,
    now: datetime,
) -> ReadinessMark:
    """Note "đang hỗ trợ": who helps the unit (the actor by default) and a note; audited."""
    require(actor, Permission.READINESS_MANAGE)
    text = clean_note(note, "note", required=False)
    _occ, _series, unit, _people = await _acting_on(db, actor, occurrence_id, unit_id, rules, now)
    helper = helper_id if helper_id is not None else actor.id
    person = await db.get(Person, helper) if helper else None
    if person is None or not person.active:
        raise InvalidInput.one(FieldError("helper_id", N_("This person does not exist.")))
    mark = await _mark(db, occurrence_id, unit_id)
    mark.helper_id, mark.help_note, mark.help_at = person.id, text, now
    await db.flush()
    await _audit(db, actor, "help", occurrence_id, unit, helper_id=person.id, note=text)
    return mark


async def stop_helping(
    db: AsyncSession, actor: Actor, occurrence_id: int, unit_id: int, *, rules: BoardRules, now: datetime
) -> ReadinessMark:
    """The unit no longer needs help (or someone else takes over later); audited."""
    _occ, _series, unit, _people = await _acting_on(db, actor, occurrence_id, unit_id, rules, now)
    mark = await _mark(db, occurrence_id, unit_id)
    before = mark.helper_id
    mark.helper_id, mark.help_note, mark.help_at = None, "", None
    await db.flush()
    await _audit(db, actor, "unhelp", occurrence_id, unit, helper_id=before)
    return mark


async def resend_link(
    db: AsyncSession,
    actor: Actor,
    occurrence_id: int,
    unit_id: int,
    ctx: Context,
    *,
    rules: BoardRules,
) -> int:
    """Queue each invitee of the unit their personal link to this meeting again, by the outbox
    in the caller's transaction; audited. Sending twice in the same minute queues nothing new."""
    occurrence, series, unit, people = await _acting_on(db, actor, occurrence_id, unit_id, rules, ctx.now)
    if not people:
        raise Conflict(N_("%(unit)s has nobody active to send the link to."), unit=unit.name)
    zone = ZoneInfo(series.timezone)
    minute = int(ctx.now.timestamp() // 60)
    queued = 0
    for person in people:
        facts = MailFacts(
            kind="link",
            title=series.title,
            recipient_name=person.name,
            start=occurrence.start.astimezone(zone),
            end=occurrence.end.astimezone(zone),
            join_url=join_url(series, person, ctx, occurrence),
        )
        words = render(facts, person.language)
        message = plain_message(series, person, words.subject, words.text, words.html)
        key = idempotency_key(
            series.uid, occurrence.original_start.isoformat(), minute, person.email, Kind.LINK
        )
        queued += int(await enqueue(db, key=key, kind=Kind.LINK, message=message, now=ctx.now))
    await _audit(db, actor, "resend", occurrence_id, unit, recipients=len(people), queued=queued)
    return queued


# --- live watchers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardState(ServerMessage):
    """The whole board (docs/readiness/board.md): sent first, then on every change."""

    TYPE = "board"
    board: dict[str, Any]


class BoardWatcher(Protocol):
    """One open board socket, as the hub sees it (web/views/readiness_board.py)."""

    @property
    def occurrence_id(self) -> int:
        """The meeting watched."""
        ...

    def post(self, text: str) -> None:
        """Queue encoded text (never blocks; a watcher too slow to follow is closed)."""
        ...

    def close(self) -> None:
        """Close after what is queued."""
        ...


@dataclass
class BoardHub:
    """The board watchers of this node, by meeting, and the last board each was sent."""

    watchers: dict[int, set[BoardWatcher]] = field(default_factory=dict)
    last: dict[int, str] = field(default_factory=dict)
    # One reload at a time per meeting, so that an older board is never pushed after a newer one.
    locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    # Meetings whose reload is asked for and not started yet: a burst of joins makes one reload.
    queued: set[int] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def ask(self, occurrence_id: int) -> bool:
        """Note that a meeting's board changed; False when a reload not yet started will see it."""
        if occurrence_id not in self.watchers or occurrence_id in self.queued:
            return False
        self.queued.add(occurrence_id)
        return True

    def lock(self, occurrence_id: int) -> asyncio.Lock:
        """The lock a reload of this meeting's board holds while it reads and pushes."""
        return self.locks.setdefault(occurrence_id, asyncio.Lock())

    def add(self, watcher: BoardWatcher) -> None:
        """Start pushing to a watcher (its first board comes with `push(…, newcomer=watcher)`)."""
        self.watchers.setdefault(watcher.occurrence_id, set()).add(watcher)

    def remove(self, watcher: BoardWatcher) -> None:
        """Stop pushing to a watcher."""
        group = self.watchers.get(watcher.occurrence_id)
        if group is not None:
            group.discard(watcher)
            if not group:
                del self.watchers[watcher.occurrence_id]
                self.last.pop(watcher.occurrence_id, None)
                self.locks.pop(watcher.occurrence_id, None)

    def watched(self) -> list[int]:
        """The meetings someone watches the board of on this node."""
        return list(self.watchers)

    def push(self, occurrence_id: int, text: str, newcomer: BoardWatcher | None = None) -> int:
        """Send an encoded board to every watcher of the meeting unless it is the one last sent
        (a newcomer gets it anyway); returns how many were sent it."""
        group = self.watchers.get(occurrence_id)
        if not group:
            return 0
        if self.last.get(occurrence_id) == text:
            if newcomer is None or newcomer not in group:
                return 0
            newcomer.post(text)
            return 1
        self.last[occurrence_id] = text
        for watcher in list(group):
            watcher.post(text)
        return len(group)

    def close_all(self) -> None:
        """Close every watcher (shutdown)."""
        for group in list(self.watchers.values()):
            for watcher in list(group):
                watcher.close()


def connected_in_room(participants: Sequence[Participant]) -> dict[int, list[str]]:
    """Who is in the meeting now by unit, from a live room's seated participants."""
    out: dict[int, list[str]] = {}
    for p in participants:
        if p.unit_id is not None:
            out.setdefault(p.unit_id, []).append(p.name)
    return {uid: sorted(names) for uid, names in out.items()}
