"""Recurring series on working days and their expansion into occurrences."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meetings.schedule.errors import ScheduleError
from meetings.schedule.workdays import WEEKDAY_NAMES, WorkingCalendar, days_between


@dataclass(frozen=True)
class SeriesRule:
    """A meeting held at one local time on chosen weekdays from start_date until until."""

    start_date: date
    until: date | None
    start_time: time
    duration: timedelta
    weekdays: tuple[str, ...]
    tz: str

    def __post_init__(self) -> None:
        if self.until is not None and self.until < self.start_date:
            raise ScheduleError(
                "until_before_start",
                "The series ends (%(until)s) before it starts (%(start)s).",
                {"until": self.until.isoformat(), "start": self.start_date.isoformat()},
            )
        if not self.weekdays:
            raise ScheduleError("no_weekdays", "Choose at least one weekday for the series.")
        unknown = sorted(set(self.weekdays) - set(WEEKDAY_NAMES))
        if unknown:
            raise ScheduleError(
                "unknown_weekday", "Unknown weekday: %(names)s.", {"names": ", ".join(unknown)}
            )
        if self.duration <= timedelta(0):
            raise ScheduleError("duration_not_positive", "A meeting must last some time.")
        if self.start_time.tzinfo is not None:
            raise ScheduleError(
                "start_time_aware", "The start time is a local wall-clock time, without zone."
            )
        zone_of(self.tz)

    @property
    def zone(self) -> ZoneInfo:
        """The series' time zone."""
        return zone_of(self.tz)

    def sorted_weekdays(self) -> tuple[str, ...]:
        """The weekdays in calendar order (MO first), without repeats."""
        return tuple(name for name in WEEKDAY_NAMES if name in self.weekdays)

    def local_start(self, d: date) -> datetime:
        """The aware local start of the occurrence that would fall on d."""
        return datetime.combine(d, self.start_time, tzinfo=self.zone)

    def meets_on(self, d: date, calendar: WorkingCalendar) -> bool:
        """Whether the series holds an occurrence on d (ignoring moves and cancellations)."""
        if d < self.start_date or (self.until is not None and d > self.until):
            return False
        if not calendar.is_working_day(d):
            return False
        if WEEKDAY_NAMES[d.weekday()] in self.weekdays:
            return True
        # A make-up day stands in for a regular working day, so only a series that meets on
        # every regular working day (the daily meetings) meets on it; a weekly one does not.
        return d in calendar.makeup_days and calendar.weekdays <= set(self.weekdays)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series, as planned and as it now stands."""

    original_start: datetime
    start: datetime
    end: datetime
    cancelled: bool
    moved: bool


MAX_ZONE_NAME = 64  # the longest IANA name is about 30 characters


def zone_of(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or a ScheduleError."""
    try:
        if len(name) > MAX_ZONE_NAME:  # ZoneInfo would ask the file system (OSError: name too long)
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError("unknown_timezone", "Unknown time zone: %(tz)s.", {"tz": name}) from None


def _require_aware(value: datetime, what: str) -> None:
    """Refuse a naive datetime, which would silently never match an occurrence."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError("naive_datetime", "The %(what)s must carry a time zone.", {"what": what})


def _check_window(window_start: date, window_end: date) -> None:
    if window_end < window_start:
        raise ScheduleError(
            "empty_window",
            "The period ends (%(end)s) before it starts (%(start)s).",
            {"end": window_end.isoformat(), "start": window_start.isoformat()},
        )


def original_starts(
    rule: SeriesRule, calendar: WorkingCalendar, window_start: date, window_end: date
) -> list[datetime]:
    """The planned local starts of the series' occurrences on dates in the window."""
    _check_window(window_start, window_end)
    first = max(window_start, rule.start_date)
    last = window_end if rule.until is None else min(window_end, rule.until)
    if last < first:
        return []
    return [rule.local_start(d) for d in days_between(first, last) if rule.meets_on(d, calendar)]


def is_occurrence(rule: SeriesRule, calendar: WorkingCalendar, original: datetime) -> bool:
    """Whether original is the planned start of one of the series' occurrences."""
    _require_aware(original, "occurrence start")
    local = original.astimezone(rule.zone)
    return rule.meets_on(local.date(), calendar) and local == rule.local_start(local.date())


