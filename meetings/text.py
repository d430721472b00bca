"""Text helpers for Vietnamese: diacritic-insensitive folding for search."""

from __future__ import annotations

import unicodedata

_EXTRA = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """Lower-case text without Vietnamese diacritics: 'Đồng bộ' -> 'dong bo'."""
    decomposed = unicodedata.normalize("NFD", text.translate(_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def normalize(text: str) -> str:
    """NFC-normalised text with outer whitespace removed (what we store)."""
    return unicodedata.normalize("NFC", text).strip()


# Cc: C0/C1 controls (NUL, tab, line feed, DEL...); Cs: lone surrogates (not encodable as UTF-8);
# Zl/Zp: line and paragraph separators. None belongs in a one-line field.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def has_control(text: str) -> bool:
    """True when the text holds a control character (NUL, a line break, a lone surrogate...)."""
    return any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)
