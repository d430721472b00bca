"""Each unit's connection history across meetings, and the city-wide overview ranked by trouble.

Reads the `ConnectionRecord` rows written when meetings end (one per invited unit and meeting)
and the `ConnectionCheck` rows of the connection check. The follow-up issues that a unit's bad
meetings open are `meetings.readiness.followup`'s; this module only reads them. The chart is
laid out here as SVG geometry and drawn by the template (no script, CSP-safe), as the figures'
dashboard does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.permissions import Actor, Permission
from meetings.directory.models import Person, Unit, UnitKind
from meetings.errors import N_, FieldError, Forbidden, InvalidInput, NotFound
from meetings.issues.models import LIVE, Issue, IssueStatus
from meetings.issues.service import code_of, col_status, col_unit
from meetings.minutes.models import Entry
from meetings.readiness.models import (
    CONNECTION_OUTCOME_LABELS,
    CheckVerdict,
    ConnectionCheck,
    ConnectionOutcome,
    ConnectionRecord,
)
from meetings.schedule.models import Occurrence, Series
from meetings.text import fold

# The register's `source` of the issues the follow-up opens (see meetings.readiness.followup).
FOLLOW_UP_SOURCE = "readiness"
BAD = frozenset({ConnectionOutcome.WEAK, ConnectionOutcome.FAILED})
MAX_QUERY = 200
MAX_MEETINGS = 200
CHECKS_SHOWN = 10
# The outcomes under the chart's marks, where a column is narrow.
SHORT_OUTCOME_LABELS: dict[str, str] = {
    ConnectionOutcome.GOOD.value: N_("Good"),
    ConnectionOutcome.WEAK.value: N_("Weak"),
    ConnectionOutcome.FAILED.value: N_("No link"),
    ConnectionOutcome.EXCUSED.value: N_("Away"),
}
# The unit's history page, for links written into issues and mail (the web layer routes it).
HISTORY_PATH = "/readiness/history/units/{id}"


@dataclass(frozen=True)
class Thresholds:
    """When a unit's connection becomes a follow-up issue: `bad` weak or failed in its last `window`."""

    bad: int = 3
    window: int = 5


# --- who may read ------------------------------------------------------------------------------


def may_read(actor: Actor, unit: Unit) -> bool:
    """The readiness readers see every unit; a unit's own people and its operator's see that unit."""
    if actor.can(Permission.READINESS_READ):
        return True
    return actor.unit_id is not None and actor.unit_id in {unit.id, unit.operator_id}


# --- records -----------------------------------------------------------------------------------


@dataclass
class MeetingRecord:
    """One unit's connection at one meeting, with the meeting's title."""

    record: ConnectionRecord
    title: str

    @property
    def bad(self) -> bool:
        """Weak or failed."""
        return self.record.outcome in BAD

    @property
    def outcome_label(self) -> str:
        """The outcome's msgid."""
        return CONNECTION_OUTCOME_LABELS[self.record.outcome]

    @property
    def weak_minutes(self) -> float:
        """Time on a weak link, in minutes."""
        return self.record.weak_s / 60

    @property
    def audio_only_minutes(self) -> float:
        """Time on audio only, in minutes."""
        return self.record.audio_only_s / 60

    @property
    def join_delay_minutes(self) -> float | None:
        """Minutes from the start to the first connection (None: never connected)."""
        delay = self.record.join_delay_s
        return None if delay is None else max(0.0, delay) / 60


async def recent_records(
    db: AsyncSession, unit_id: int, limit: int, *, with_excused: bool = True, fresh: bool = False
) -> list[MeetingRecord]:
    """A unit's last `limit` connection records, newest first (excused meetings left out if asked)."""
    stmt = (
        select(ConnectionRecord, Series.title)
        .join(Occurrence, Occurrence.id == ConnectionRecord.occurrence_id)
        .join(Series, Series.id == Occurrence.series_id)
        .where(ConnectionRecord.unit_id == unit_id)
        .order_by(ConnectionRecord.meeting_start.desc(), ConnectionRecord.id.desc())
        .limit(limit)
    )
    if not with_excused:
        stmt = stmt.where(ConnectionRecord.outcome != ConnectionOutcome.EXCUSED)
    if fresh:  # re-read after taking a lock: what another transaction committed meanwhile
        stmt = stmt.execution_options(populate_existing=True)
    return [MeetingRecord(record, title) for record, title in (await db.execute(stmt)).all()]


