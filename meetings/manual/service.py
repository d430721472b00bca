"""The manual: articles by topic, drafts from resolved issues, review and publication, revisions, search.

Search is ranked full-text search on the folded text (no diacritics, lower case), so a query
typed with or without diacritics finds the same articles: SQLite FTS5 (bm25) on SQLite,
PostgreSQL full-text search (ts_rank over a stored tsvector column with a GIN index). The query is reduced to
its words before it reaches either engine, so quotes, operators and SQL in it are inert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.permissions import Actor, Permission
from meetings.db.base import utcnow
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.issues import service as issues
from meetings.issues.models import IssueEvent, IssueStatus
from meetings.manual.models import TOPICS, Article, ArticleRevision, ArticleSource, ArticleStatus
from meetings.text import fold, normalize

MAX_QUESTION = 1000
MAX_ANSWER = 20_000
MAX_QUERY = 200
MAX_WORDS = 12
_WORD = re.compile(r"\w+")

# Issue categories → the manual's topics (a draft's starting topic; the editor may change it).
CATEGORY_TOPICS = {
    "signature": "digital_signatures",
    "accounts": "accounts",
    "fees": "fee_collection",
}


@dataclass
class ArticleInput:
    """An article as typed."""

    topic: str = ""
    question: str = ""
    answer: str = ""


def can_edit(actor: Actor) -> bool:
    """Whether the person writes and publishes articles."""
    return actor.can(Permission.MANUAL_EDIT)


def _check_edit(actor: Actor) -> None:
    if not can_edit(actor):
        raise Forbidden(N_("Only the manual's editors write articles."))


def _clean(data: ArticleInput) -> ArticleInput:
    errors: list[FieldError] = []
    topic = data.topic.strip()
    if topic not in TOPICS:
        errors.append(FieldError("topic", N_("Choose a topic from the list.")))
    question = normalize(data.question)
    answer = normalize(data.answer)
    if not question:
        errors.append(FieldError("question", N_("Write the question.")))
    elif len(question) > MAX_QUESTION:
        errors.append(FieldError("question", N_("Use at most %(n)s characters."), {"n": MAX_QUESTION}))
    if not answer:
        errors.append(FieldError("answer", N_("Write the answer.")))
    elif len(answer) > MAX_ANSWER:
        errors.append(FieldError("answer", N_("Use at most %(n)s characters."), {"n": MAX_ANSWER}))
    if errors:
        raise InvalidInput(errors)
    return ArticleInput(topic, question, answer)


def search_text_of(question: str, answer: str) -> str:
    """What full-text search indexes: question and answer, folded."""
    return fold(f"{question} {answer}")


async def create(
    db: AsyncSession,
    actor: Actor,
    data: ArticleInput,
    *,
    issue_ids: list[int] | None = None,
    now: datetime | None = None,
) -> Article:
    """A new draft article (revision 1), linked to the issues it came from."""
    _check_edit(actor)
    now = now or utcnow()
    clean = _clean(data)
    article = Article(
        topic=clean.topic,
        question=clean.question,
        answer=clean.answer,
        status=ArticleStatus.DRAFT,
        revision=1,
        search_text=search_text_of(clean.question, clean.answer),
        created_by_id=actor.id or None,
        created_at=now,
        updated_at=now,
    )
    db.add(article)
    await db.flush()
    _revision(db, article, actor, now)
    for issue_id in issue_ids or []:
        db.add(ArticleSource(article_id=article.id, issue_id=issue_id))
    await db.flush()
    return article


def _revision(db: AsyncSession, article: Article, actor: Actor, now: datetime) -> None:
    db.add(
        ArticleRevision(
            article_id=article.id,
            number=article.revision,
            topic=article.topic,
            question=article.question,
            answer=article.answer,
            status=article.status.value,
            by=actor.name,
            at=now,
        )
    )


async def get_article(db: AsyncSession, actor: Actor, article_id: int) -> Article:
    """An article: published ones for everyone, drafts for editors."""
    article = await db.get(Article, article_id)
    if article is None or (article.status != ArticleStatus.PUBLISHED and not can_edit(actor)):
        raise NotFound(N_("This article does not exist."))
    return article


async def update(
    db: AsyncSession,
    actor: Actor,
    article_id: int,
    data: ArticleInput,
    expected_revision: int,
    *,
    now: datetime | None = None,
) -> Article:
    """Save a new revision of an article (the earlier ones are kept); a stale revision is refused."""
    _check_edit(actor)
    now = now or utcnow()
    article = await get_article(db, actor, article_id)
    if expected_revision != article.revision:
        raise Conflict(N_("Someone saved a newer revision of this article first. Reload to see it."))
    clean = _clean(data)
    if (clean.topic, clean.question, clean.answer) == (article.topic, article.question, article.answer):
        return article
    article.topic, article.question, article.answer = clean.topic, clean.question, clean.answer
    article.search_text = search_text_of(clean.question, clean.answer)
    article.revision += 1
    article.updated_at = now
    await db.flush()
    _revision(db, article, actor, now)
    await db.flush()
    return article


async def publish(db: AsyncSession, actor: Actor, article_id: int, *, now: datetime | None = None) -> Article:
    """The editor has reviewed the article: every member can read it now."""
    _check_edit(actor)
    article = await get_article(db, actor, article_id)
    if article.status != ArticleStatus.PUBLISHED:
        article.status = ArticleStatus.PUBLISHED
        article.published_at = now or utcnow()
        await db.flush()
    return article


async def from_issue(
    db: AsyncSession, actor: Actor, issue_id: int, *, now: datetime | None = None
) -> Article:
    """A draft from a resolved issue in one step: question from the issue, answer from its resolution.

    The same issue asked twice gives the article already drafted from it.
    """
    _check_edit(actor)
    row = await issues.get_issue(db, actor, issue_id)
    if row.status not in {IssueStatus.RESOLVED, IssueStatus.CLOSED}:
        raise Conflict(N_("Only a resolved issue becomes an article."))
    if not row.resolution:
        raise Conflict(N_("Write how the issue was resolved first; it becomes the answer."))
    found = await db.scalar(
        select(Article)
        .join(ArticleSource, ArticleSource.article_id == Article.id)
        .where(ArticleSource.issue_id == row.id)
    )
    if found is not None:
        return found
    topic = CATEGORY_TOPICS.get(row.category or "", "other")
    article = await create(
        db, actor, ArticleInput(topic, row.text[:MAX_QUESTION], row.resolution), issue_ids=[row.id], now=now
    )
    db.add(
        IssueEvent(
            issue_id=row.id,
            action="article",
            person_id=actor.id or None,
            person_name=actor.name,
            at=now or utcnow(),
            details={"article_id": article.id},
        )
    )
    await db.flush()
    return article


async def revisions(db: AsyncSession, article_id: int) -> list[ArticleRevision]:
    """Every revision of an article, newest first."""
    return list(
        await db.scalars(
            select(ArticleRevision)
            .where(ArticleRevision.article_id == article_id)
            .order_by(ArticleRevision.number.desc())
        )
    )


async def sources(db: AsyncSession, article_id: int) -> list[int]:
    """The issues an article came from."""
    return list(
        await db.scalars(select(ArticleSource.issue_id).where(ArticleSource.article_id == article_id))
    )


async def by_topic(db: AsyncSession, actor: Actor) -> dict[str, list[Article]]:
    """The articles the person may read, grouped by topic in the manual's order."""
    stmt = select(Article).order_by(Article.question)
    if not can_edit(actor):
        stmt = stmt.where(Article.status == ArticleStatus.PUBLISHED)
    grouped: dict[str, list[Article]] = {key: [] for key in TOPICS}
    for article in await db.scalars(stmt):
        grouped.setdefault(article.topic, []).append(article)
    return {k: v for k, v in grouped.items() if v}


