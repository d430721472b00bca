"""iCalendar (RFC 5545) objects for iTIP (RFC 5546) requests, cancellations and the feed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneStandard, vCalAddress

from meetings.schedule.recurrence import SeriesRule
from meetings.schedule.workdays import WEEKDAY_NAMES

PRODID = "-//Giao Ban//Giao Ban//VI"


@dataclass(frozen=True)
class Attendee:
    """An invitee, as an iCalendar ATTENDEE."""

    email: str
    name: str
    role: str = "REQ-PARTICIPANT"


@dataclass(frozen=True)
class CalOverride:
    """One occurrence that differs from the rule: moved, renamed or held elsewhere."""

    recurrence_id: datetime
    start: datetime
    end: datetime
    summary: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class CalSeries:
    """Everything an invitation or the feed says about one series."""

    uid: str
    sequence: int
    summary: str
    description: str
    location: str
    url: str
    rule: SeriesRule
    organizer_email: str
    organizer_name: str
    attendees: tuple[Attendee, ...]
    exdates: tuple[datetime, ...] = ()
    rdates: tuple[datetime, ...] = ()
    overrides: tuple[CalOverride, ...] = ()


def series_request(series: CalSeries, dtstamp: datetime) -> bytes:
    """A METHOD:REQUEST calendar inviting the attendees to the series and its exceptions."""
    cal = _calendar("REQUEST", [series.rule])
    cal.add_component(_master(series, dtstamp, with_people=True))
    for override in sorted(series.overrides, key=lambda o: o.recurrence_id):
        cal.add_component(_override(series, override, dtstamp, with_people=True))
    return _serialise(cal)


def occurrence_cancel(series: CalSeries, recurrence_id: datetime, dtstamp: datetime) -> bytes:
    """A METHOD:CANCEL calendar withdrawing one occurrence of the series."""
    _require_aware(recurrence_id, "recurrence_id")
    zone = series.rule.zone
    original = recurrence_id.astimezone(zone)
    current = next((o for o in series.overrides if o.recurrence_id == original), None)
    start = original if current is None else current.start.astimezone(zone)
    end = start + series.rule.duration if current is None else current.end.astimezone(zone)
    event = _event_head(
        series,
        dtstamp,
        start,
        end,
        "CANCELLED",
        summary=None if current is None else current.summary,
        location=None if current is None else current.location,
    )
    event.add("recurrence-id", original)
    _add_people(event, series)
    cal = _calendar("CANCEL", [series.rule])
    cal.add_component(event)
    return _serialise(cal)


def series_cancel(series: CalSeries, dtstamp: datetime) -> bytes:
    """A METHOD:CANCEL calendar withdrawing the whole series (every occurrence of its UID)."""
    start = _first_start(series.rule)
    event = _event_head(series, dtstamp, start, start + series.rule.duration, "CANCELLED")
    event.add("rrule", _rrule(series.rule))
    _add_people(event, series)
    cal = _calendar("CANCEL", [series.rule])
    cal.add_component(event)
    return _serialise(cal)


def feed(
    series_list: Iterable[CalSeries],
    dtstamp: datetime,
    *,
    name: str = "Giao Ban",
    timezone: str = "Asia/Ho_Chi_Minh",
) -> bytes:
    """A subscribable calendar of the series: no METHOD and no people, same UIDs and exceptions."""
    series_list = list(series_list)
    cal = _calendar(None, [s.rule for s in series_list])
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", timezone)
    # Subscribers poll; RFC 7986 REFRESH-INTERVAL and the older X-PUBLISHED-TTL say how often.
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for series in series_list:
        cal.add_component(_master(series, dtstamp, with_people=False))
        for override in sorted(series.overrides, key=lambda o: o.recurrence_id):
            cal.add_component(_override(series, override, dtstamp, with_people=False))
    return _serialise(cal)


def _serialise(cal: Calendar) -> bytes:
    """The calendar as CRLF-terminated UTF-8 lines folded at 75 octets."""
    data: bytes = cal.to_ical()
    return data


def _calendar(method: str | None, rules: Iterable[SeriesRule]) -> Calendar:
    """A VCALENDAR with PRODID, VERSION, METHOD and one VTIMEZONE per zone used."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method is not None:
        cal.add("method", method)
    spans: dict[str, tuple[date, date]] = {}
    for rule in rules:
        last = rule.until or rule.start_date + timedelta(days=5 * 366)
        first, prev_last = spans.get(rule.tz, (rule.start_date, last))
        spans[rule.tz] = (min(first, rule.start_date), max(prev_last, last))
    for tzid, (first, last) in sorted(spans.items()):
        cal.add_component(_vtimezone(tzid, first, last))
    return cal


