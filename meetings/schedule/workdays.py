"""The Vietnamese working-day calendar: weekdays, public holidays, days off, make-up days."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from types import MappingProxyType

import holidays

WEEKDAY_NAMES: tuple[str, ...] = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
"""iCalendar weekday names, indexed by date.weekday()."""

DEFAULT_WEEKDAYS: frozenset[str] = frozenset(WEEKDAY_NAMES[:5])

# How the holidays package (0.109) treats Vietnam, checked against its source and output:
# - Tết is computed on the Vietnamese lunar calendar (eve, day 1 to day 4).
# - A holiday that falls on a Saturday or Sunday gets a compensatory day off ("nghỉ bù") on
#   the next working day, as the Labour Code 2019 art. 112 requires (Hùng Kings 2026-04-26,
#   a Sunday, gives Monday 2026-04-27; 1 May 2027, a Saturday, gives Monday 2027-05-03).
#   For Tết the package moves a Saturday day to the working day before ("29 Tết") and a
#   Sunday day to the one after, as the government's yearly Tết notices do.
# - Government swaps ("work Saturday X, rest weekday Y") are listed by year: the rest day Y
#   is a holiday named "Ngày nghỉ (thay cho ngày X)"; the working Saturday X is not exposed
#   by the package, so it must be given here as a make-up day (the administrator enters it).
# - Yearly decisions published late (e.g. a longer Tết break) are not in the package either:
#   they come in as days off.
_LANGUAGE = "vi"


def _country_holidays() -> holidays.HolidayBase:
    """Vietnamese public holidays, named in Vietnamese when the package can."""
    supported = holidays.list_localized_countries().get("VN", ())
    if _LANGUAGE in supported:
        return holidays.country_holidays("VN", language=_LANGUAGE)
    return holidays.country_holidays("VN")


def days_between(start: date, end: date) -> Iterator[date]:
    """Every date from start to end, both included."""
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


class WorkingCalendar:
    """Which dates are working days for the administration."""

    def __init__(
        self,
        weekdays: frozenset[str] = DEFAULT_WEEKDAYS,
        days_off: Mapping[date, str] | None = None,
        makeup_days: Mapping[date, str] | None = None,
    ) -> None:
        unknown = set(weekdays) - set(WEEKDAY_NAMES)
        if unknown:
            raise ValueError(f"unknown weekday names: {sorted(unknown)}")
        self.weekdays = frozenset(weekdays)
        self.days_off: Mapping[date, str] = MappingProxyType(dict(days_off or {}))
        self.makeup_days: Mapping[date, str] = MappingProxyType(dict(makeup_days or {}))
        # The package fills years on first lookup; one instance per calendar keeps that cache.
        self._holidays = _country_holidays()

    def is_regular_weekday(self, d: date) -> bool:
        """Whether d falls on one of the usual working weekdays."""
        return WEEKDAY_NAMES[d.weekday()] in self.weekdays

    def is_working_day(self, d: date) -> bool:
        """Whether d is worked: a make-up day, or a usual weekday that is no holiday or day off."""
        if d in self.makeup_days:
            return True
        return self.is_regular_weekday(d) and self.holiday_name(d) is None

    def holiday_name(self, d: date) -> str | None:
        """The name of the public holiday or administrative day off on d, if any."""
        if d in self.days_off:
            return self.days_off[d]
        name = self._holidays.get(d)
        return str(name) if name is not None else None

    def non_working_days(self, start: date, end: date) -> dict[date, str]:
        """Holidays and days off in [start, end] that fall on a usual working weekday."""
        result: dict[date, str] = {}
        for d in days_between(start, end):
            if d in self.makeup_days or not self.is_regular_weekday(d):
                continue
            name = self.holiday_name(d)
            if name is not None:
                result[d] = name
        return result

    def makeup_days_between(self, start: date, end: date) -> dict[date, str]:
        """Make-up working days in [start, end], in date order."""
        return {d: name for d, name in sorted(self.makeup_days.items()) if start <= d <= end}
