"""Daily figures: validate, store (same-day corrections with history), tokens, dashboard, exports.

A centre reports per day the dossiers received, resolved and overdue, and optionally the same
per procedure. Reports come from the form (centre staff), a CSV upload (all or nothing, errors
with line numbers) or the JSON API with a per-centre token (only its SHA-256 is stored).
Sending the same figures again changes nothing; different figures correct the report on the
day it was made (the earlier version is kept), and are refused afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.permissions import Actor, Permission
from meetings.db.base import utcnow
from meetings.directory.models import Unit, UnitKind
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.figures import spreadsheet
from meetings.figures.models import DailyReport, ReportRevision, ReportToken
from meetings.schedule.service import working_calendar
from meetings.schedule.workdays import WorkingCalendar
from meetings.text import fold

MAX_COUNT = 1_000_000
MAX_PROCEDURES = 100
MAX_CSV_LINES = 20_000
TOKEN_PREFIX = "gbf_"
COUNTS = ("received", "resolved", "overdue")
_GROUPED = re.compile(r"\d{1,3}(?:([.,]|\s)\d{3})(?:\1\d{3})*")


# --- validation ------------------------------------------------------------------------------


@dataclass
class Figures:
    """One day's figures of one centre, validated."""

    day: date
    received: int
    resolved: int
    overdue: int
    backlog: int | None  # None: carried from the previous report
    procedures: dict[str, dict[str, int]] = field(default_factory=dict)

    def values(self, backlog: int) -> dict[str, Any]:
        """The stored values (what a revision keeps, what duplicates are compared on)."""
        return {
            "received": self.received,
            "resolved": self.resolved,
            "overdue": self.overdue,
            "backlog": backlog,
            "procedures": self.procedures,
        }


def _count(
    raw: Any, name: str, errors: list[FieldError], line: int | None, *, optional: bool = False
) -> int | None:
    """A count: a whole number from 0 to MAX_COUNT (text from forms and CSV, numbers from JSON)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if optional:
            return None
        errors.append(FieldError(name, N_("Enter a number."), line=line))
        return None
    value: int | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        # Spreadsheets may group thousands: "1.283" (Vietnamese), "1,283", "1 283".
        text = raw.strip()
        if _GROUPED.fullmatch(text.lstrip("-")):
            text = re.sub(r"[.,\s]", "", text)
        if text.lstrip("-").isdigit() and len(text) <= 9:
            value = int(text)
    if value is None:
        errors.append(FieldError(name, N_("Enter a whole number."), line=line))
        return None
    if value < 0:
        errors.append(FieldError(name, N_("A count cannot be negative."), line=line))
        return None
    if value > MAX_COUNT:
        errors.append(FieldError(name, N_("This number is too large."), line=line))
        return None
    return value


def _day(
    raw: Any, today: date, errors: list[FieldError], line: int | None, *, day_first: bool = False
) -> date | None:
    # A spreadsheet's dates are also accepted as dd/mm/yyyy (converted before): say so.
    how = (
        N_("Write the date as DD/MM/YYYY or YYYY-MM-DD.")
        if day_first
        else N_("Write the date as YYYY-MM-DD.")
    )
    if not isinstance(raw, str) or not raw.strip():
        errors.append(FieldError("day", how, line=line))
        return None
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        errors.append(FieldError("day", how, line=line))
        return None
    if day > today:
        errors.append(FieldError("day", N_("You cannot report figures for a future date."), line=line))
        return None
    if day < today - timedelta(days=366):
        errors.append(FieldError("day", N_("This date is more than a year ago."), line=line))
        return None
    return day


def clean(data: dict[str, Any], today: date, *, line: int | None = None, day_first: bool = False) -> Figures:
    """Validate one report (every problem at once): counts, date, optional breakdown by procedure."""
    errors: list[FieldError] = []
    day = _day(data.get("day"), today, errors, line, day_first=day_first)
    counts = {name: _count(data.get(name), name, errors, line) for name in COUNTS}
    backlog = _count(data.get("backlog"), "backlog", errors, line, optional=True)
    procedures: dict[str, dict[str, int]] = {}
    raw_procs = data.get("procedures") or {}
    if not isinstance(raw_procs, dict) or len(raw_procs) > MAX_PROCEDURES:
        errors.append(FieldError("procedures", N_("This field is not valid."), line=line))
    else:
        for name, values in raw_procs.items():
            key = str(name).strip()[:100]
            if not key or not isinstance(values, dict):
                errors.append(FieldError("procedures", N_("This field is not valid."), line=line))
                continue
            found = {c: _count(values.get(c, 0), f"procedures.{c}", errors, line) for c in COUNTS}
            procedures[key] = {c: v or 0 for c, v in found.items()}
    if errors:
        raise InvalidInput(errors)
    assert day is not None
    received, resolved, overdue = (counts[c] or 0 for c in COUNTS)
    return Figures(day, received, resolved, overdue, backlog, procedures)


def check_totals(figures: Figures, backlog: int, *, line: int | None = None) -> None:
    """Resolved and overdue cannot exceed what was there to resolve: received plus backlog."""
    errors: list[FieldError] = []
    available = figures.received + backlog
    if figures.resolved > available:
        errors.append(
            FieldError(
                "resolved",
                N_("Resolved (%(resolved)s) is more than received plus backlog (%(available)s)."),
                {"resolved": figures.resolved, "available": available},
                line=line,
            )
        )
    if figures.overdue > available:
        errors.append(FieldError("overdue", N_("Overdue is more than received plus backlog."), line=line))
    for name, values in figures.procedures.items():
        if values["resolved"] > values["received"] + backlog:
            errors.append(
                FieldError(
                    "procedures",
                    N_("Procedure %(name)s: resolved is more than received plus backlog."),
                    {"name": name},
                    line=line,
                )
            )
    if errors:
        raise InvalidInput(errors)


# --- storing ---------------------------------------------------------------------------------


async def centre_of(db: AsyncSession, actor: Actor) -> Unit:
    """The centre the person reports for (their own unit, which must be a centre)."""
    if not actor.can(Permission.REPORT_FIGURES):
        raise Forbidden(N_("You may not report figures."))
    unit = await db.get(Unit, actor.unit_id) if actor.unit_id else None
    if unit is None or unit.kind != UnitKind.CENTRE or not unit.active:
        raise Forbidden(N_("Only the staff of a centre report its figures."))
    return unit


async def backlog_before(db: AsyncSession, unit_id: int, day: date) -> int:
    """What was pending at the start of a day: the latest earlier report's backlog + received − resolved."""
    prev = await db.scalar(
        select(DailyReport)
        .where(DailyReport.unit_id == unit_id, DailyReport.day < day)
        .order_by(DailyReport.day.desc())
        .limit(1)
    )
    if prev is None:
        return 0
    return max(0, prev.backlog + prev.received - prev.resolved)


