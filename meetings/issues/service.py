"""The issue register, built on the minutes: an "issue raised" entry IS an issue.

The entry holds the text, the centre, category, severity and owner (edited in the minutes);
the register adds an identifier, a status (open, in progress, resolved, closed), a resolution
and the events that happen between meetings. Issues a centre reports between meetings wait in
the register and are taken onto the next minutes opened (`take_onto_agenda`, called by
`meetings.minutes.service.ensure_minutes`), where they become entries carried like the others.

Every function takes a session and plain values and raises domain errors; the caller commits.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import i18n
from meetings.accounts.permissions import Actor, Permission, reads_whole_register
from meetings.db.base import utcnow
from meetings.directory.models import Person, Unit, UnitKind
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.issues.models import CODE_PREFIX, EVENT_LABELS, LIVE, Issue, IssueEvent, IssueStatus
from meetings.mail.outbox import enqueue
from meetings.minutes.models import (
    CHANGE_LABELS,
    CarriedEntry,
    Entry,
    EntryChange,
    EntryKind,
    EntryStatus,
    IssueCategory,
    Minutes,
    Severity,
)
from meetings.minutes.templates import default_section
from meetings.schedule.models import Occurrence, Series, SeriesInvitee, SeriesKind
from meetings.text import fold, normalize

MAX_TEXT = 4000
MAX_KEY = 80
MAIL_KIND = "issue_assigned"
AGE_BUCKETS = ((1, N_("Under a day")), (3, N_("1–3 days")), (7, N_("3–7 days")), (None, N_("Over a week")))


# --- the register's view of an issue ---------------------------------------------------------

# One value whether the issue was raised in minutes (the entry's) or reported directly (its own).
col_text = func.coalesce(Entry.text, Issue.reported_text)
col_unit = case((Issue.entry_id.is_(None), Issue.reported_unit_id), else_=Entry.unit_id)
col_owner = case((Issue.entry_id.is_(None), Issue.reported_owner_id), else_=Entry.owner_unit_id)
col_category = case((Issue.entry_id.is_(None), Issue.reported_category), else_=Entry.category)
col_severity = case((Issue.entry_id.is_(None), Issue.reported_severity), else_=Entry.severity)
# Closing or reopening the entry in a meeting moves the register's status with it.
col_status = case(
    (
        and_(Entry.status == EntryStatus.CLOSED, Issue.status.in_([s.value for s in LIVE])),
        literal(IssueStatus.RESOLVED.value),
    ),
    (
        and_(Entry.status == EntryStatus.OPEN, Issue.status.not_in([s.value for s in LIVE])),
        literal(IssueStatus.OPEN.value),
    ),
    else_=Issue.status,
)


def code_of(issue_id: int) -> str:
    """The identifier people quote: VĐ-00042."""
    return f"{CODE_PREFIX}{issue_id:05d}"


@dataclass
class IssueRow:
    """An issue as the register shows it."""

    id: int
    code: str
    text: str
    unit: Unit | None
    owner: Unit | None
    category: str | None
    severity: str | None
    status: IssueStatus
    source: str
    created_at: datetime
    resolution: str
    entry_id: int | None
    minutes_id: int | None
    age_days: int = 0

    def data(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "id": self.id,
            "code": self.code,
            "text": self.text,
            "unit": {"code": self.unit.code, "name": self.unit.name} if self.unit else None,
            "owner": {"code": self.owner.code, "name": self.owner.name} if self.owner else None,
            "category": self.category,
            "severity": self.severity,
            "status": self.status.value,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "age_days": self.age_days,
            "resolution": self.resolution,
            "entry_id": self.entry_id,
            "minutes_id": self.minutes_id,
        }


@dataclass
class Filters:
    """What the register list is narrowed to (codes and plain values; empty: no filter)."""

    unit: str = ""
    category: str = ""
    owner: str = ""
    status: str = ""  # a status, or "live" for open and in progress
    min_age_days: int | None = None
    limit: int = 200


def manages(actor: Actor) -> bool:
    """Whether the person assigns and moves every issue (secretary, chair)."""
    return actor.can(Permission.ISSUES_MANAGE)


@dataclass(frozen=True)
class Reach:
    """Whose issues a person reads: the whole city's register, or those of their own unit."""

    whole: bool
    unit: Unit | None  # the person's unit: its issues are those it raised or owns

    def covers(self, row: IssueRow) -> bool:
        """Whether an issue is within reach."""
        if self.whole:
            return True
        return self.unit is not None and self.unit.id in {
            row.unit.id if row.unit else None,
            row.owner.id if row.owner else None,
        }


