"""Imports every model module so that Base.metadata knows every table."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "meetings.directory.models",
    "meetings.accounts.models",
    "meetings.audit",
    "meetings.schedule.models",
    "meetings.mail.models",
    "meetings.jobs.lease",
    "meetings.rooms.models",
    "meetings.minutes.models",
    "meetings.issues.models",
    "meetings.figures.models",
    "meetings.manual.models",
    "meetings.readiness.models",
)


def import_all() -> None:
    """Import the model modules (Alembic and the test fixtures need the full metadata)."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
