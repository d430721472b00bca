"""Translated labels and select options for templates."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, tzinfo
from typing import Any

from meetings import i18n
from meetings.directory.models import ROLE_LABELS, UNIT_KIND_LABELS, Role, Unit, UnitKind
from meetings.i18n import gettext


def role_label(role: Role | str) -> str:
    """The translated name of a role."""
    return gettext(ROLE_LABELS[Role(role)])


def kind_label(kind: UnitKind | str) -> str:
    """The translated name of a unit kind."""
    return gettext(UNIT_KIND_LABELS[UnitKind(kind)])


def role_options() -> list[tuple[str, str]]:
    """(value, label) pairs for a role select."""
    return [(r.value, role_label(r)) for r in Role]


def kind_options() -> list[tuple[str, str]]:
    """(value, label) pairs for a unit kind select."""
    return [(k.value, kind_label(k)) for k in UnitKind]


def unit_options(units: Iterable[Unit], exclude_id: int | None = None) -> list[tuple[str, str]]:
    """(code, name) pairs for a unit select, with an empty first choice."""
    return [("", "—")] + [(u.code, f"{u.name} ({u.code})") for u in units if u.id != exclude_id]


def weekday_label(name: str) -> str:
    """The weekday's name (MO, TU…) in the current language."""
    from babel.dates import get_day_names

    from meetings.i18n import current_language
    from meetings.schedule.workdays import WEEKDAY_NAMES

    return str(get_day_names("wide", locale=current_language())[WEEKDAY_NAMES.index(name)])


def date_text(value: date | str | None, style: str = "short") -> str:
    """A date, or an ISO 8601 date as stored in minutes (2026-12-06), as 06/12/2026 in Vietnamese."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            return i18n.fmt_date(date.fromisoformat(value[:10]), style)
        except ValueError:
            return value
    return i18n.fmt_date(value, style)


def datetime_text(value: datetime | str | None, tz: tzinfo, style: str = "short") -> str:
    """A moment, or an ISO 8601 moment as stored in JSON, in the city's time: 07:30 06/12/2026."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            return i18n.fmt_datetime(datetime.fromisoformat(value), tz, style)
        except ValueError:
            return value
    return i18n.fmt_datetime(value, tz, style)


def template_globals() -> dict[str, Callable[..., Any]]:
    """The helpers every template can call."""
    return {
        "role_label": role_label,
        "kind_label": kind_label,
        "role_options": role_options,
        "kind_options": kind_options,
        "unit_options": unit_options,
        "weekday_label": weekday_label,
    }