def _vtimezone(tzid: str, first: date, last: date) -> Timezone:
    """A VTIMEZONE; one STANDARD block for a zone without offset changes over the span."""
    zone = ZoneInfo(tzid)
    offsets = {
        datetime(year, month, 1, 12, tzinfo=zone).utcoffset()
        for year in range(first.year, last.year + 1)
        for month in (1, 7)
    }
    if len(offsets) != 1:
        # Only zones with daylight saving need the real transitions; keep them to the span.
        return Timezone.from_tzid(tzid, first_date=first, last_date=last + timedelta(days=1))
    offset = offsets.pop()
    assert offset is not None
    # Written by hand: generated VTIMEZONEs list the zone's historic changes (Asia/Ho_Chi_Minh
    # has a dozen before 1975), which only lengthens every invitation.
    tz = Timezone()
    tz.add("tzid", tzid)
    standard = TimezoneStandard()
    standard.add("dtstart", datetime(1970, 1, 1))
    standard.add("tzoffsetfrom", offset)
    standard.add("tzoffsetto", offset)
    standard.add("tzname", datetime(first.year, 1, 1, 12, tzinfo=zone).tzname())
    tz.add_component(standard)
    return tz


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime: {value!r}")


def _utc(value: datetime, what: str) -> datetime:
    _require_aware(value, what)
    return value.astimezone(UTC)


def _first_start(rule: SeriesRule) -> datetime:
    """DTSTART: the first date on a rule weekday, so DTSTART is in step with the RRULE."""
    weekdays = set(rule.weekdays)
    d = rule.start_date
    while WEEKDAY_NAMES[d.weekday()] not in weekdays:
        d += timedelta(days=1)
    if rule.until is not None and d > rule.until:
        # RFC 5545 counts DTSTART as an instance even past UNTIL: such a series is unwritable.
        raise ValueError("the series has no date on its weekdays before it ends")
    return rule.local_start(d)


def _rrule(rule: SeriesRule) -> dict[str, object]:
    """The RRULE: weekly on the rule's weekdays, UNTIL the last start in UTC (RFC 5545 3.3.10)."""
    value: dict[str, object] = {"freq": "WEEKLY", "byday": list(rule.sorted_weekdays())}
    if rule.until is not None:
        value["until"] = rule.local_start(rule.until).astimezone(UTC)
    return value


def _event_head(
    series: CalSeries,
    dtstamp: datetime,
    start: datetime,
    end: datetime,
    status: str,
    *,
    summary: str | None = None,
    location: str | None = None,
) -> Event:
    """A VEVENT with the identity, times and texts shared by every kind of message."""
    event = Event()
    event.add("uid", series.uid)
    event.add("sequence", series.sequence)
    event.add("dtstamp", _utc(dtstamp, "dtstamp"))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", series.summary if summary is None else summary)
    event.add("description", series.description)
    event.add("location", series.location if location is None else location)
    event.add("url", series.url)
    event.add("status", status)
    return event


def _master(series: CalSeries, dtstamp: datetime, *, with_people: bool) -> Event:
    """The recurring VEVENT: RRULE, EXDATE for days off and cancellations, RDATE for make-up."""
    rule = series.rule
    zone = rule.zone
    start = _first_start(rule)
    event = _event_head(series, dtstamp, start, start + rule.duration, "CONFIRMED")
    event.add("rrule", _rrule(rule))
    # One value per line: some clients read only the first value of a list.
    for exdate in sorted({_local(value, zone, "exdate") for value in series.exdates}):
        event.add("exdate", exdate)
    # Outlook ignores RDATE; make-up days then show only in other clients and in the feed.
    for rdate in sorted({_local(value, zone, "rdate") for value in series.rdates}):
        event.add("rdate", rdate)
    event.add("transp", "OPAQUE")
    if with_people:
        _add_people(event, series)
    return event


def _override(series: CalSeries, override: CalOverride, dtstamp: datetime, *, with_people: bool) -> Event:
    """The VEVENT for one changed occurrence, tied to the master by UID and RECURRENCE-ID."""
    zone = series.rule.zone
    start = _local(override.start, zone, "override start")
    end = _local(override.end, zone, "override end")
    if end <= start:
        raise ValueError(f"override ends before it starts: {override!r}")
    event = _event_head(
        series,
        dtstamp,
        start,
        end,
        "CONFIRMED",
        summary=override.summary,
        location=override.location,
    )
    # Same value type and zone as DTSTART, as RFC 5545 3.8.4.4 requires.
    event.add("recurrence-id", _local(override.recurrence_id, zone, "recurrence_id"))
    event.add("transp", "OPAQUE")
    if with_people:
        _add_people(event, series)
    return event


def _local(value: datetime, zone: ZoneInfo, what: str) -> datetime:
    _require_aware(value, what)
    return value.astimezone(zone)


def _add_people(event: Event, series: CalSeries) -> None:
    """ORGANIZER and one ATTENDEE per invitee, each asked to reply."""
    organizer = vCalAddress(f"mailto:{series.organizer_email}")
    organizer.params["CN"] = series.organizer_name
    event.add("organizer", organizer)
    for attendee in series.attendees:
        address = vCalAddress(f"mailto:{attendee.email}")
        address.params["CN"] = attendee.name
        address.params["ROLE"] = attendee.role
        address.params["PARTSTAT"] = "NEEDS-ACTION"
        address.params["RSVP"] = "TRUE"
        event.add("attendee", address)
