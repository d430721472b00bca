"""What a running job needs (the database, the settings), set once per process by the app.

Persisted jobs are stored as a function reference and ids; they cannot carry objects such as
a session factory. The scheduler's cleanup context sets this when the app starts, and job
functions ask for it with current().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.settings import Settings


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class JobContext:
    """The app's resources that jobs use."""

    db: async_sessionmaker[AsyncSession]
    settings: Settings
    wake_outbox: Callable[[], None] = field(default=_nothing)  # after committing new mail


_context: JobContext | None = None


def set_context(context: JobContext | None) -> None:
    """Install the context of this process (None when the app stops)."""
    global _context
    _context = context


def current() -> JobContext:
    """The context of this process; RuntimeError when the app is not running."""
    if _context is None:
        raise RuntimeError("no job context: jobs run only inside the running app")
    return _context