# --- follow-up issues, as the register sees them -------------------------------------------------


@dataclass(frozen=True)
class FollowUp:
    """A follow-up issue of a unit, with its status as the register reads it."""

    id: int
    code: str
    status: IssueStatus
    created_at: datetime
    # When it stopped being live (resolved or closed, here or in a meeting's minutes).
    ended_at: datetime | None
    owner_id: int | None

    @property
    def live(self) -> bool:
        """Open or being handled."""
        return self.status in LIVE


async def follow_ups(db: AsyncSession, unit_ids: list[int] | None = None) -> dict[int, list[FollowUp]]:
    """The follow-up issues of some units (all when None), newest first, by unit id."""
    owner = func.coalesce(Entry.owner_unit_id, Issue.reported_owner_id)
    ended = func.coalesce(Issue.resolved_at, Entry.closed_at, Issue.updated_at)
    stmt = (
        select(Issue.id, col_unit, col_status, Issue.created_at, ended, owner, Entry.deleted)
        .outerjoin(Entry, Entry.id == Issue.entry_id)
        .where(Issue.source == FOLLOW_UP_SOURCE)
        .order_by(Issue.id.desc())
    )
    if unit_ids is not None:
        stmt = stmt.where(col_unit.in_(unit_ids or [-1]))
    found: dict[int, list[FollowUp]] = {}
    for issue_id, unit_id, status, created_at, ended_at, owner_id, deleted in (await db.execute(stmt)).all():
        if unit_id is None:
            continue
        # An issue whose minutes entry was deleted has left the register: it is over.
        state = IssueStatus.CLOSED if deleted else IssueStatus(status)
        found.setdefault(unit_id, []).append(
            FollowUp(
                id=issue_id,
                code=code_of(issue_id),
                status=state,
                created_at=created_at,
                ended_at=None if state in LIVE else ended_at,
                owner_id=owner_id,
            )
        )
    return found


# --- the chart ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar of a panel (SVG coordinates) and the value it shows."""

    x: float
    y: float
    width: float
    height: float
    value: float
    tip: str  # the meeting, for the bar's <title>


@dataclass(frozen=True)
class Panel:
    """One row of the chart: a measure per meeting, as bars on its own scale."""

    key: str
    title: str  # msgid
    unit: str  # msgid of the measure's unit
    top: float
    height: float
    maximum: float
    bars: list[Bar]
    decimals: int = 0


@dataclass(frozen=True)
class Mark:
    """A meeting's outcome on the chart's last row: a shape, its label and the meeting's day."""

    x: float
    y: float
    outcome: str
    label: str  # msgid
    day: str  # dd/mm
    tip: str


@dataclass
class Chart:
    """Join delay, time on a weak link and drop-outs per meeting, then the outcomes."""

    width: int
    height: int
    left: int
    panels: list[Panel]
    marks: list[Mark]
    marks_y: float
    legend: list[tuple[str, str]] = field(default_factory=list)  # (outcome, msgid)


PANEL_HEIGHT = 64
PANEL_GAP = 26  # room for the panel's title above it
COLUMN = 34
LEFT = 58


def _tip(row: MeetingRecord, tz: tzinfo) -> str:
    local = row.record.meeting_start.astimezone(tz)
    return f"{local.strftime('%H:%M %d/%m/%Y')} {row.title}"


