"""Reading the CSV files people actually have: Excel on a Vietnamese-locale Windows PC.

Excel there writes ``;`` between fields (the decimal separator is ``,``), dates as dd/mm/yyyy,
the column names people typed (often Vietnamese), and either UTF-8 with a BOM ("CSV UTF-8")
or the Windows code page ("CSV"): Windows-1258 on a Vietnamese system, Windows-1252 on a
Western one. This module turns such bytes into text, rows and canonical column names; the
figures' rules stay in `meetings.figures.service`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from meetings.errors import N_
from meetings.text import fold

# Canonical column → the names accepted for it, folded (no diacritics, lower case, one space).
# They include the English names of the template, the export's header and the form's labels in
# both languages ("Hồ sơ tiếp nhận"), and the short Vietnamese names people write.
CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "day": ("day", "date", "ngay", "ngay bao cao"),
    "centre": (
        "centre",
        "center",
        "centre code",
        "code",
        "unit",
        "unit code",
        "ma don vi",
        "don vi",
        "ma trung tam",
        "trung tam",
    ),
    "received": (
        "received",
        "dossiers received",
        "tiep nhan",
        "da tiep nhan",
        "ho so tiep nhan",
        "so ho so tiep nhan",
    ),
    "resolved": (
        "resolved",
        "dossiers resolved",
        "giai quyet",
        "da giai quyet",
        "ho so da giai quyet",
        "so ho so da giai quyet",
    ),
    "overdue": ("overdue", "dossiers overdue", "qua han", "ho so qua han", "so ho so qua han"),
    "backlog": (
        "backlog",
        "pending at the start of the day",
        "ton",
        "ton dau ngay",
        "ho so ton",
        "ho so ton dau ngay",
    ),
    "procedure": ("procedure", "thu tuc", "ten thu tuc", "thu tuc hanh chinh"),
}
REQUIRED = ("day", "centre", "received", "resolved", "overdue")
# The Vietnamese name each column is given in messages (whatever the user's language: it is
# what to type in the file).
VIETNAMESE_NAMES: dict[str, str] = {
    "day": "Ngày",
    "centre": "Mã đơn vị",
    "received": "Tiếp nhận",
    "resolved": "Đã giải quyết",
    "overdue": "Quá hạn",
    "backlog": "Tồn đầu ngày",
    "procedure": "Thủ tục",
}
# How each column (and each field an error may name) is called to the user, translated where shown.
COLUMN_LABELS: dict[str, str] = {
    "day": N_("Day"),
    "centre": N_("Centre code"),
    "received": N_("Dossiers received"),
    "resolved": N_("Dossiers resolved"),
    "overdue": N_("Dossiers overdue"),
    "backlog": N_("Pending at the start of the day"),
    "procedure": N_("Procedure"),
    "procedures": N_("Procedure"),
}

_ALIASES = {alias: column for column, aliases in CSV_HEADERS.items() for alias in aliases}


def column_of(header: str) -> str | None:
    """The canonical column a header names ("Mã đơn vị", "Ma_don_vi", "centre"), if any."""
    cleaned = re.sub(r"[_\-.:*()\[\]]+", " ", header.replace("\ufeff", "")).strip(" \"'")
    return _ALIASES.get(fold(cleaned))


# --- text ------------------------------------------------------------------------------------

# Every letter of the Vietnamese alphabet, with every tone, in both cases (precomposed, NFC).
_TONES = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
_VIETNAMESE = frozenset(
    ch
    for base in "aăâeêioôơuưy"
    for tone in _TONES
    for ch in (
        unicodedata.normalize("NFC", base + tone),
        unicodedata.normalize("NFC", base.upper() + tone),
    )
) | frozenset("đĐ")
_TYPOGRAPHY = frozenset("“”‘’–—…°·\u00a0")


def _foreign(text: str) -> int:
    """How many characters are neither ASCII, nor Vietnamese letters, nor common typography."""
    return sum(1 for ch in text if ord(ch) > 127 and ch not in _VIETNAMESE and ch not in _TYPOGRAPHY)


def decode(raw: bytes) -> str | None:
    """The text of a file, or None when its encoding is not recognised.

    UTF-8 first (with or without a BOM; a UTF-16 BOM is Excel's "Unicode text"). Bytes that
    are not UTF-8 come from a Windows code page: both Windows-1258 (Vietnamese: tone marks are
    separate combining characters, composed here to NFC) and Windows-1252 (Western) are tried,
    and the one whose text has fewer characters foreign to Vietnamese wins (Windows-1258 on a
    tie). Vietnamese written in 1258 reads in 1252 as "Ð", "Ì", "Þ" and the like, while a
    Western 1252 file read as 1258 leaves combining marks that compose into no letter.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    candidates: list[tuple[int, int, str]] = []
    for rank, codec in enumerate(("cp1258", "cp1252")):
        try:
            text = unicodedata.normalize("NFC", raw.decode(codec))
        except UnicodeDecodeError:
            continue
        candidates.append((_foreign(text), rank, text))
    return min(candidates)[2] if candidates else None


def delimiter_of(header_line: str) -> str:
    """The field separator, sniffed from the header line: the most frequent of ; , and tab."""
    outside = re.sub(r'"[^"]*"', "", header_line)
    counts = {sep: outside.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def split_sep_line(text: str) -> tuple[str, str | None, int]:
    """Excel's optional first line "sep=;": (the rest of the text, its separator, lines skipped)."""
    first, newline, rest = text.partition("\n")
    found = re.fullmatch(r"\s*sep=(.)\s*", first.rstrip("\r"))
    if found and newline:
        return rest, found.group(1), 1
    return text, None, 0


# --- cells -----------------------------------------------------------------------------------

_DMY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")
_MIDNIGHT = re.compile(r"\s+0?0:00(:00)?$")


def iso_day(raw: str) -> str:
    """A date cell as YYYY-MM-DD when it is written dd/mm/yyyy (Vietnamese order); else as is.

    Excel may add a midnight time ("06/12/2026 0:00"), which is dropped. A day that does not
    exist (31/02) is returned as written, so that the usual date check refuses it.
    """
    text = _MIDNIGHT.sub("", raw.strip())
    found = _DMY.fullmatch(text)
    if not found:
        return text
    day, month, year = (int(g) for g in found.groups())
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return text