@dataclass(frozen=True)
class Outcome:
    """What a submission did: created, corrected (a new version) or unchanged (a duplicate)."""

    report: DailyReport
    result: str


async def submit(
    db: AsyncSession,
    unit: Unit,
    figures: Figures,
    *,
    source: str,
    by: str,
    person_id: int | None,
    tz: tzinfo,
    now: datetime | None = None,
    line: int | None = None,
) -> Outcome:
    """Store a centre's figures for a day: new, a same-day correction, or an idempotent duplicate."""
    now = now or utcnow()
    backlog = (
        figures.backlog if figures.backlog is not None else await backlog_before(db, unit.id, figures.day)
    )
    check_totals(figures, backlog, line=line)
    values = figures.values(backlog)
    report = await db.scalar(
        select(DailyReport)
        .where(DailyReport.unit_id == unit.id, DailyReport.day == figures.day)
        .with_for_update()
    )
    if report is None:
        report = DailyReport(
            unit_id=unit.id,
            day=figures.day,
            **values,
            version=1,
            source=source,
            reported_by_id=person_id,
            created_at=now,
            updated_at=now,
        )
        db.add(report)
        await db.flush()
        db.add(ReportRevision(report_id=report.id, version=1, values=values, source=source, by=by, at=now))
        await db.flush()
        return Outcome(report, "created")
    if _stored(report) == values:
        return Outcome(report, "unchanged")
    if report.created_at.astimezone(tz).date() != now.astimezone(tz).date():
        raise Conflict(
            N_("The report for %(day)s was made on an earlier day and can no longer be corrected."),
            day=figures.day.isoformat(),
        )
    report.version += 1
    for name, value in values.items():
        setattr(report, name, value)
    report.source = source
    report.reported_by_id = person_id
    report.updated_at = now
    db.add(
        ReportRevision(
            report_id=report.id, version=report.version, values=values, source=source, by=by, at=now
        )
    )
    await db.flush()
    return Outcome(report, "corrected")