def history_chart(rows: list[MeetingRecord], tz: tzinfo) -> Chart:
    """Lay out the chart of a unit's meetings (oldest first): three panels of bars, a row of marks."""
    count = max(1, len(rows))
    width = max(360, LEFT + count * COLUMN + 12)
    measures: list[tuple[str, str, str, list[float | None], int]] = [
        ("join", N_("Join delay"), N_("min"), [r.join_delay_minutes for r in rows], 1),
        ("weak", N_("Time on a weak link"), N_("min"), [r.weak_minutes for r in rows], 1),
        ("dropouts", N_("Drop-outs"), N_("times"), [float(r.record.dropouts) for r in rows], 0),
    ]
    panels: list[Panel] = []
    top = float(PANEL_GAP)
    for key, title, unit, values, decimals in measures:
        maximum = max([v for v in values if v is not None] + [1.0 if decimals == 0 else 0.1])
        bars = []
        for i, (value, row) in enumerate(zip(values, rows, strict=True)):
            if value is None:
                continue
            height = PANEL_HEIGHT * value / maximum
            x = LEFT + i * COLUMN + COLUMN * 0.2
            bars.append(
                Bar(
                    round(x, 1),
                    round(top + PANEL_HEIGHT - height, 1),
                    round(COLUMN * 0.6, 1),
                    round(height, 1),
                    round(value, decimals),
                    _tip(row, tz),
                )
            )
        panels.append(Panel(key, title, unit, top, PANEL_HEIGHT, maximum, bars, decimals))
        top += PANEL_HEIGHT + PANEL_GAP
    marks_y = top + 4
    marks = [
        Mark(
            round(LEFT + i * COLUMN + COLUMN / 2, 1),
            marks_y,
            row.record.outcome.value,
            row.outcome_label,
            row.record.meeting_start.astimezone(tz).strftime("%d/%m"),
            _tip(row, tz),
        )
        for i, row in enumerate(rows)
    ]
    legend = [(o.value, CONNECTION_OUTCOME_LABELS[o]) for o in ConnectionOutcome]
    return Chart(width, int(marks_y + 40), LEFT, panels, marks, marks_y, legend)


# --- one unit's page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRow:
    """A connection check run for the unit, with who ran it."""

    check: ConnectionCheck
    person: str

    @property
    def failed(self) -> bool:
        """The check could not connect."""
        return self.check.verdict == CheckVerdict.FAILED


@dataclass
class UnitHistory:
    """What a unit's history page shows."""

    unit: Unit
    operator: Unit | None
    rows: list[MeetingRecord]  # oldest first
    chart: Chart
    checks: list[CheckRow]
    follow_ups: list[FollowUp]
    thresholds: Thresholds
    recent_bad: int  # weak or failed among the last `thresholds.window` meetings (excused left out)

    @property
    def live_follow_up(self) -> FollowUp | None:
        """The follow-up issue being handled now, if any."""
        return next((f for f in self.follow_ups if f.live), None)


def parse_meetings(raw: str, default: int) -> int:
    """The ?meetings= count of a history page: a whole number from 1 to MAX_MEETINGS."""
    raw = raw.strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4 or not 1 <= int(raw) <= MAX_MEETINGS:
        raise InvalidInput(
            [FieldError("meetings", N_("Write a number of meetings from 1 to %(n)s."), {"n": MAX_MEETINGS})]
        )
    return int(raw)


async def unit_history(
    db: AsyncSession, actor: Actor, unit_id: int, *, meetings: int, thresholds: Thresholds, tz: tzinfo
) -> UnitHistory:
    """A unit's connection record across its last meetings, its last checks and follow-up issues."""
    unit = await db.get(Unit, unit_id)
    if unit is None:
        raise NotFound(N_("This unit does not exist."))
    if not may_read(actor, unit):
        raise Forbidden(N_("You may read the connection history of your own unit only."))
    operator = await db.get(Unit, unit.operator_id) if unit.operator_id else None
    rows = list(reversed(await recent_records(db, unit.id, min(meetings, MAX_MEETINGS))))
    window = await recent_records(db, unit.id, thresholds.window, with_excused=False)
    checks = [
        CheckRow(check, name or "")
        for check, name in (
            await db.execute(
                select(ConnectionCheck, Person.name)
                .outerjoin(Person, Person.id == ConnectionCheck.person_id)
                .where(ConnectionCheck.unit_id == unit.id)
                .order_by(ConnectionCheck.at.desc(), ConnectionCheck.id.desc())
                .limit(CHECKS_SHOWN)
            )
        ).all()
    ]
    return UnitHistory(
        unit=unit,
        operator=operator,
        rows=rows,
        chart=history_chart(rows, tz),
        checks=checks,
        follow_ups=(await follow_ups(db, [unit.id])).get(unit.id, []),
        thresholds=thresholds,
        recent_bad=sum(1 for r in window if r.bad),
    )


