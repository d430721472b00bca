"""The Vietnamese working-day calendar."""

from __future__ import annotations

from datetime import date

import pytest

from meetings.schedule.workdays import WorkingCalendar

from .helpers import MAKEUP_SATURDAY, make_calendar

TET_2027_WEEKDAYS_OFF = [date(2027, 2, d) for d in (4, 5, 8, 9, 10)]


def test_tet_2027_is_not_worked() -> None:
    calendar = WorkingCalendar()
    for d in TET_2027_WEEKDAYS_OFF:
        assert not calendar.is_working_day(d), d
        assert calendar.holiday_name(d), d
    # Lunar New Year's Day 2027 itself (Saturday 6 February) is named too.
    assert calendar.holiday_name(date(2027, 2, 6)) == "Tết Nguyên Đán"
    assert calendar.is_working_day(date(2027, 2, 3))
    assert calendar.is_working_day(date(2027, 2, 11))


@pytest.mark.parametrize(
    ("day", "name_part"),
    [
        (date(2027, 4, 16), "Hùng Vương"),
        (date(2027, 4, 30), "Chiến thắng"),
        (date(2027, 9, 2), "Quốc khánh"),
        (date(2026, 5, 1), "Lao động"),
        (date(2027, 1, 1), "Tết Dương lịch"),
    ],
)
def test_fixed_public_holidays(day: date, name_part: str) -> None:
    calendar = WorkingCalendar()
    assert not calendar.is_working_day(day)
    name = calendar.holiday_name(day)
    assert name is not None and name_part in name


def test_weekend_holiday_gives_a_compensatory_weekday() -> None:
    calendar = WorkingCalendar()
    # 1 May 2027 is a Saturday: Monday 3 May is given off instead.
    assert date(2027, 5, 1).weekday() == 5
    assert calendar.non_working_days(date(2027, 5, 1), date(2027, 5, 3)) == {
        date(2027, 5, 3): "Ngày Quốc tế Lao động (nghỉ bù)"
    }
    # Hùng Kings' day 2026 is a Sunday: Monday 27 April is given off.
    assert not calendar.is_working_day(date(2026, 4, 27))


def test_makeup_saturday_is_a_working_day() -> None:
    calendar = make_calendar()
    assert MAKEUP_SATURDAY.weekday() == 5
    assert calendar.is_working_day(MAKEUP_SATURDAY)
    assert not calendar.is_working_day(date(2027, 2, 6))
    assert not WorkingCalendar().is_working_day(MAKEUP_SATURDAY)
    assert calendar.makeup_days_between(date(2027, 1, 1), date(2027, 1, 31)) == {
        MAKEUP_SATURDAY: "Làm bù cho ngày nghỉ Tết"
    }
    assert calendar.makeup_days_between(date(2027, 2, 1), date(2027, 12, 31)) == {}


def test_makeup_day_overrides_a_holiday() -> None:
    calendar = WorkingCalendar(makeup_days={date(2027, 2, 4): "Làm việc"})
    assert calendar.is_working_day(date(2027, 2, 4))
    assert date(2027, 2, 4) not in calendar.non_working_days(date(2027, 2, 1), date(2027, 2, 28))


def test_administrative_day_off() -> None:
    calendar = make_calendar()
    assert not calendar.is_working_day(date(2027, 3, 26))
    assert calendar.holiday_name(date(2027, 3, 26)) == "Nghỉ theo quyết định của UBND thành phố"


def test_non_working_days_lists_weekdays_only() -> None:
    calendar = make_calendar()
    days = calendar.non_working_days(date(2027, 1, 1), date(2027, 3, 31))
    assert sorted(days) == [date(2027, 1, 1), *TET_2027_WEEKDAYS_OFF, date(2027, 3, 26)]
    assert date(2027, 2, 6) not in days  # Tết's first day, but a Saturday anyway


def test_custom_weekdays_and_unknown_names() -> None:
    six_days = WorkingCalendar(weekdays=frozenset({"MO", "TU", "WE", "TH", "FR", "SA"}))
    assert six_days.is_working_day(date(2027, 1, 9))
    assert not six_days.is_working_day(date(2027, 1, 10))
    with pytest.raises(ValueError, match="XX"):
        WorkingCalendar(weekdays=frozenset({"MO", "XX"}))
