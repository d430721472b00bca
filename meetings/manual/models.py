"""The Public Administration Manual: questions and answers by topic, every revision kept."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_


class ArticleStatus(enum.StrEnum):
    """Whether members can read an article."""

    DRAFT = "draft"
    PUBLISHED = "published"


ARTICLE_STATUS_LABELS = {ArticleStatus.DRAFT: N_("Draft"), ArticleStatus.PUBLISHED: N_("Published")}

# Topics: procedures, then technical matters. Keys are stable; labels are translated.
TOPICS = {
    "certified_copies": N_("Certified copies"),
    "business_registration": N_("Business registration"),
    "household_business_end": N_("Ending a household business"),
    "death_registration": N_("Death registration"),
    "land_use_certificates": N_("Land-use right certificates"),
    "building_permits": N_("Building permits"),
    "accounts": N_("Accounts"),
    "digital_signatures": N_("Digital signatures"),
    "fee_collection": N_("Fee collection"),
    "other": N_("Other"),
}


class Article(Base):
    """One question and its answer (the current revision's text)."""

    __tablename__ = "manual_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(32), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    status: Mapped[ArticleStatus] = mapped_column(str_enum(ArticleStatus), default=ArticleStatus.DRAFT)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Question and answer folded (no diacritics, lower case): what full-text search indexes.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ArticleRevision(Base):
    """Every revision of an article, as written."""

    __tablename__ = "manual_revisions"
    __table_args__ = (UniqueConstraint("article_id", "number", name="uq_manual_revisions_article_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("manual_articles.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ArticleSource(Base):
    """An issue an article came from."""

    __tablename__ = "manual_sources"
    __table_args__ = (UniqueConstraint("article_id", "issue_id", name="uq_manual_sources_article_issue"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("manual_articles.id", ondelete="CASCADE"), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
