"""Expanding series into occurrences, and the errors the domain refuses with."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from meetings.schedule.errors import ScheduleError
from meetings.schedule.recurrence import (
    Occurrence,
    calendar_exceptions,
    check_move,
    expand,
    is_occurrence,
)

from .helpers import (
    CANCELLED,
    MAKEUP_SATURDAY,
    MOVED_FROM,
    MOVED_TO,
    hcm,
    make_calendar,
    make_rule,
)


def test_three_months_across_tet() -> None:
    occurrences = expand(
        make_rule(),
        make_calendar(),
        date(2027, 1, 1),
        date(2027, 3, 31),
        moved={MOVED_FROM: MOVED_TO},
        cancelled=[CANCELLED],
    )
    days = [o.start.date() for o in occurrences]
    # 63 weekdays from 4 January to 31 March, less 5 of Tết and 1 day off, plus 1 make-up day.
    assert len(occurrences) == 58
    assert days == sorted(days)
    assert MAKEUP_SATURDAY in days
    assert not {date(2027, 2, d) for d in (4, 5, 8, 9, 10)} & set(days)
    assert date(2027, 3, 26) not in days
    assert all(o.end - o.start == timedelta(minutes=45) for o in occurrences)
    assert all(o.start.tzinfo is not None for o in occurrences)
    moved = [o for o in occurrences if o.moved]
    assert moved == [Occurrence(MOVED_FROM, MOVED_TO, MOVED_TO + timedelta(minutes=45), False, True)]
    assert [o.original_start for o in occurrences if o.cancelled] == [CANCELLED]


def test_moves_and_cancellations_match_any_zone() -> None:
    occurrences = expand(
        make_rule(),
        make_calendar(),
        date(2027, 3, 1),
        date(2027, 3, 5),
        moved={MOVED_FROM.astimezone(UTC): MOVED_TO.astimezone(UTC)},
        cancelled={CANCELLED.astimezone(UTC)},
    )
    by_original = {o.original_start: o for o in occurrences}
    assert by_original[MOVED_FROM].start == MOVED_TO
    assert by_original[MOVED_FROM].start.tzinfo == MOVED_FROM.tzinfo
    assert by_original[CANCELLED].cancelled


def test_window_follows_the_new_time_of_a_moved_occurrence() -> None:
    rule, calendar = make_rule(), make_calendar()
    moved = {hcm(2027, 3, 1): hcm(2027, 3, 8, 9, 0), hcm(2027, 3, 12): hcm(2027, 3, 5, 14, 0)}
    first_week = expand(rule, calendar, date(2027, 3, 1), date(2027, 3, 5), moved, ())
    assert [o.start for o in first_week] == [
        hcm(2027, 3, 2),
        hcm(2027, 3, 3),
        hcm(2027, 3, 4),
        hcm(2027, 3, 5),
        hcm(2027, 3, 5, 14, 0),
    ]
    second_week = expand(rule, calendar, date(2027, 3, 8), date(2027, 3, 8), moved, ())
    assert [(o.original_start, o.start) for o in second_week] == [
        (hcm(2027, 3, 8), hcm(2027, 3, 8)),
        (hcm(2027, 3, 1), hcm(2027, 3, 8, 9, 0)),
    ]


def test_moves_of_non_occurrences_are_ignored() -> None:
    # 4 February 2027 is a Tết day: a stale move of it does not resurrect the meeting.
    occurrences = expand(
        make_rule(),
        make_calendar(),
        date(2027, 2, 1),
        date(2027, 2, 28),
        moved={hcm(2027, 2, 4): hcm(2027, 2, 11, 9, 0)},
        cancelled=(),
    )
    assert not any(o.moved for o in occurrences)


def test_weekly_series_does_not_meet_on_makeup_day() -> None:
    weekly = make_rule(weekdays=("MO",))
    occurrences = expand(weekly, make_calendar(), date(2027, 1, 1), date(2027, 3, 31), {}, ())
    assert all(o.start.weekday() == 0 for o in occurrences)
    assert len(occurrences) == 12  # 13 Mondays, less 8 February (Tết)


def test_open_ended_series_and_bounds() -> None:
    rule = make_rule(start_date=date(2027, 1, 6), until=None)
    occurrences = expand(rule, make_calendar(), date(2027, 1, 1), date(2027, 1, 8), {}, ())
    assert [o.start.day for o in occurrences] == [6, 7, 8]
    assert expand(rule, make_calendar(), date(2026, 1, 1), date(2026, 12, 31), {}, ()) == []


def test_calendar_exceptions() -> None:
    exceptions = calendar_exceptions(make_rule(), make_calendar(), date(2030, 1, 1), cancelled=[CANCELLED])
    assert exceptions.rdates == (hcm(2027, 1, 30),)
    assert exceptions.exdates == (
        *(hcm(2027, 2, d) for d in (4, 5, 8, 9, 10)),
        CANCELLED,
        hcm(2027, 3, 26),
    )


def test_is_occurrence() -> None:
    rule, calendar = make_rule(), make_calendar()
    assert is_occurrence(rule, calendar, hcm(2027, 1, 4))
    assert is_occurrence(rule, calendar, hcm(2027, 1, 4).astimezone(UTC))
    assert is_occurrence(rule, calendar, hcm(2027, 1, 30))
    assert not is_occurrence(rule, calendar, hcm(2027, 1, 4, 8, 0))
    assert not is_occurrence(rule, calendar, hcm(2027, 2, 4))
    assert not is_occurrence(rule, calendar, hcm(2027, 4, 1))


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"until": date(2027, 1, 3)}, "until_before_start"),
        ({"tz": "Asia/Hue"}, "unknown_timezone"),
        ({"tz": "../etc/passwd"}, "unknown_timezone"),
        ({"weekdays": ()}, "no_weekdays"),
        ({"weekdays": ("MO", "T2")}, "unknown_weekday"),
        ({"duration": timedelta(0)}, "duration_not_positive"),
        ({"duration": timedelta(minutes=-5)}, "duration_not_positive"),
        ({"start_time": time(7, 30, tzinfo=UTC)}, "start_time_aware"),
    ],
)
def test_invalid_rules(fields: dict[str, object], code: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        make_rule(**fields)
    assert caught.value.code == code
    assert caught.value.message_id
    assert "%(" not in caught.value.message


def test_error_carries_params() -> None:
    with pytest.raises(ScheduleError) as caught:
        make_rule(tz="Mars/Olympus")
    assert caught.value.params == {"tz": "Mars/Olympus"}
    assert str(caught.value) == "unknown_timezone: Unknown time zone: Mars/Olympus."


def test_empty_window() -> None:
    with pytest.raises(ScheduleError) as caught:
        expand(make_rule(), make_calendar(), date(2027, 2, 1), date(2027, 1, 31), {}, ())
    assert caught.value.code == "empty_window"


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2027, 3, 2, 7, 30)
    with pytest.raises(ScheduleError) as caught:
        expand(make_rule(), make_calendar(), date(2027, 3, 1), date(2027, 3, 5), {}, [naive])
    assert caught.value.code == "naive_datetime"


NOW = datetime(2027, 1, 15, 1, 0, tzinfo=UTC)


def test_check_move_accepts_a_working_day() -> None:
    check_move(make_rule(), make_calendar(), MOVED_FROM, MOVED_TO, NOW)
    check_move(make_rule(), make_calendar(), MOVED_FROM, hcm(2027, 1, 30, 9, 0), NOW)


@pytest.mark.parametrize(
    ("original", "new_start", "code"),
    [
        (MOVED_FROM, hcm(2027, 2, 5, 9, 0), "move_to_non_working_day"),  # Tết
        (MOVED_FROM, hcm(2027, 3, 26, 9, 0), "move_to_non_working_day"),  # day off
        (MOVED_FROM, hcm(2027, 3, 6, 9, 0), "move_to_non_working_day"),  # Saturday
        (MOVED_FROM, hcm(2027, 1, 14, 9, 0), "move_into_past"),
        (MOVED_FROM, NOW, "move_into_past"),
        (hcm(2027, 3, 2, 8, 0), MOVED_TO, "not_an_occurrence"),
        (hcm(2027, 2, 4), MOVED_TO, "not_an_occurrence"),
        (MOVED_FROM, datetime(2027, 3, 2, 9, 0), "naive_datetime"),
    ],
)
def test_check_move_refusals(original: datetime, new_start: datetime, code: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_move(make_rule(), make_calendar(), original, new_start, NOW)
    assert caught.value.code == code


def test_check_move_names_the_holiday() -> None:
    with pytest.raises(ScheduleError) as caught:
        check_move(make_rule(), make_calendar(), MOVED_FROM, hcm(2027, 4, 30, 9, 0), NOW)
    assert caught.value.params["reason"] == "Ngày Chiến thắng"
