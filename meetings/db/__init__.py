"""Database: declarative base, engine and session factory, Alembic migrations."""

from meetings.db.base import Base, UTCDateTime, utcnow
from meetings.db.engine import create_engine, create_sessionmaker

__all__ = ["Base", "UTCDateTime", "create_engine", "create_sessionmaker", "utcnow"]