def _stored(report: DailyReport) -> dict[str, Any]:
    return {
        "received": report.received,
        "resolved": report.resolved,
        "overdue": report.overdue,
        "backlog": report.backlog,
        "procedures": dict(report.procedures or {}),
    }


async def report_for(db: AsyncSession, unit_id: int, day: date) -> DailyReport | None:
    """A centre's report for a day, if made."""
    return await db.scalar(select(DailyReport).where(DailyReport.unit_id == unit_id, DailyReport.day == day))


async def revisions(db: AsyncSession, report_id: int) -> list[ReportRevision]:
    """Every version of a report, oldest first."""
    return list(
        await db.scalars(
            select(ReportRevision)
            .where(ReportRevision.report_id == report_id)
            .order_by(ReportRevision.version)
        )
    )


async def recent_reports(db: AsyncSession, unit_id: int, limit: int = 14) -> list[DailyReport]:
    """A centre's latest reports, newest first."""
    return list(
        await db.scalars(
            select(DailyReport)
            .where(DailyReport.unit_id == unit_id)
            .order_by(DailyReport.day.desc())
            .limit(limit)
        )
    )


def report_data(report: DailyReport, unit: Unit) -> dict[str, Any]:
    """A report as plain data."""
    return {
        "centre": unit.code,
        "day": report.day.isoformat(),
        **_stored(report),
        "version": report.version,
        "source": report.source,
    }


# --- CSV upload ------------------------------------------------------------------------------


@dataclass
class ParsedCSV:
    """An upload read line by line: (line, centre as written, figures) and every error found."""

    lines: list[tuple[int, str, Figures]]
    errors: list[FieldError]


def _file_error(message: str, **params: Any) -> InvalidInput:
    return InvalidInput([FieldError("file", message, params, line=1)])


def _read_header(reader: Any, offset: int) -> tuple[dict[str, int], int, list[FieldError]]:
    """The position of each canonical column, how many columns, and what is wrong with the header."""
    header: list[str] = []
    while not any(cell.strip() for cell in header):  # blank lines before the header
        try:
            header = next(reader)
        except StopIteration:
            raise _file_error(N_("The file has no figures.")) from None
    line = reader.line_num + offset
    positions: dict[str, int] = {}
    errors: list[FieldError] = []
    for index, name in enumerate(header):
        column = spreadsheet.column_of(name)
        if column is None:
            continue  # another column (a row number, the centre's name, a version): ignored
        if column in positions:
            if column != "centre":  # "Mã đơn vị" and "Đơn vị" side by side: either names the centre
                errors.append(FieldError(column, N_("Two columns have this name; keep one."), line=line))
            continue
        positions[column] = index
    for column in spreadsheet.REQUIRED:
        if column not in positions:
            errors.append(
                FieldError(
                    column,
                    N_("This column is missing: name it “%(vi)s” or “%(en)s”."),
                    {"vi": spreadsheet.VIETNAMESE_NAMES[column], "en": column},
                    line=line,
                )
            )
    return positions, len(header), errors