def expand(
    rule: SeriesRule,
    calendar: WorkingCalendar,
    window_start: date,
    window_end: date,
    moved: Mapping[datetime, datetime],
    cancelled: Collection[datetime],
) -> list[Occurrence]:
    """The occurrences whose current start falls on a local date in [window_start, window_end].

    Cancelled occurrences are included and flagged; moved ones appear at their new time, so an
    occurrence moved into the window from outside it is included and one moved out is not.
    Moves and cancellations of starts that are no occurrence (e.g. a day that has since become
    a holiday) are ignored.
    """
    _check_window(window_start, window_end)
    for moved_from, moved_to in moved.items():
        _require_aware(moved_from, "moved occurrence start")
        _require_aware(moved_to, "new start")
    for item in cancelled:
        _require_aware(item, "cancelled occurrence start")
    zone = rule.zone
    cancelled_set = frozenset(cancelled)
    candidates = set(original_starts(rule, calendar, window_start, window_end))
    candidates.update(
        original.astimezone(zone) for original in moved if is_occurrence(rule, calendar, original)
    )
    result: list[Occurrence] = []
    for original in candidates:
        new_start = moved.get(original)
        start = original if new_start is None else new_start.astimezone(zone)
        if not window_start <= start.date() <= window_end:
            continue
        result.append(
            Occurrence(
                original_start=original,
                start=start,
                end=start + rule.duration,
                cancelled=original in cancelled_set,
                moved=new_start is not None and new_start != original,
            )
        )
    result.sort(key=lambda occ: (occ.start, occ.original_start))
    return result


def check_move(
    rule: SeriesRule,
    calendar: WorkingCalendar,
    original: datetime,
    new_start: datetime,
    now: datetime,
) -> None:
    """Raise ScheduleError unless the occurrence at original may move to new_start."""
    _require_aware(original, "occurrence start")
    _require_aware(new_start, "new start")
    _require_aware(now, "current time")
    if not is_occurrence(rule, calendar, original):
        raise ScheduleError(
            "not_an_occurrence",
            "The series has no meeting at %(start)s.",
            {"start": original.astimezone(rule.zone).isoformat()},
        )
    if new_start <= now:
        raise ScheduleError(
            "move_into_past",
            "A meeting cannot be moved into the past (%(start)s).",
            {"start": new_start.astimezone(rule.zone).isoformat()},
        )
    new_day = new_start.astimezone(rule.zone).date()
    if not calendar.is_working_day(new_day):
        raise ScheduleError(
            "move_to_non_working_day",
            "%(day)s is not a working day (%(reason)s).",
            {"day": new_day.isoformat(), "reason": calendar.holiday_name(new_day) or "weekend"},
        )


@dataclass(frozen=True)
class CalendarExceptions:
    """What the RRULE alone gets wrong: dates to remove (EXDATE) and to add (RDATE)."""

    exdates: tuple[datetime, ...]
    rdates: tuple[datetime, ...]


def calendar_exceptions(
    rule: SeriesRule,
    calendar: WorkingCalendar,
    horizon_end: date,
    cancelled: Collection[datetime] = (),
) -> CalendarExceptions:
    """EXDATEs (days off, cancellations) and RDATEs (make-up days) up to until or horizon_end."""
    for original in cancelled:
        _require_aware(original, "cancelled occurrence start")
    last = horizon_end if rule.until is None else min(rule.until, horizon_end)
    exdates: set[datetime] = set()
    rdates: list[datetime] = []
    if last >= rule.start_date:
        for d in days_between(rule.start_date, last):
            on_rule_weekday = WEEKDAY_NAMES[d.weekday()] in rule.weekdays
            meets = rule.meets_on(d, calendar)
            if on_rule_weekday and not meets:
                exdates.add(rule.local_start(d))
            elif meets and not on_rule_weekday:
                rdates.append(rule.local_start(d))
    exdates.update(
        original.astimezone(rule.zone) for original in cancelled if is_occurrence(rule, calendar, original)
    )
    return CalendarExceptions(exdates=tuple(sorted(exdates)), rdates=tuple(rdates))