# --- the city-wide overview --------------------------------------------------------------------


@dataclass
class OverviewRow:
    """A unit in the overview: its last meetings' outcomes and figures, and its live follow-up."""

    unit: Unit
    operator: Unit | None
    outcomes: list[ConnectionOutcome]  # the last meetings, oldest first (excused left out)
    bad: int = 0
    failed: int = 0
    weak_s: int = 0
    dropouts: int = 0
    join_delays: list[float] = field(default_factory=list)
    follow_up: FollowUp | None = None

    @property
    def weak_minutes(self) -> float:
        """Time on a weak link over the last meetings, in minutes."""
        return self.weak_s / 60

    @property
    def mean_join_delay_minutes(self) -> float | None:
        """The mean join delay of the meetings it joined, in minutes."""
        if not self.join_delays:
            return None
        return sum(max(0.0, d) for d in self.join_delays) / len(self.join_delays) / 60


def clean_query(raw: str) -> str:
    """The overview's search text: at most MAX_QUERY characters, refused otherwise."""
    if len(raw) > MAX_QUERY:
        raise InvalidInput([FieldError("q", N_("Use at most %(n)s characters."), {"n": MAX_QUERY})])
    return raw.strip()


async def overview(db: AsyncSession, *, q: str = "", thresholds: Thresholds) -> list[OverviewRow]:
    """Active centres and every unit with records, most trouble in their last meetings first.

    Trouble: weak or failed meetings among the last `thresholds.window` (excused ones left out),
    then failed ones, then time on a weak link, then drop-outs. The search ignores diacritics.
    """
    folded = fold(clean_query(q))
    has_records = select(ConnectionRecord.id).where(ConnectionRecord.unit_id == Unit.id).exists()
    stmt = select(Unit).where(Unit.active.is_(True), or_(Unit.kind == UnitKind.CENTRE, has_records))
    if folded:
        stmt = stmt.where(Unit.search_text.contains(folded))
    units = list(await db.scalars(stmt.order_by(Unit.code)))
    if not units:
        return []
    ids = [u.id for u in units]
    ranked = (
        select(
            ConnectionRecord.unit_id.label("unit_id"),
            ConnectionRecord.outcome.label("outcome"),
            ConnectionRecord.weak_s.label("weak_s"),
            ConnectionRecord.dropouts.label("dropouts"),
            ConnectionRecord.join_delay_s.label("join_delay_s"),
            ConnectionRecord.meeting_start.label("meeting_start"),
            func.row_number()
            .over(
                partition_by=ConnectionRecord.unit_id,
                order_by=(ConnectionRecord.meeting_start.desc(), ConnectionRecord.id.desc()),
            )
            .label("n"),
        )
        .where(
            ConnectionRecord.unit_id.in_(ids),
            ConnectionRecord.outcome != ConnectionOutcome.EXCUSED,
        )
        .subquery()
    )
    last = await db.execute(
        select(ranked)
        .where(and_(ranked.c.n <= thresholds.window))
        .order_by(ranked.c.unit_id, ranked.c.meeting_start)
    )
    operators = {
        u.id: u
        for u in await db.scalars(
            select(Unit).where(Unit.id.in_({u.operator_id for u in units if u.operator_id} or {-1}))
        )
    }
    rows = {u.id: OverviewRow(u, operators.get(u.operator_id or -1), []) for u in units}
    for unit_id, outcome, weak_s, dropouts, join_delay_s, _start, _n in last.all():
        row = rows[unit_id]
        value = ConnectionOutcome(outcome)
        row.outcomes.append(value)
        row.bad += value in BAD
        row.failed += value == ConnectionOutcome.FAILED
        row.weak_s += weak_s or 0
        row.dropouts += dropouts or 0
        if join_delay_s is not None:
            row.join_delays.append(join_delay_s)
    for unit_id, issues in (await follow_ups(db, ids)).items():
        rows[unit_id].follow_up = next((f for f in issues if f.live), None)
    return sorted(
        rows.values(),
        key=lambda r: (-r.bad, -r.failed, -r.weak_s, -r.dropouts, not r.outcomes, fold(r.unit.name)),
    )
