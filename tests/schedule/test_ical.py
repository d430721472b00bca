"""iCalendar output: golden files, RFC structure, and an independent expansion."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any, cast

import icalendar
import pytest
import recurring_ical_events

from meetings.schedule.ical import (
    CalSeries,
    feed,
    occurrence_cancel,
    series_cancel,
    series_request,
)
from meetings.schedule.recurrence import expand

from .helpers import (
    CANCELLED,
    DTSTAMP,
    GOLDEN,
    MOVED_FROM,
    MOVED_TO,
    UID,
    crlf2lf,
    golden,
    hcm,
    make_calendar,
    make_rule,
    make_series,
    moved_override,
)

# GIAOBAN_WRITE_GOLDEN=1 rewrites the golden files from the current output: review the diff.
WRITE_GOLDEN = os.environ.get("GIAOBAN_WRITE_GOLDEN") == "1"


def invitation() -> CalSeries:
    """The first invitation: no exceptions beyond the working-day calendar."""
    return make_series()


def update() -> CalSeries:
    """The series after one occurrence moved and one cancelled: a higher SEQUENCE."""
    return make_series(cancelled=(CANCELLED,), overrides=(moved_override(),), sequence=1)


def afternoon() -> CalSeries:
    """The late-afternoon series, 16:30–17:15, for the feed."""
    return make_series(
        make_rule(start_time=time(16, 30)),
        uid="series-afternoon-53a9be10@giaoban.hue.gov.vn",
        summary="Họp giao ban cuối ngày",
        description="Tổng hợp khó khăn, rút kinh nghiệm, điều chỉnh kế hoạch.",
        url="https://giaoban.hue.gov.vn/series/afternoon",
    )


CASES: dict[str, Callable[[], bytes]] = {
    "invitation.ics": lambda: series_request(invitation(), DTSTAMP),
    "update.ics": lambda: series_request(update(), DTSTAMP),
    "occurrence-cancel.ics": lambda: occurrence_cancel(replace(update(), sequence=2), CANCELLED, DTSTAMP),
    "feed.ics": lambda: feed([update(), afternoon()], DTSTAMP),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    data = CASES[name]()
    if WRITE_GOLDEN:
        (GOLDEN / name).write_text(crlf2lf(data), encoding="utf-8")
    assert data == golden(name)


def all_outputs() -> dict[str, bytes]:
    outputs = {name: make() for name, make in CASES.items()}
    outputs["series-cancel.ics"] = series_cancel(update(), DTSTAMP)
    return outputs


@pytest.mark.parametrize("name", sorted(all_outputs()))
def test_wire_format(name: str) -> None:
    data = all_outputs()[name]
    assert data.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in lines)
    data.decode("utf-8")
    assert b"PRODID:-//Giao Ban//Giao Ban//VI\r\n" in data
    assert "Họp giao ban".encode() in data


@pytest.mark.parametrize("name", sorted(all_outputs()))
def test_parses_without_errors(name: str) -> None:
    calendar = icalendar.Calendar.from_ical(all_outputs()[name])
    for component in calendar.walk():
        assert component.errors == [], (component.name, component.errors)
    # The second, independent parser reads every one too.
    recurring_ical_events.of(calendar).between(date(2027, 1, 1), date(2027, 4, 1))


def test_single_fixed_offset_timezone() -> None:
    data = series_request(update(), DTSTAMP)
    calendar = icalendar.Calendar.from_ical(data)
    (timezone,) = calendar.walk("VTIMEZONE")
    assert timezone["TZID"] == "Asia/Ho_Chi_Minh"
    assert [c.name for c in timezone.subcomponents] == ["STANDARD"]
    (standard,) = timezone.subcomponents
    assert standard.decoded("TZOFFSETFROM") == standard.decoded("TZOFFSETTO") == timedelta(hours=7)
    assert b"TZOFFSETFROM:+0700\r\nTZOFFSETTO:+0700\r\n" in data


def test_request_structure() -> None:
    data = series_request(update(), DTSTAMP)
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar["METHOD"] == "REQUEST"
    master, moved = calendar.walk("VEVENT")
    assert master["UID"] == moved["UID"] == UID
    assert master["SEQUENCE"] == moved["SEQUENCE"] == 1
    assert "RECURRENCE-ID" not in master
    assert moved.decoded("RECURRENCE-ID") == MOVED_FROM
    assert moved.decoded("DTSTART") == MOVED_TO
    assert b"DTSTAMP:20261127T030000Z\r\n" in data
    assert b"RRULE:FREQ=WEEKLY;UNTIL=20270331T003000Z;BYDAY=MO,TU,WE,TH,FR\r\n" in data
    assert b"EXDATE;TZID=Asia/Ho_Chi_Minh:20270303T073000\r\n" in data
    assert b"RDATE;TZID=Asia/Ho_Chi_Minh:20270130T073000\r\n" in data
    assert b"RECURRENCE-ID;TZID=Asia/Ho_Chi_Minh:20270302T073000\r\n" in data
    for event in (master, moved):
        assert str(event["ORGANIZER"]) == "mailto:giaoban@hue.gov.vn"
        attendees = cast(list[icalendar.vCalAddress], event["ATTENDEE"])
        assert [str(a) for a in attendees] == [
            "mailto:pvhcc.phuxuan@hue.gov.vn",
            "mailto:sokhcn@hue.gov.vn",
        ]
        assert all(a.params["RSVP"] == "TRUE" for a in attendees)
        assert all(a.params["PARTSTAT"] == "NEEDS-ACTION" for a in attendees)
        assert attendees[0].params["CN"] == "Trung tâm PVHCC phường Phú Xuân"


def test_cancellations() -> None:
    one = icalendar.Calendar.from_ical(occurrence_cancel(update(), CANCELLED, DTSTAMP))
    assert one["METHOD"] == "CANCEL"
    (event,) = one.walk("VEVENT")
    assert event["STATUS"] == "CANCELLED"
    assert event.decoded("RECURRENCE-ID") == CANCELLED
    assert event["UID"] == UID and event["SEQUENCE"] == 1
    # Cancelling the moved occurrence names its current time, keyed by its original one.
    moved = icalendar.Calendar.from_ical(occurrence_cancel(update(), MOVED_FROM, DTSTAMP))
    (event,) = moved.walk("VEVENT")
    assert event.decoded("RECURRENCE-ID") == MOVED_FROM and event.decoded("DTSTART") == MOVED_TO
    whole = icalendar.Calendar.from_ical(series_cancel(update(), DTSTAMP))
    assert whole["METHOD"] == "CANCEL"
    (event,) = whole.walk("VEVENT")
    assert event["STATUS"] == "CANCELLED" and event["UID"] == UID
    assert "RECURRENCE-ID" not in event


def test_feed_has_no_method_and_no_people() -> None:
    data = feed([update(), afternoon()], DTSTAMP)
    calendar = icalendar.Calendar.from_ical(data)
    assert "METHOD" not in calendar
    assert calendar["X-WR-CALNAME"] == "Giao Ban"
    assert calendar["X-WR-TIMEZONE"] == "Asia/Ho_Chi_Minh"
    assert b"ATTENDEE" not in data and b"ORGANIZER" not in data
    assert len(calendar.walk("VTIMEZONE")) == 1
    assert [str(e["UID"]) for e in calendar.walk("VEVENT")] == [
        UID,
        UID,
        "series-afternoon-53a9be10@giaoban.hue.gov.vn",
    ]


def starts_by_parser(data: bytes, first: date, last: date) -> list[tuple[datetime, datetime]]:
    """(start, end) of every instance the independent parser finds in [first, last]."""
    calendar = icalendar.Calendar.from_ical(data)
    events: list[Any] = recurring_ical_events.of(calendar).between(first, last + timedelta(days=1))
    return sorted((e.decoded("DTSTART"), e.decoded("DTEND")) for e in events)


def starts_by_expand(
    series: CalSeries, first: date, last: date, cancelled: tuple[datetime, ...] = ()
) -> list[tuple[datetime, datetime]]:
    """(start, end) of our own expansion of the rule, cancelled occurrences left out."""
    # Built from the rule, the working calendar and the moves, never from the EXDATEs we wrote.
    moved = {o.recurrence_id: o.start for o in series.overrides}
    occurrences = expand(series.rule, make_calendar(), first, last, moved, cancelled)
    return [(o.start, o.end) for o in occurrences if not o.cancelled]


def test_independent_parser_agrees_with_expand() -> None:
    series = update()
    first, last = date(2027, 1, 1), date(2027, 3, 31)
    ours = starts_by_expand(series, first, last, cancelled=(CANCELLED,))
    theirs = starts_by_parser(series_request(series, DTSTAMP), first, last)
    assert theirs == ours
    assert len(ours) == 57
    assert (hcm(2027, 1, 30), hcm(2027, 1, 30, 8, 15)) in ours
    assert (MOVED_TO, MOVED_TO + timedelta(minutes=45)) in ours
    assert all(start.date() != CANCELLED.date() for start, _ in ours)


def test_independent_parser_reads_the_feed() -> None:
    first, last = date(2027, 1, 1), date(2027, 3, 31)
    theirs = starts_by_parser(feed([update(), afternoon()], DTSTAMP), first, last)
    ours = sorted(
        starts_by_expand(update(), first, last, cancelled=(CANCELLED,))
        + starts_by_expand(afternoon(), first, last)
    )
    assert theirs == ours


def test_zone_with_daylight_saving_gets_its_transitions() -> None:
    series = make_series(make_rule(tz="Europe/Paris"), exdates=(), rdates=())
    data = series_request(series, DTSTAMP)
    calendar = icalendar.Calendar.from_ical(data)
    (timezone,) = calendar.walk("VTIMEZONE")
    assert {c.name for c in timezone.subcomponents} == {"STANDARD", "DAYLIGHT"}
    first, last = date(2027, 3, 22), date(2027, 4, 2)
    theirs = starts_by_parser(data, first, last)
    # Monday 22 to Wednesday 31 March (the series' end), across the change to summer time.
    assert [start.hour for start, _ in theirs] == [7] * 8
    assert theirs[0][0].utcoffset() != theirs[-1][0].utcoffset()