def parse_csv(raw: bytes, today: date) -> ParsedCSV:
    """Read an upload into (line, centre, figures), one per centre and day, and every error by line.

    Columns: day, centre, received, resolved, overdue, and optionally backlog and procedure,
    named in English or Vietnamese (see `meetings.figures.spreadsheet`); separated by "," or ";"
    (or tabs); dates as YYYY-MM-DD or dd/mm/yyyy; UTF-8, or a Windows code page. A line with a
    procedure adds to that day's breakdown; the totals are the line without a procedure, or the
    sum of the procedure lines when there is none. Only a file that cannot be read at all (its
    encoding, its header) raises; line errors are returned with the lines that are valid.
    """
    text = spreadsheet.decode(raw)
    if text is None:
        raise _file_error(N_("The file's characters cannot be read: save it as “CSV UTF-8”."))
    text, separator, offset = spreadsheet.split_sep_line(text)
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    separator = separator or spreadsheet.delimiter_of(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    errors: list[FieldError] = []
    totals: dict[tuple[str, date], tuple[int, dict[str, Any]]] = {}
    procs: dict[tuple[str, date], dict[str, dict[str, int]]] = {}
    first_line: dict[tuple[str, date], tuple[int, str]] = {}
    try:
        positions, width, header_errors = _read_header(reader, offset)
        if header_errors:
            raise InvalidInput(header_errors)
        consumed = reader.line_num
        for row in reader:
            number = consumed + 1 + offset  # where the record starts (a cell may hold a line break)
            consumed = reader.line_num
            if number > MAX_CSV_LINES:
                errors.append(FieldError("file", N_("The file has too many lines."), line=number))
                break
            if not any(cell.strip() for cell in row):
                continue  # an empty line (Excel writes ";;;;" for rows it formatted)
            if any(cell.strip() for cell in row[width:]):
                errors.append(FieldError("file", N_("This line has too many fields."), line=number))
                continue
            cells = {c: (row[i] if i < len(row) else "") for c, i in positions.items()}
            centre = cells["centre"].strip()
            procedure = cells.get("procedure", "").strip()
            line_errors: list[FieldError] = []
            if not centre:
                line_errors.append(FieldError("centre", N_("Say which centre."), line=number))
            data = dict(cells) | {"day": spreadsheet.iso_day(cells["day"])}
            try:
                figures = clean(data, today, line=number, day_first=True)
            except InvalidInput as exc:
                errors.extend(line_errors + exc.errors)
                continue
            if line_errors:
                errors.extend(line_errors)
                continue
            key = (fold(centre), figures.day)
            first_line.setdefault(key, (number, centre))
            if procedure:
                day_procs = procs.setdefault(key, {})
                if procedure in day_procs:
                    errors.append(
                        FieldError("procedure", N_("This procedure appears twice for the day."), line=number)
                    )
                    continue
                day_procs[procedure] = {c: getattr(figures, c) for c in COUNTS}
            else:
                if key in totals:
                    errors.append(
                        FieldError(
                            "day",
                            N_("This centre and day appear twice (first on line %(first)s)."),
                            {"first": totals[key][0]},
                            line=number,
                        )
                    )
                    continue
                totals[key] = (
                    number,
                    {"backlog": figures.backlog, **{c: getattr(figures, c) for c in COUNTS}},
                )
    except csv.Error:
        errors.append(FieldError("file", N_("The file is not valid CSV."), line=reader.line_num + offset))
    lines = []
    for key, (line, centre) in sorted(first_line.items(), key=lambda kv: kv[1][0]):
        _folded, day = key
        day_procs = procs.get(key, {})
        if key in totals:
            _line, values = totals[key]
        else:
            values = {c: sum(p[c] for p in day_procs.values()) for c in COUNTS}
            values["backlog"] = None
        lines.append(
            (
                line,
                centre,
                Figures(
                    day,
                    values["received"],
                    values["resolved"],
                    values["overdue"],
                    values["backlog"],
                    day_procs,
                ),
            )
        )
    if not lines and not errors:
        raise _file_error(N_("The file has no figures."))
    return ParsedCSV(lines, errors)


def _names_unit(written: str, unit: Unit) -> bool:
    """Whether a centre cell names this unit: its code, or its name (with or without diacritics)."""
    return fold(written) in {fold(unit.code), fold(unit.name)}


async def upload_csv(
    db: AsyncSession, actor: Actor, raw: bytes, *, tz: tzinfo, now: datetime | None = None
) -> list[Outcome]:
    """Store a CSV upload for the person's centre: every line valid, or nothing stored.

    Every error of every line is reported at once: what parsing finds, lines for another
    centre, and what storing finds (resolved over received plus backlog, a report that can
    no longer be corrected). The lines are stored in the session to find the last kind; the
    caller rolls back when InvalidInput is raised.
    """
    now = now or utcnow()
    unit = await centre_of(db, actor)
    parsed = parse_csv(raw, now.astimezone(tz).date())
    errors = list(parsed.errors)
    own: list[tuple[int, Figures]] = []
    for line, centre, figures in parsed.lines:
        if _names_unit(centre, unit):
            own.append((line, figures))
        else:
            errors.append(
                FieldError(
                    "centre",
                    N_("This line is for another centre (%(code)s); a centre reports its own figures only."),
                    {"code": centre[:40]},
                    line=line,
                )
            )
    outcomes: list[Outcome] = []
    # Earlier days first: a day's default backlog comes from the day before.
    for line, figures in sorted(own, key=lambda t: t[1].day):
        try:
            outcomes.append(
                await submit(
                    db,
                    unit,
                    figures,
                    source="csv",
                    by=actor.name,
                    person_id=actor.id or None,
                    tz=tz,
                    now=now,
                    line=line,
                )
            )
        except InvalidInput as exc:
            errors.extend(exc.errors)
        except Conflict as exc:
            errors.append(FieldError("day", exc.message, exc.params, line=line))
    if errors:
        raise InvalidInput(sorted(errors, key=lambda e: e.line or 0))  # the caller rolls back: nothing stored
    return outcomes


# --- tokens ----------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """The SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_token(db: AsyncSession, actor: Actor, unit_code: str) -> tuple[str, ReportToken]:
    """A new API token for a centre; the plain token is returned once, never stored."""
    if not actor.can(Permission.FIGURES_TOKENS):
        raise Forbidden(N_("Only an administrator issues tokens."))
    unit = await db.scalar(select(Unit).where(func.upper(Unit.code) == unit_code.strip().upper()))
    if unit is None or unit.kind != UnitKind.CENTRE:
        raise InvalidInput([FieldError("unit", N_("Choose a centre."))])
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ReportToken(
        unit_id=unit.id, token_hash=token_hash(token), prefix=token[:10], created_by_id=actor.id or None
    )
    db.add(row)
    await db.flush()
    return token, row


async def revoke_token(db: AsyncSession, actor: Actor, token_id: int, now: datetime | None = None) -> None:
    """Stop a token from working."""
    if not actor.can(Permission.FIGURES_TOKENS):
        raise Forbidden(N_("Only an administrator issues tokens."))
    row = await db.get(ReportToken, token_id)
    if row is None:
        raise NotFound(N_("This token does not exist."))
    row.revoked_at = row.revoked_at or now or utcnow()
    await db.flush()


async def unit_of_token(db: AsyncSession, token: str) -> Unit:
    """The centre a token reports for; an unknown or revoked token is refused."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Forbidden(N_("This token is not valid."))
    row = await db.scalar(
        select(ReportToken).where(
            ReportToken.token_hash == token_hash(token), ReportToken.revoked_at.is_(None)
        )
    )
    unit = await db.get(Unit, row.unit_id) if row else None
    if unit is None or not unit.active:
        raise Forbidden(N_("This token is not valid."))
    return unit


async def tokens(db: AsyncSession) -> list[tuple[ReportToken, Unit]]:
    """Every token with its centre."""
    rows = await db.execute(
        select(ReportToken, Unit).join(Unit, Unit.id == ReportToken.unit_id).order_by(Unit.code)
    )
    return [(t, u) for t, u in rows.all()]


# --- dashboard -------------------------------------------------------------------------------


@dataclass
class CentreLine:
    """One centre's figures for the day, with its resolution rate."""

    unit: Unit
    received: int
    resolved: int
    overdue: int
    backlog: int

    @property
    def rate(self) -> float:
        """Resolved over what there was to resolve (received plus backlog)."""
        total = self.received + self.backlog
        return self.resolved / total if total else 0.0


@dataclass
class Week:
    """One week of the trend: its Monday and the sums over every centre."""

    monday: date
    received: int = 0
    resolved: int = 0
    overdue: int = 0


@dataclass
class Dashboard:
    """What the morning meeting sees for a day."""

    day: date
    lines: list[CentreLine]
    missing: list[Unit]
    weeks: list[Week]
    working: bool = True  # False: a weekend, a holiday or a day off (no report is expected)
    holiday: str = ""  # the holiday's or day off's name, when there is one
    off_days: list[tuple[date, int]] = field(default_factory=list)  # later non-working days reported
    received: int = 0
    resolved: int = 0
    overdue: int = 0
    backlog: int = 0

    @property
    def rate(self) -> float:
        """The resolution rate over every centre."""
        total = self.received + self.backlog
        return self.resolved / total if total else 0.0

    @property
    def ranking(self) -> list[CentreLine]:
        """Centres by resolution rate, then fewer overdue."""
        return sorted(self.lines, key=lambda c: (-c.rate, c.overdue, c.unit.code))


# How far back the default day looks for a working day with reports (a Tết break is about
# nine days; a month covers it with room to spare).
LOOKBACK_DAYS = 31


def last_working_day(calendar: WorkingCalendar, until: date) -> date:
    """The latest working day up to `until` (`until` itself when none in the look-back)."""
    for back in range(LOOKBACK_DAYS):
        day = until - timedelta(days=back)
        if calendar.is_working_day(day):
            return day
    return until


async def default_day(
    db: AsyncSession, calendar: WorkingCalendar, until: date, *, lookback: int = LOOKBACK_DAYS
) -> date:
    """The last working day with reports up to `until`, so that Monday shows Friday.

    A report made on a Saturday, a Sunday or a holiday does not become the city's figures:
    a non-working day is shown only when asked for. With no working day reported in the
    look-back, the last working day (showing who has not reported).
    """
    reported = await db.scalars(
        select(DailyReport.day)
        .where(DailyReport.day <= until, DailyReport.day > until - timedelta(days=lookback))
        .group_by(DailyReport.day)
        .order_by(DailyReport.day.desc())
    )
    for day in reported:
        if calendar.is_working_day(day):
            return day
    return last_working_day(calendar, until)


async def off_days_with_reports(
    db: AsyncSession, calendar: WorkingCalendar, first: date, last: date
) -> list[tuple[date, int]]:
    """Non-working days between two days (inclusive) on which centres reported, and how many."""
    if first > last:
        return []
    rows = await db.execute(
        select(DailyReport.day, func.count())
        .where(DailyReport.day >= first, DailyReport.day <= last)
        .group_by(DailyReport.day)
        .order_by(DailyReport.day)
    )
    return [(day, int(count)) for day, count in rows.all() if not calendar.is_working_day(day)]


async def dashboard(
    db: AsyncSession, day: date, *, weeks: int = 8, calendar: WorkingCalendar | None = None
) -> Dashboard:
    """Totals, rate, ranking, centres that have not reported, and the weekly trend up to the day.

    With a calendar, the day is marked working or not (a non-working day lists nobody as missing).
    """
    centres = list(
        await db.scalars(
            select(Unit).where(Unit.kind == UnitKind.CENTRE, Unit.active.is_(True)).order_by(Unit.code)
        )
    )
    by_id = {u.id: u for u in centres}
    rows = await db.scalars(select(DailyReport).where(DailyReport.day == day))
    lines = [
        CentreLine(by_id[r.unit_id], r.received, r.resolved, r.overdue, r.backlog)
        for r in rows
        if r.unit_id in by_id
    ]
    reported = {c.unit.id for c in lines}
    first = day - timedelta(days=day.weekday()) - timedelta(weeks=weeks - 1)
    trend = await db.execute(
        select(
            DailyReport.day,
            func.sum(DailyReport.received),
            func.sum(DailyReport.resolved),
            func.sum(DailyReport.overdue),
        )
        .where(DailyReport.day >= first, DailyReport.day <= day)
        .group_by(DailyReport.day)
    )
    by_week = {first + timedelta(weeks=i): Week(first + timedelta(weeks=i)) for i in range(weeks)}
    for d, received, resolved, overdue in trend.all():
        week = by_week[d - timedelta(days=d.weekday())]
        week.received += int(received or 0)
        week.resolved += int(resolved or 0)
        week.overdue += int(overdue or 0)
    working = calendar is None or calendar.is_working_day(day)
    board = Dashboard(
        day=day,
        lines=lines,
        missing=[u for u in centres if u.id not in reported] if working else [],
        weeks=list(by_week.values()),
        working=working,
        holiday=(calendar.holiday_name(day) or "") if calendar is not None and not working else "",
    )
    board.received = sum(c.received for c in lines)
    board.resolved = sum(c.resolved for c in lines)
    board.overdue = sum(c.overdue for c in lines)
    board.backlog = sum(c.backlog for c in lines)
    return board


async def dashboard_for(
    db: AsyncSession, today: date, day: date | None = None, *, weeks: int = 8
) -> Dashboard:
    """The dashboard people see: the asked day, or by default the last working day reported
    before today; with the non-working days right after it that have reports (linked, so they
    are reachable, never the default)."""
    calendar = await working_calendar(db)
    if day is None:
        day = await default_day(db, calendar, today - timedelta(days=1))
    board = await dashboard(db, day, weeks=weeks, calendar=calendar)
    # The non-working days that follow it (up to the next working day or today), when reported.
    last = day
    while last < today and last - day < timedelta(days=LOOKBACK_DAYS):
        if calendar.is_working_day(last + timedelta(days=1)):
            break
        last += timedelta(days=1)
    board.off_days = await off_days_with_reports(db, calendar, day + timedelta(days=1), last)
    return board


@dataclass(frozen=True)
class Bar:
    """One bar of the chart (SVG coordinates)."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass
class Chart:
    """The weekly trend as SVG geometry: received bars, a resolved line; drawn by the template."""

    width: int
    height: int
    bars: list[Bar]
    line: str  # polyline points
    dots: list[tuple[float, float, int]]
    maximum: int


def trend_chart(weeks: list[Week], *, width: int = 640, height: int = 220) -> Chart:
    """Lay out the weekly trend: one bar per week (received), a line over them (resolved)."""
    top, bottom, left = 16, 28, 40
    plot_h = height - top - bottom
    maximum = max([w.received for w in weeks] + [w.resolved for w in weeks] + [1])
    step = (width - left) / max(1, len(weeks))
    bars: list[Bar] = []
    dots: list[tuple[float, float, int]] = []
    for i, week in enumerate(weeks):
        h = plot_h * week.received / maximum
        x = left + i * step + step * 0.15
        bars.append(
            Bar(
                round(x, 1),
                round(top + plot_h - h, 1),
                round(step * 0.7, 1),
                round(h, 1),
                week.monday.strftime("%d/%m"),
                week.received,
            )
        )
        cy = top + plot_h - plot_h * week.resolved / maximum
        dots.append((round(x + step * 0.35, 1), round(cy, 1), week.resolved))
    return Chart(width, height, bars, " ".join(f"{x},{y}" for x, y, _v in dots), dots, maximum)


async def snapshot(db: AsyncSession, day: date) -> dict[str, Any]:
    """The figures of a day as plain data (what the morning minutes keep)."""
    board = await dashboard(db, day, weeks=1)
    return {
        "day": day.isoformat(),
        "received": board.received,
        "resolved": board.resolved,
        "overdue": board.overdue,
        "backlog": board.backlog,
        "rate": round(board.rate, 4),
        "centres": [
            {
                "code": c.unit.code,
                "name": c.unit.name,
                "received": c.received,
                "resolved": c.resolved,
                "overdue": c.overdue,
            }
            for c in board.ranking
        ],
        "missing": [u.code for u in board.missing],
        "missing_names": [u.name for u in board.missing],  # what a reader is shown
    }


async def freeze_into_minutes(db: AsyncSession, header: dict[str, Any]) -> dict[str, Any]:
    """The minutes header with the figures of the last working day reported before the meeting's date.

    Called when morning minutes are approved, so the approved (hashed) content keeps the
    figures the meeting saw, whatever corrections come later.
    """
    try:
        meeting_day = date.fromisoformat(str(header.get("date", "")))
    except ValueError:
        return header
    calendar = await working_calendar(db)
    until = meeting_day - timedelta(days=1)
    last = await default_day(db, calendar, until, lookback=7)  # older figures are not the day's
    if await db.scalar(select(DailyReport.id).where(DailyReport.day == last).limit(1)) is None:
        return header  # no working day reported in the look-back: nothing to keep
    return {**header, "figures": await snapshot(db, last)}


# --- exports ---------------------------------------------------------------------------------

EXPORT_HEADER = ("day", "centre", "name", "received", "resolved", "overdue", "backlog", "version")


async def export_rows(db: AsyncSession, first: date, last: date) -> list[tuple[Any, ...]]:
    """Every report between two days (inclusive), by day then centre."""
    rows = await db.execute(
        select(DailyReport, Unit)
        .join(Unit, Unit.id == DailyReport.unit_id)
        .where(DailyReport.day >= first, DailyReport.day <= last)
        .order_by(DailyReport.day, Unit.code)
    )
    return [
        (r.day.isoformat(), u.code, u.name, r.received, r.resolved, r.overdue, r.backlog, r.version)
        for r, u in rows.all()
    ]


def _safe_cell(value: Any) -> Any:
    # A cell starting with = + - @ would be a formula in a spreadsheet: prefix it with a quote.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """CSV (UTF-8 with BOM, so that spreadsheet programs read Vietnamese correctly)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    for row in rows:
        writer.writerow([_safe_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """An XLSX workbook with one sheet of reports."""
    from openpyxl import Workbook  # type: ignore[import-untyped]

    book = Workbook(write_only=True)
    sheet = book.create_sheet("figures")
    sheet.append(list(EXPORT_HEADER))
    for row in rows:
        sheet.append([_safe_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
