"""Gettext translations (Babel catalogs), the current language, Vietnamese dates and numbers."""

from __future__ import annotations

import contextvars
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT_LANGUAGE = "vi"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> Translations:
    """The catalog for a language: the compiled .mo, or the .po compiled in memory when newer."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    if not po.exists():
        return Translations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def current_language() -> str:
    """The language of the request or job being served."""
    return _current.get()


def set_language(language: str) -> contextvars.Token[str]:
    """Make a language current in this context."""
    return _current.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Run a block in a language (emails are written in the recipient's)."""
    token = set_language(lang)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str, **params: Any) -> str:
    """Translate into the current language, then fill %(name)s parameters."""
    text = translations(current_language()).gettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    """Translate a message with a count into the current language."""
    text = translations(current_language()).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


_ = gettext


def babel_locale() -> Locale:
    """The Babel locale of the current language."""
    return Locale.parse(current_language())


def fmt_number(value: float | int, decimals: int = 0) -> str:
    """A number in the current language's convention: 1.283 in Vietnamese, 1,283 in English."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=babel_locale())


def fmt_percent(value: float) -> str:
    """A ratio as a percentage in the current language's convention."""
    return format_percent(value, format="#,##0.0%", locale=babel_locale())


def fmt_date(value: date, style: str = "short") -> str:
    """A date: 27/11/2026 in Vietnamese; 'long' adds the weekday."""
    if style == "long":
        return format_date(value, format="full", locale=babel_locale())
    if current_language() == "vi":
        return value.strftime("%d/%m/%Y")
    return format_date(value, format="medium", locale=babel_locale())


def fmt_datetime(value: datetime, tz: tzinfo, style: str = "short") -> str:
    """A moment shown in local time: '07:30 27/11/2026' in Vietnamese."""
    local = value.astimezone(tz)
    if current_language() == "vi":
        return f"{local.strftime('%H:%M')} {fmt_date(local.date(), style)}"
    return format_datetime(local, format="medium", locale=babel_locale())


def fmt_time(value: datetime, tz: tzinfo) -> str:
    """A time of day in local time, 24-hour."""
    return format_time(value.astimezone(tz), format="HH:mm", locale=babel_locale())
