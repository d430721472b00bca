"""The sections of minutes per meeting kind, and where each kind of entry goes by default."""

from __future__ import annotations

from dataclasses import dataclass

from meetings.errors import N_
from meetings.minutes.models import EntryKind


@dataclass(frozen=True)
class Section:
    """One section of minutes: key, interface label (msgid), title in the official document."""

    key: str
    label: str
    title_vi: str


TEMPLATES: dict[str, tuple[Section, ...]] = {
    "morning": (
        Section("situation", N_("Situation"), "Tình hình"),
        Section("figures", N_("Figures"), "Số liệu"),
        Section("directions", N_("Directions for the day"), "Chỉ đạo trong ngày"),
    ),
    "afternoon": (
        Section("difficulties", N_("Difficulties met"), "Khó khăn, vướng mắc"),
        Section("lessons", N_("Lessons learned"), "Bài học kinh nghiệm"),
        Section("adjustments", N_("Plan adjustments"), "Điều chỉnh kế hoạch"),
    ),
    "adhoc": (
        Section("incident", N_("Incident"), "Sự cố"),
        Section("decisions", N_("Decisions"), "Quyết định"),
    ),
}

# Where a new entry of each kind goes when the secretary does not choose a section.
_DEFAULTS: dict[str, dict[EntryKind, str]] = {
    "morning": {
        EntryKind.ISSUE: "situation",
        EntryKind.NOTE: "situation",
        EntryKind.LESSON: "situation",
        EntryKind.ADJUSTMENT: "directions",
        EntryKind.DECISION: "directions",
        EntryKind.ACTION: "directions",
    },
    "afternoon": {
        EntryKind.ISSUE: "difficulties",
        EntryKind.NOTE: "difficulties",
        EntryKind.LESSON: "lessons",
        EntryKind.ADJUSTMENT: "adjustments",
        EntryKind.DECISION: "adjustments",
        EntryKind.ACTION: "adjustments",
    },
    "adhoc": {
        EntryKind.ISSUE: "incident",
        EntryKind.NOTE: "incident",
        EntryKind.LESSON: "incident",
        EntryKind.ADJUSTMENT: "decisions",
        EntryKind.DECISION: "decisions",
        EntryKind.ACTION: "decisions",
    },
}


def sections_of(template: str) -> tuple[Section, ...]:
    """The sections of a template (unknown templates read as ad hoc)."""
    return TEMPLATES.get(template, TEMPLATES["adhoc"])


def default_section(template: str, kind: EntryKind) -> str:
    """The section a new entry of this kind goes to."""
    return _DEFAULTS.get(template, _DEFAULTS["adhoc"])[kind]


def section_keys(template: str) -> frozenset[str]:
    """The valid section keys of a template."""
    return frozenset(s.key for s in sections_of(template))
