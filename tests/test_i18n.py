"""Translations: every message is translated into Vietnamese, placeholders survive, formatting.

Self-contained: no fixtures from conftest.py. After adding a message, run scripts/messages.sh
and translate the new entries of meetings/locale/vi/LC_MESSAGES/messages.po.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from meetings import i18n

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "meetings" / "locale"
BABEL = [sys.executable, "-m", "babel.messages.frontend", "-q"]
EXTRACT_OPTIONS = ["--no-location", "--sort-output", "--project=giaoban"]
KEYWORDS = ["-k", "_", "-k", "N_", "-k", "gettext", "-k", "ngettext:1,2"]
HINT = "run scripts/messages.sh, then translate them in meetings/locale/vi/LC_MESSAGES/messages.po"

NAMED = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _catalog(language: str) -> Catalog:
    return _read(LOCALE_DIR / language / "LC_MESSAGES" / "messages.po", language)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The messages of the sources and templates now, extracted as scripts/messages.sh does."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    result = subprocess.run(
        [*BABEL, "extract", "-F", "babel.cfg", *KEYWORDS, "-o", str(pot), *EXTRACT_OPTIONS, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"extraction failed:\n{result.stdout}\n{result.stderr}"
    return _read(pot)


def _key(message: Message) -> str:
    return message.id[0] if isinstance(message.id, tuple | list) else message.id


def _strings(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string or ""]


def _ids(message: Message) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple | list) else [message.id]


def _translated(message: Message | None) -> bool:
    return message is not None and not message.fuzzy and all(s.strip() for s in _strings(message))


def _names(text: str) -> set[str]:
    return set(NAMED.findall(text))


def _bare_percents(text: str) -> int:
    """'%' signs outside %(name)s placeholders (a stray one breaks '%' formatting)."""
    return NAMED.sub("", text).replace("%%", "").count("%")


def test_every_extracted_message_has_a_vietnamese_translation(extracted: Catalog) -> None:
    template = extracted
    vi = _catalog("vi")
    messages = [m for m in template if m.id]
    assert len(messages) > 50, "the extraction found suspiciously few messages"
    missing = [_key(m) for m in messages if not _translated(vi.get(m.id))]
    assert not missing, (
        f"{len(missing)} message(s) without a Vietnamese translation ({HINT}):\n  " + "\n  ".join(missing)
    )


def test_plural_messages_keep_their_plural_form(extracted: Catalog) -> None:
    template = extracted
    vi = _catalog("vi")
    wrong = [
        _key(m)
        for m in template
        if m.id and (found := vi.get(m.id)) is not None and m.pluralizable != found.pluralizable
    ]
    assert not wrong, f"singular/plural mismatch with the sources ({HINT}):\n  " + "\n  ".join(wrong)


def test_catalogs_have_no_fuzzy_entries_and_valid_headers() -> None:
    vi = _catalog("vi")
    en = _catalog("en")
    assert vi.num_plurals == 1
    assert vi.plural_expr == "0"
    assert str(vi.locale) == "vi"
    assert en.num_plurals == 2
    assert str(en.locale) == "en"
    for language, catalog in (("vi", vi), ("en", en)):
        assert catalog.charset == "utf-8", language
        fuzzy = [_key(m) for m in catalog if m.id and m.fuzzy]
        assert not fuzzy, f"fuzzy entries in the {language} catalog:\n  " + "\n  ".join(fuzzy)
        assert not catalog.obsolete, f"obsolete entries in the {language} catalog ({HINT})"


def test_vietnamese_translations_keep_the_placeholders() -> None:
    problems = []
    for message in _catalog("vi"):
        if not message.id:
            continue
        ids = _ids(message)
        wanted = set().union(*(_names(i) for i in ids))
        for text in _strings(message):
            if not text:
                continue
            if _names(text) != wanted:
                problems.append(
                    f"{_key(message)!r}: {text!r} has {sorted(_names(text))}, not {sorted(wanted)}"
                )
            elif _bare_percents(text) != _bare_percents(ids[0]):
                problems.append(f"{_key(message)!r}: {text!r} has a stray '%'")
    assert not problems, "placeholders differ:\n  " + "\n  ".join(problems)


def test_gettext_follows_the_language() -> None:
    with i18n.language("vi"):
        assert i18n.gettext("Sign in") == "Đăng nhập"
        assert i18n.ngettext("%(num)s unit", "%(num)s units", 40) == "40 đơn vị"
    with i18n.language("en"):
        assert i18n.gettext("Sign in") == "Sign in"
        assert i18n.ngettext("%(num)s unit", "%(num)s units", 1) == "1 unit"
        assert i18n.ngettext("%(num)s unit", "%(num)s units", 40) == "40 units"


def test_numbers_and_dates_follow_the_language() -> None:
    with i18n.language("vi"):
        assert i18n.fmt_number(1283) == "1.283"
        assert i18n.fmt_date(date(2025, 7, 3)) == "03/07/2025"
    with i18n.language("en"):
        assert i18n.fmt_number(1283) == "1,283"