# --- search ----------------------------------------------------------------------------------


def query_words(query: str) -> list[str]:
    """The words of a query, folded; everything else (quotes, operators, SQL) is dropped."""
    return _WORD.findall(fold(query[:MAX_QUERY]))[:MAX_WORDS]


def fts5_query(words: list[str]) -> str:
    """An FTS5 query: every word as a quoted string, the last one also as a prefix."""
    parts = [f'"{w}"' for w in words]
    parts[-1] += "*"
    return " ".join(parts)


def tsquery(words: list[str]) -> str:
    """A PostgreSQL tsquery: every word, the last one also as a prefix."""
    return " & ".join([*words[:-1], f"{words[-1]}:*"])


async def search(
    db: AsyncSession, actor: Actor, query: str, *, limit: int = 20, include_drafts: bool | None = None
) -> list[Article]:
    """Articles with every word of the query, best first; with or without diacritics."""
    words = query_words(query)
    if not words:
        return []
    drafts = can_edit(actor) if include_drafts is None else include_drafts
    status = "" if drafts else " AND a.status = 'published'"
    if db.get_bind().dialect.name == "postgresql":
        sql = text(
            "SELECT a.id FROM manual_articles a, to_tsquery('simple', :q) q "
            "WHERE a.search_vector @@ q"
            + status
            + " ORDER BY ts_rank(a.search_vector, q) DESC, a.id LIMIT :n"
        )
        params: dict[str, object] = {"q": tsquery(words), "n": limit}
    else:
        sql = text(
            "SELECT a.id FROM manual_fts JOIN manual_articles a ON a.id = manual_fts.rowid "
            "WHERE manual_fts MATCH :q" + status + " ORDER BY bm25(manual_fts), a.id LIMIT :n"
        )
        params = {"q": fts5_query(words), "n": limit}
    ids = list((await db.execute(sql, params)).scalars())
    if not ids:
        return []
    found = {a.id: a for a in await db.scalars(select(Article).where(Article.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


async def search_like(db: AsyncSession, query: str, *, limit: int | None = 20) -> list[int]:
    """The baseline the benchmark compares with: a LIKE '%word%' scan per word, unranked (None: all)."""
    words = query_words(query)
    if not words:
        return []
    stmt = select(Article.id).where(Article.status == ArticleStatus.PUBLISHED)
    for word in words:
        escaped = word.replace("_", "\\_")
        stmt = stmt.where(Article.search_text.like(f"%{escaped}%", escape="\\"))
    stmt = stmt.order_by(Article.id)
    return list(await db.scalars(stmt if limit is None else stmt.limit(limit)))
