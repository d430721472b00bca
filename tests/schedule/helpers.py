"""Factories and small helpers shared by the scheduling tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from meetings.schedule.ical import Attendee, CalOverride, CalSeries
from meetings.schedule.recurrence import SeriesRule, calendar_exceptions
from meetings.schedule.workdays import WorkingCalendar

GOLDEN = Path(__file__).parent / "golden"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
DTSTAMP = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
UID = "series-morning-7d1f0c2e@giaoban.hue.gov.vn"
ORGANIZER_EMAIL = "giaoban@hue.gov.vn"
ORGANIZER_NAME = "Văn phòng UBND thành phố Huế"

# The make-up working Saturday used throughout: it stands for a weekday given off around Tết.
MAKEUP_SATURDAY = date(2027, 1, 30)
# One moved and one cancelled occurrence of the morning series (original local starts).
MOVED_FROM = datetime(2027, 3, 2, 7, 30, tzinfo=HCM)
MOVED_TO = datetime(2027, 3, 2, 9, 0, tzinfo=HCM)
CANCELLED = datetime(2027, 3, 3, 7, 30, tzinfo=HCM)


def lf2crlf(text: str) -> bytes:
    """Golden files are stored with LF for reading; the wire format uses CRLF."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def crlf2lf(data: bytes) -> str:
    """The inverse of lf2crlf, to write a golden file from real output."""
    return data.decode("utf-8").replace("\r\n", "\n")


def golden(name: str) -> bytes:
    """The CRLF bytes of a stored golden file."""
    return lf2crlf((GOLDEN / name).read_text(encoding="utf-8"))


def hcm(y: int, mo: int, d: int, h: int = 7, mi: int = 30) -> datetime:
    """An aware local datetime in Asia/Ho_Chi_Minh."""
    return datetime(y, mo, d, h, mi, tzinfo=HCM)


def make_rule(**overrides: Any) -> SeriesRule:
    """The morning series, 07:30–08:15 Monday to Friday, January to March 2027."""
    values: dict[str, Any] = {
        "start_date": date(2027, 1, 4),
        "until": date(2027, 3, 31),
        "start_time": time(7, 30),
        "duration": timedelta(minutes=45),
        "weekdays": ("MO", "TU", "WE", "TH", "FR"),
        "tz": "Asia/Ho_Chi_Minh",
    }
    values.update(overrides)
    return SeriesRule(**values)


def make_calendar(**overrides: Any) -> WorkingCalendar:
    """The working calendar with one make-up Saturday and one administrative day off."""
    values: dict[str, Any] = {
        "makeup_days": {MAKEUP_SATURDAY: "Làm bù cho ngày nghỉ Tết"},
        "days_off": {date(2027, 3, 26): "Nghỉ theo quyết định của UBND thành phố"},
    }
    values.update(overrides)
    return WorkingCalendar(**values)


def make_series(
    rule: SeriesRule | None = None,
    calendar: WorkingCalendar | None = None,
    *,
    cancelled: tuple[datetime, ...] = (),
    overrides: tuple[CalOverride, ...] = (),
    **fields: Any,
) -> CalSeries:
    """A CalSeries for the rule with EXDATE/RDATE derived from the calendar and cancellations."""
    rule = rule or make_rule()
    calendar = calendar or make_calendar()
    exceptions = calendar_exceptions(rule, calendar, date(2027, 12, 31), cancelled)
    series = CalSeries(
        uid=UID,
        sequence=0,
        summary="Họp giao ban buổi sáng",
        description="Rà soát tình hình, chỉ đạo công việc trong ngày; 40 trung tâm tham dự.",
        location="Trực tuyến — Giao Ban",
        url="https://giaoban.hue.gov.vn/series/morning",
        rule=rule,
        organizer_email=ORGANIZER_EMAIL,
        organizer_name=ORGANIZER_NAME,
        attendees=(
            Attendee("pvhcc.phuxuan@hue.gov.vn", "Trung tâm PVHCC phường Phú Xuân"),
            Attendee("sokhcn@hue.gov.vn", "Sở Khoa học và Công nghệ", role="OPT-PARTICIPANT"),
        ),
        exdates=exceptions.exdates,
        rdates=exceptions.rdates,
        overrides=overrides,
    )
    return replace(series, **fields)


def moved_override() -> CalOverride:
    """The override moving MOVED_FROM to MOVED_TO, in another room."""
    return CalOverride(
        recurrence_id=MOVED_FROM,
        start=MOVED_TO,
        end=MOVED_TO + timedelta(minutes=45),
        location="Hội trường UBND thành phố, 24 Tố Hữu",
    )
