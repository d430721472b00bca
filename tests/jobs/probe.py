"""A job for the scheduler tests: each run writes one outbox row the test can count."""

from __future__ import annotations

import uuid

from meetings.jobs.context import current
from meetings.mail import outbox
from tests.mail.messages import plain

PREFIX = "probe:"


async def write_probe(label: str) -> None:
    """Record one run of the job labelled `label` (a fresh key per run, so repeats show)."""
    context = current()
    message = plain("probe@hue.example", f"Probe {label}")
    async with context.db() as db:
        await outbox.enqueue(db, key=f"{PREFIX}{label}:{uuid.uuid4().hex}", kind="notice", message=message)
        await db.commit()
    context.wake_outbox()
