"""The Public Administration Manual: topics, search, articles, editing, publishing, drafts from issues."""

from __future__ import annotations

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.errors import N_, FieldError, InvalidInput
from meetings.issues.service import code_of
from meetings.manual import service
from meetings.manual.models import ARTICLE_STATUS_LABELS, TOPICS, Article
from web import keys
from web.access import needs
from web.common import actor
from web.forms import form_fields, int_param, whole_number
from web.render import field_errors, render

routes = web.RouteTableDef()
FIELDS = ("topic", "question", "answer")


def _query(request: web.Request) -> str:
    return request.query.get("q", "")[: service.MAX_QUERY]


@routes.get("/manual", name="manual")
@needs(Permission.MEETINGS_READ)
async def manual_page(request: web.Request) -> web.Response:
    """Articles by topic, and ranked search (with or without diacritics)."""
    who = actor(request)
    query = _query(request)
    async with request.app[keys.DB]() as db:
        hits = await service.search(db, who, query) if query.strip() else []
        grouped = await service.by_topic(db, who)
    return render(
        request,
        "manual/index.html",
        {
            "query": query,
            "hits": hits,
            "grouped": grouped,
            "topics": TOPICS,
            "statuses": ARTICLE_STATUS_LABELS,
        },
    )


@routes.get("/api/manual/search", name="api_manual_search")
@needs(Permission.MEETINGS_READ)
async def api_search(request: web.Request) -> web.Response:
    """Ranked search as JSON: ?q=…"""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        hits = await service.search(db, who, _query(request))
    return web.json_response(
        {
            "articles": [
                {
                    "id": a.id,
                    "topic": a.topic,
                    "question": a.question,
                    "answer": a.answer,
                    "status": a.status.value,
                }
                for a in hits
            ]
        }
    )


def _form_page(
    request: web.Request,
    values: dict[str, str],
    errors: dict[str, list[str]],
    article: Article | None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "manual/form.html",
        {"values": values, "errors": errors, "article": article, "topics": TOPICS},
        status=status,
    )


@routes.get("/manual/new", name="manual_new")
@needs(Permission.MANUAL_EDIT)
async def new_page(request: web.Request) -> web.Response:
    """A new article."""
    return _form_page(request, {"topic": request.query.get("topic", "other")}, {}, None)


@routes.post("/manual", name="manual_create")
@needs(Permission.MANUAL_EDIT)
async def create(request: web.Request) -> web.Response:
    """Save a new article as a draft."""
    values = await form_fields(request, *FIELDS)
    async with request.app[keys.DB]() as db:
        try:
            article = await service.create(db, actor(request), service.ArticleInput(**values))
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return _form_page(request, values, field_errors(exc.errors), None, 422)
    raise web.HTTPSeeOther(request.app.router["manual_article"].url_for(id=str(article.id)))


@routes.get("/manual/{id}", name="manual_article")
@needs(Permission.MEETINGS_READ)
async def article_page(request: web.Request) -> web.Response:
    """One article, the issues it came from, and (for editors) its revisions."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        article = await service.get_article(db, who, int_param(request))
        revisions = await service.revisions(db, article.id) if service.can_edit(who) else []
        sources = await service.sources(db, article.id)
    return render(
        request,
        "manual/article.html",
        {
            "article": article,
            "revisions": revisions,
            "sources": [(i, code_of(i)) for i in sources],
            "topics": TOPICS,
            "statuses": ARTICLE_STATUS_LABELS,
            "editor": service.can_edit(who),
        },
    )


@routes.get("/manual/{id}/edit", name="manual_edit")
@needs(Permission.MANUAL_EDIT)
async def edit_page(request: web.Request) -> web.Response:
    """Edit an article (a new revision)."""
    async with request.app[keys.DB]() as db:
        article = await service.get_article(db, actor(request), int_param(request))
    values = {"topic": article.topic, "question": article.question, "answer": article.answer}
    return _form_page(request, values | {"revision": str(article.revision)}, {}, article)


@routes.post("/manual/{id}", name="manual_update")
@needs(Permission.MANUAL_EDIT)
async def update(request: web.Request) -> web.Response:
    """Save a new revision."""
    values = await form_fields(request, *FIELDS, "revision")
    article_id = int_param(request)
    revision = values.pop("revision")
    async with request.app[keys.DB]() as db:
        try:
            number = whole_number(revision)
            if number is None:
                raise InvalidInput([FieldError("revision", N_("This field is not valid."))])
            await service.update(db, actor(request), article_id, service.ArticleInput(**values), number)
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            article = await service.get_article(db, actor(request), article_id)
            return _form_page(
                request, values | {"revision": revision}, field_errors(exc.errors), article, 422
            )
    raise web.HTTPSeeOther(request.app.router["manual_article"].url_for(id=str(article_id)))


@routes.post("/manual/{id}/publish", name="manual_publish")
@needs(Permission.MANUAL_EDIT)
async def publish(request: web.Request) -> web.Response:
    """Publish a reviewed article."""
    article_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.publish(db, actor(request), article_id)
        await db.commit()
    raise web.HTTPSeeOther(request.app.router["manual_article"].url_for(id=str(article_id)))


@routes.post("/issues/{id}/article", name="manual_from_issue")
@needs(Permission.MANUAL_EDIT)
async def from_issue(request: web.Request) -> web.Response:
    """A draft article from a resolved issue, in one step; the editor reviews it next."""
    async with request.app[keys.DB]() as db:
        article = await service.from_issue(db, actor(request), int_param(request))
        await db.commit()
    raise web.HTTPSeeOther(request.app.router["manual_edit"].url_for(id=str(article.id)))