async def reach_of(db: AsyncSession, actor: Actor) -> Reach:
    """Whose issues the person reads (meetings.accounts.permissions decides: by role or unit)."""
    unit = await db.get(Unit, actor.unit_id) if actor.unit_id else None
    return Reach(reads_whole_register(actor, unit.kind if unit else None), unit)


def _scope(reach: Reach) -> ColumnElement[bool]:
    """Issues within reach: all, or raised by or owned by the person's unit."""
    if reach.whole:
        return literal(True)
    if reach.unit is None:
        return literal(False)
    return or_(col_unit == reach.unit.id, col_owner == reach.unit.id)


async def sync_from_minutes(db: AsyncSession) -> int:
    """Give every issue entry of the minutes its register row (one INSERT … SELECT); how many new."""
    closed = case(
        (Entry.status == EntryStatus.CLOSED, literal(IssueStatus.RESOLVED.value)),
        else_=literal(IssueStatus.OPEN.value),
    )
    source = (
        select(
            Entry.id,
            closed,
            literal("minutes"),
            literal(""),
            literal(""),
            Entry.created_at,
            Entry.created_at,
        )
        .where(Entry.kind == EntryKind.ISSUE, ~exists().where(Issue.entry_id == Entry.id))
        .order_by(Entry.id)
    )
    result = await db.execute(
        insert(Issue).from_select(
            ["entry_id", "status", "source", "resolution", "reported_text", "created_at", "updated_at"],
            source,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _select() -> Any:
    return (
        select(Issue, Entry, col_text, col_unit, col_owner, col_category, col_severity, col_status)
        .outerjoin(Entry, Entry.id == Issue.entry_id)
        .where(or_(Entry.id.is_(None), Entry.deleted.is_(False)))
    )


async def _rows(db: AsyncSession, stmt: Any, now: datetime) -> list[IssueRow]:
    found = (await db.execute(stmt)).all()
    unit_ids = {r[3] for r in found if r[3]} | {r[4] for r in found if r[4]}
    units = {u.id: u for u in await db.scalars(select(Unit).where(Unit.id.in_(unit_ids or {-1})))}
    rows = []
    for issue, entry, text, unit_id, owner_id, category, severity, status in found:
        rows.append(
            IssueRow(
                id=issue.id,
                code=code_of(issue.id),
                text=text or "",
                unit=units.get(unit_id) if unit_id else None,
                owner=units.get(owner_id) if owner_id else None,
                category=category,
                severity=severity,
                status=IssueStatus(status),
                source=issue.source,
                created_at=issue.created_at,
                resolution=issue.resolution,
                entry_id=issue.entry_id,
                minutes_id=entry.minutes_id if entry is not None else None,
                age_days=max(0, (now - issue.created_at).days),
            )
        )
    return rows


async def _unit_by_code(db: AsyncSession, code: str) -> Unit | None:
    return await db.scalar(select(Unit).where(func.upper(Unit.code) == code.strip().upper()))


async def list_issues(
    db: AsyncSession, actor: Actor, filters: Filters | None = None, *, now: datetime | None = None
) -> list[IssueRow]:
    """The issues the person may read, narrowed by the filters, oldest first."""
    now = now or utcnow()
    filters = filters or Filters()
    await sync_from_minutes(db)
    stmt = _select().where(_scope(await reach_of(db, actor)))
    for code, column in ((filters.unit, col_unit), (filters.owner, col_owner)):
        if code.strip():
            unit = await _unit_by_code(db, code)
            stmt = stmt.where(column == (unit.id if unit else -1))
    if filters.category.strip():
        stmt = stmt.where(col_category == filters.category.strip())
    if filters.status == "live":
        stmt = stmt.where(col_status.in_([s.value for s in LIVE]))
    elif filters.status.strip():
        stmt = stmt.where(col_status == filters.status.strip())
    if filters.min_age_days is not None:
        stmt = stmt.where(Issue.created_at <= now - timedelta(days=filters.min_age_days))
    stmt = stmt.order_by(Issue.created_at, Issue.id).limit(max(1, min(filters.limit, 1000)))
    return await _rows(db, stmt, now)


def parse_filters(params: dict[str, str]) -> Filters:
    """Filters from query parameters; unknown values are refused with field errors."""
    errors: list[FieldError] = []
    status = params.get("status", "").strip()
    if status and status != "live" and status not in set(IssueStatus):
        errors.append(FieldError("status", N_("Choose a status from the list.")))
    category = params.get("category", "").strip()
    if category and category not in set(IssueCategory):
        errors.append(FieldError("category", N_("Choose a category from the list.")))
    age: int | None = None
    raw_age = params.get("age", "").strip()
    if raw_age:
        if not raw_age.isdigit() or len(raw_age) > 5:
            errors.append(FieldError("age", N_("Write a number of days.")))
        else:
            age = int(raw_age)
    if errors:
        raise InvalidInput(errors)
    return Filters(
        unit=params.get("unit", "")[:32],
        owner=params.get("owner", "")[:32],
        category=category,
        status=status,
        min_age_days=age,
    )


@dataclass
class Glance:
    """The register at a glance: oldest open issues, open issues by age, each owner's load."""

    oldest: list[IssueRow]
    by_age: list[tuple[str, int]]
    load: list[tuple[Unit | None, int, int]]  # owner, open, in progress


async def at_a_glance(db: AsyncSession, actor: Actor, *, now: datetime | None = None) -> Glance:
    """The oldest open issues, the open ones by age, and each owner's open and in-progress count."""
    now = now or utcnow()
    live = await list_issues(db, actor, Filters(status="live", limit=1000), now=now)
    by_age: list[tuple[str, int]] = []
    lower = 0
    for upper, label in AGE_BUCKETS:
        count = sum(1 for r in live if r.age_days >= lower and (upper is None or r.age_days < upper))
        by_age.append((label, count))
        lower = upper or lower
    loads: dict[int, list[Any]] = {}
    for row in live:
        key = row.owner.id if row.owner else 0
        slot = loads.setdefault(key, [row.owner, 0, 0])
        slot[1 if row.status == IssueStatus.OPEN else 2] += 1
    load = sorted(((u, o, p) for u, o, p in loads.values()), key=lambda t: -(t[1] + t[2]))
    return Glance(oldest=live[:5], by_age=by_age, load=load)


async def get_issue(
    db: AsyncSession, actor: Actor, issue_id: int, *, now: datetime | None = None
) -> IssueRow:
    """One issue the person may read."""
    await sync_from_minutes(db)
    rows = await _rows(db, _select().where(Issue.id == issue_id), now or utcnow())
    if not rows:
        raise NotFound(N_("This issue does not exist."))
    row = rows[0]
    if not (await reach_of(db, actor)).covers(row):
        raise Forbidden(N_("You may read the issues of your own unit only."))
    return row


async def issue_of_entry(db: AsyncSession, entry_id: int) -> Issue | None:
    """The register row of a minutes entry."""
    await sync_from_minutes(db)
    return await db.scalar(select(Issue).where(Issue.entry_id == entry_id))


# --- reporting between meetings --------------------------------------------------------------


@dataclass
class ReportInput:
    """An issue as a centre types it."""

    text: str = ""
    category: str = ""
    severity: str = ""
    unit: str = ""  # unit code; only the secretary and the chair report for another unit
    key: str = ""  # idempotency key: the same key reports once


def _event(issue: Issue, actor: Actor, action: str, now: datetime, **details: Any) -> IssueEvent:
    minutes_id = details.pop("minutes_id", None)
    return IssueEvent(
        issue_id=issue.id,
        action=action,
        minutes_id=minutes_id,
        person_id=actor.id or None,
        person_name=actor.name,
        at=now,
        details=details,
    )


async def report(db: AsyncSession, actor: Actor, data: ReportInput, *, now: datetime | None = None) -> Issue:
    """A centre reports an issue between meetings; it waits for the next meeting's minutes.

    A repeated submission with the same key returns the issue already reported.
    """
    now = now or utcnow()
    if not actor.can(Permission.ISSUES_REPORT):
        raise Forbidden(N_("You may not report issues."))
    key = data.key.strip()
    if len(key) > MAX_KEY:
        raise InvalidInput([FieldError("key", N_("Use at most %(n)s characters."), {"n": MAX_KEY})])
    if key:
        found = await db.scalar(select(Issue).where(Issue.key == f"{actor.id}:{key}"))
        if found is not None:
            return found
    errors: list[FieldError] = []
    text = normalize(data.text or "")
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    if not text:
        errors.append(FieldError("text", N_("Describe the issue.")))
    elif len(text) > MAX_TEXT:
        errors.append(FieldError("text", N_("Use at most %(n)s characters."), {"n": MAX_TEXT}))
    category = data.category.strip() or IssueCategory.OTHER.value
    if category not in set(IssueCategory):
        errors.append(FieldError("category", N_("Choose a category from the list.")))
    severity = data.severity.strip() or Severity.MEDIUM.value
    if severity not in set(Severity):
        errors.append(FieldError("severity", N_("Choose a severity from the list.")))
    unit_id = actor.unit_id
    if data.unit.strip():
        unit = await _unit_by_code(db, data.unit)
        if unit is None:
            errors.append(FieldError("unit", N_("Unknown unit %(code)s."), {"code": data.unit.strip()[:40]}))
        elif unit.id != actor.unit_id and not manages(actor):
            raise Forbidden(N_("A centre reports issues for itself only."))
        else:
            unit_id = unit.id
    if unit_id is None and not errors:
        errors.append(FieldError("unit", N_("Say which unit raised the issue.")))
    if errors:
        raise InvalidInput(errors)
    issue = Issue(
        status=IssueStatus.OPEN,
        source="direct",
        resolution="",
        reported_text=text,
        reported_unit_id=unit_id,
        reported_category=category,
        reported_severity=severity,
        reported_by_id=actor.id or None,
        key=f"{actor.id}:{key}" if key else None,
        created_at=now,
        updated_at=now,
    )
    db.add(issue)
    await db.flush()
    db.add(_event(issue, actor, "reported", now))
    await db.flush()
    return issue


async def take_onto_agenda(db: AsyncSession, minutes: Minutes, occurrence: Occurrence) -> int:
    """Put the issues reported since the last meeting onto these minutes (as issue entries).

    Called when minutes are opened; an issue reported before the meeting ended and still open
    becomes an entry of these minutes, raised by its reporter; returns how many. Only the daily
    meetings take them, and only those of the units they invite: an ad hoc meeting is about
    its incident, not the centres' other open issues.
    """
    series = await db.get(Series, occurrence.series_id)
    if series is None or series.kind is SeriesKind.ADHOC:
        return 0
    invited = select(SeriesInvitee.unit_id).where(
        SeriesInvitee.series_id == series.id, SeriesInvitee.unit_id.is_not(None)
    )
    waiting = list(
        await db.scalars(
            select(Issue)
            .where(
                Issue.entry_id.is_(None),
                Issue.status.in_([s.value for s in LIVE]),
                Issue.created_at <= occurrence.end,
                or_(Issue.reported_unit_id.is_(None), Issue.reported_unit_id.in_(invited)),
            )
            .order_by(Issue.id)
        )
    )
    if not waiting:
        return 0
    last = await db.scalar(select(func.max(Entry.position)).where(Entry.minutes_id == minutes.id)) or 0
    now = utcnow()
    for issue in waiting:
        reporter = await db.get(Person, issue.reported_by_id) if issue.reported_by_id else None
        last += 1
        entry = Entry(
            minutes_id=minutes.id,
            position=last,
            kind=EntryKind.ISSUE,
            section=default_section(minutes.template, EntryKind.ISSUE),
            text=issue.reported_text,
            unit_id=issue.reported_unit_id,
            category=issue.reported_category,
            severity=issue.reported_severity,
            owner_unit_id=issue.reported_owner_id,
            status=EntryStatus.OPEN,
            version=1,
            deleted=False,
            created_by_id=issue.reported_by_id,
            created_at=now,
            updated_at=now,
        )
        codes = [
            u.code
            for u in [await db.get(Unit, i) for i in (issue.reported_unit_id, issue.reported_owner_id) if i]
            if u
        ]
        entry.search_text = fold(" ".join([entry.text, *codes]))
        db.add(entry)
        await db.flush()
        db.add(
            EntryChange(
                entry_id=entry.id,
                minutes_id=minutes.id,
                version=1,
                action="create",
                person_id=issue.reported_by_id,
                person_name=reporter.name if reporter else "",
                at=now,
                before={},
                after={"kind": "issue", "text": entry.text, "unit_id": entry.unit_id, "source": "register"},
            )
        )
        issue.entry_id = entry.id
        issue.updated_at = now
        db.add(
            IssueEvent(
                issue_id=issue.id,
                action="agenda",
                minutes_id=minutes.id,
                person_name="",
                at=now,
                details={},
            )
        )
    await db.flush()
    return len(waiting)


# --- assignment and status -------------------------------------------------------------------


async def _locked(db: AsyncSession, issue_id: int) -> tuple[Issue, Entry | None]:
    await sync_from_minutes(db)
    issue = await db.scalar(
        select(Issue).where(Issue.id == issue_id).with_for_update().execution_options(populate_existing=True)
    )
    if issue is None:
        raise NotFound(N_("This issue does not exist."))
    entry = None
    if issue.entry_id is not None:
        entry = await db.scalar(
            select(Entry).where(Entry.id == issue.entry_id).execution_options(populate_existing=True)
        )
        if entry is None or entry.deleted:
            raise NotFound(N_("This issue does not exist."))
    return issue, entry


async def _change_entry(
    db: AsyncSession, actor: Actor, entry: Entry, action: str, changes: dict[str, Any], now: datetime
) -> None:
    """Change an issue's entry with the minutes' compare-and-set on its version, and record it."""
    seen = entry.version
    result = await db.execute(
        update(Entry)
        .where(Entry.id == entry.id, Entry.version == seen)
        .values(version=seen + 1, updated_at=now, **changes)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict(N_("Someone changed this issue at the same time. Reload and try again."))
    before = {k: _plain(getattr(entry, k)) for k in changes}
    await db.refresh(entry)
    db.add(
        EntryChange(
            entry_id=entry.id,
            minutes_id=entry.minutes_id,
            version=entry.version,
            action=action,
            person_id=actor.id or None,
            person_name=actor.name,
            at=now,
            before=before,
            after={k: _plain(v) for k, v in changes.items()},
        )
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value.value if hasattr(value, "value") else value


async def assign(
    db: AsyncSession,
    actor: Actor,
    issue_id: int,
    owner_code: str,
    *,
    base_url: str,
    sender_email: str,
    sender_name: str,
    now: datetime | None = None,
) -> tuple[Issue, int]:
    """Give an issue to a department or support team and email its people; (issue, mails queued)."""
    now = now or utcnow()
    if not actor.can(Permission.ISSUES_MANAGE):
        raise Forbidden(N_("Only the secretary and the chair assign issues."))
    owner = await _unit_by_code(db, owner_code) if owner_code.strip() else None
    if owner is None:
        raise InvalidInput([FieldError("owner", N_("Choose the unit that will handle the issue."))])
    if owner.kind == UnitKind.CENTRE:
        raise InvalidInput([FieldError("owner", N_("Assign issues to a department or a support team."))])
    issue, entry = await _locked(db, issue_id)
    current = entry.owner_unit_id if entry is not None else issue.reported_owner_id
    if current == owner.id:
        return issue, 0  # already theirs: a repeated request changes and sends nothing
    if entry is not None:
        await _change_entry(db, actor, entry, "update", {"owner_unit_id": owner.id}, now)
    else:
        issue.reported_owner_id = owner.id
    issue.updated_at = now
    db.add(_event(issue, actor, "assigned", now, owner=owner.code))
    count = await db.scalar(
        select(func.count())
        .select_from(IssueEvent)
        .where(IssueEvent.issue_id == issue.id, IssueEvent.action == "assigned")
    )
    await db.flush()
    text = entry.text if entry is not None else issue.reported_text
    queued = await _mail_owner(
        db, issue, owner, text, int(count or 0) + 1, base_url, sender_email, sender_name, now
    )
    return issue, queued


async def _mail_owner(
    db: AsyncSession,
    issue: Issue,
    owner: Unit,
    text: str,
    assignment: int,
    base_url: str,
    sender_email: str,
    sender_name: str,
    now: datetime,
) -> int:
    """Email every active person of the owner unit; one key per assignment and recipient."""
    people = await db.scalars(
        select(Person).where(Person.unit_id == owner.id, Person.active.is_(True)).order_by(Person.id)
    )
    link = f"{base_url.rstrip('/')}/issues/{issue.id}"
    queued = 0
    for person in people:
        with i18n.language(person.language):
            subject = (
                "["
                + i18n.gettext("Giao Ban")
                + "] "
                + i18n.gettext("Issue %(code)s assigned to %(unit)s", code=code_of(issue.id), unit=owner.code)
            )
            body = i18n.gettext(
                "The issue %(code)s has been assigned to your unit (%(unit)s):\n\n%(text)s\n\n"
                "Follow it: %(url)s\n",
                code=code_of(issue.id),
                unit=owner.name,
                text=text,
                url=link,
            )
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = Address(display_name=sender_name, addr_spec=sender_email)
        msg["To"] = Address(display_name=person.name, addr_spec=person.email)
        msg["Subject"] = subject
        msg.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
        key = f"{MAIL_KIND}:{issue.id}:{assignment}:{owner.id}:{person.email.casefold()}"
        queued += int(await enqueue(db, key=key[:255], kind=MAIL_KIND, message=msg, now=now))
    return queued


def may_move(actor: Actor, row: IssueRow) -> bool:
    """Managers move every issue; the owner unit moves its own to in progress or resolved."""
    return manages(actor) or (
        actor.can(Permission.ISSUES_REPORT) and row.owner is not None and row.owner.id == actor.unit_id
    )


async def set_status(
    db: AsyncSession,
    actor: Actor,
    issue_id: int,
    status: str,
    resolution: str = "",
    *,
    now: datetime | None = None,
) -> Issue:
    """Move an issue: open, in progress, resolved (with its resolution) or closed."""
    now = now or utcnow()
    row = await get_issue(db, actor, issue_id, now=now)
    if not may_move(actor, row):
        raise Forbidden(N_("Only the secretary, the chair or the unit that owns the issue may move it."))
    try:
        wanted = IssueStatus(status)
    except ValueError as exc:
        raise InvalidInput([FieldError("status", N_("Choose a status from the list."))]) from exc
    if not manages(actor) and wanted not in {IssueStatus.IN_PROGRESS, IssueStatus.RESOLVED}:
        raise Forbidden(N_("The owner marks an issue in progress or resolved; the meeting closes it."))
    resolution = normalize(resolution)
    if len(resolution) > MAX_TEXT:
        raise InvalidInput([FieldError("resolution", N_("Use at most %(n)s characters."), {"n": MAX_TEXT})])
    if wanted == IssueStatus.RESOLVED and not (resolution or row.resolution):
        raise InvalidInput([FieldError("resolution", N_("Say how the issue was resolved."))])
    issue, entry = await _locked(db, issue_id)
    if wanted == row.status and (not resolution or resolution == issue.resolution):
        return issue
    entry_open = wanted in LIVE
    if entry is not None and (entry.status == EntryStatus.OPEN) != entry_open:
        changes: dict[str, Any] = {
            "status": EntryStatus.OPEN if entry_open else EntryStatus.CLOSED,
            "closed_at": None if entry_open else now,
        }
        await _change_entry(db, actor, entry, "reopen" if entry_open else "close", changes, now)
    before = row.status
    issue.status = wanted
    if resolution:
        issue.resolution = resolution
    issue.resolved_at = None if entry_open else (issue.resolved_at or now)
    issue.updated_at = now
    db.add(_event(issue, actor, "status", now, before=before.value, after=wanted.value))
    await db.flush()
    return issue


# --- history ---------------------------------------------------------------------------------


@dataclass
class Step:
    """One line of an issue's history; minutes_id links to the minutes where it happened."""

    at: datetime
    action: str
    label: str
    person: str = ""
    minutes_id: int | None = None
    meeting: str = ""
    details: dict[str, Any] = field(default_factory=dict)


async def _meeting_of(db: AsyncSession, minutes_id: int | None) -> str:
    if minutes_id is None:
        return ""
    row = (
        await db.execute(
            select(Series.title, Minutes.header)
            .join(Occurrence, Occurrence.series_id == Series.id)
            .join(Minutes, Minutes.occurrence_id == Occurrence.id)
            .where(Minutes.id == minutes_id)
        )
    ).first()
    if row is None:
        return ""
    title, header = row
    return f"{title}, {header.get('date', '')}"


_ENTRY_ACTIONS = {"create": "raised", "close": "closed", "reopen": "reopened", "update": "changed"}


async def history(db: AsyncSession, issue_id: int) -> list[Step]:
    """Raised, reported, discussed, assigned, moved, closed: every step, oldest first, with minutes."""
    issue = await db.get(Issue, issue_id)
    if issue is None:
        raise NotFound(N_("This issue does not exist."))
    steps: list[Step] = []
    for event in await db.scalars(select(IssueEvent).where(IssueEvent.issue_id == issue.id)):
        steps.append(
            Step(
                event.at,
                event.action,
                EVENT_LABELS.get(event.action, event.action),
                event.person_name,
                event.minutes_id,
                details=dict(event.details),
            )
        )
    if issue.entry_id is not None:
        changes = await db.scalars(select(EntryChange).where(EntryChange.entry_id == issue.entry_id))
        for change in changes:
            if change.action not in _ENTRY_ACTIONS or change.after.get("source") == "register":
                continue  # an entry made from a reported issue: its "agenda" event says so
            if change.action == "update" and set(change.after) <= {"owner_unit_id"}:
                continue  # an assignment from the register: its event says it better
            if (
                change.action in {"close", "reopen"}
                and change.person_id
                and any(s.action == "status" and abs((s.at - change.at).total_seconds()) < 1 for s in steps)
            ):
                continue  # the register moved it: one line is enough
            action = _ENTRY_ACTIONS[change.action]
            label = EVENT_LABELS.get(action, CHANGE_LABELS.get(change.action, change.action))
            steps.append(
                Step(
                    change.at,
                    action,
                    label,
                    change.person_name,
                    change.minutes_id,
                    details={k: v for k, v in change.after.items() if k in {"text", "status"}},
                )
            )
        carried = await db.execute(
            select(CarriedEntry.minutes_id, Occurrence.start)
            .join(Minutes, Minutes.id == CarriedEntry.minutes_id)
            .join(Occurrence, Occurrence.id == Minutes.occurrence_id)
            .where(CarriedEntry.entry_id == issue.entry_id)
        )
        for minutes_id, start in carried.all():
            steps.append(Step(start, "discussed", EVENT_LABELS["discussed"], "", minutes_id))
    for step in steps:
        step.meeting = await _meeting_of(db, step.minutes_id)
    steps.sort(key=lambda s: (s.at, s.action != "raised"))
    return steps


def step_data(step: Step) -> dict[str, Any]:
    """A history line as plain data."""
    return {
        "at": step.at.isoformat(),
        "action": step.action,
        "person": step.person,
        "minutes_id": step.minutes_id,
        "meeting": step.meeting,
        "details": step.details,
    }
