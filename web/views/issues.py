"""The issue register: the list with filters and the glance panel, one issue, reporting, the JSON API."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from sqlalchemy import select

from meetings.accounts.permissions import Permission
from meetings.directory.models import Unit, UnitKind
from meetings.errors import InvalidInput
from meetings.issues import service
from meetings.issues.models import ISSUE_STATUS_LABELS, IssueStatus
from meetings.manual.models import Article, ArticleSource
from meetings.minutes.models import ISSUE_CATEGORY_LABELS, SEVERITY_LABELS
from web import keys
from web.access import needs
from web.common import actor
from web.forms import form_fields, int_param, json_object, text_field
from web.render import field_errors, render

routes = web.RouteTableDef()


def labels() -> dict[str, Any]:
    """The label maps every register template uses."""
    return {
        "statuses": ISSUE_STATUS_LABELS,
        "categories": ISSUE_CATEGORY_LABELS,
        "severities": SEVERITY_LABELS,
    }


async def _units(request: web.Request) -> tuple[list[Unit], list[Unit]]:
    """Centres (who raise issues) and owners (departments, support teams, telecoms)."""
    async with request.app[keys.DB]() as db:
        units = list(await db.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.code)))
    centres = [u for u in units if u.kind == UnitKind.CENTRE]
    owners = [u for u in units if u.kind != UnitKind.CENTRE]
    return centres, owners


def _wake_mail(request: web.Request) -> None:
    if keys.OUTBOX in request.app:
        request.app[keys.OUTBOX].wake()


@routes.get("/issues", name="issues")
@needs(Permission.MEETINGS_READ)
async def list_page(request: web.Request) -> web.Response:
    """The register: filters, oldest open issues, open issues by age, each owner's load."""
    who = actor(request)
    params = {k: request.query.get(k, "") for k in ("unit", "category", "owner", "status", "age")}
    errors: dict[str, list[str]] = {}
    async with request.app[keys.DB]() as db:
        try:
            filters = service.parse_filters(params)
        except InvalidInput as exc:
            errors = field_errors(exc.errors)
            filters = service.Filters()
        rows = await service.list_issues(db, who, filters)
        glance = await service.at_a_glance(db, who)
        reach = await service.reach_of(db, who)
        await db.commit()  # register rows given to new minutes entries
    centres, owners = await _units(request)
    return render(
        request,
        "issues/list.html",
        {
            "rows": rows,
            "glance": glance,
            "reach": reach,
            "values": params,
            "errors": errors,
            "centres": centres,
            "owners": owners,
            **labels(),
        },
        status=422 if errors else 200,
    )


async def _form(
    request: web.Request, values: dict[str, str], errors: dict[str, list[str]], status: int = 200
) -> web.Response:
    centres, _owners = await _units(request)
    values = {"key": secrets.token_urlsafe(12), **values}
    return render(
        request,
        "issues/new.html",
        {"values": values, "errors": errors, "centres": centres, **labels()},
        status=status,
    )


@routes.get("/issues/new", name="issue_new")
@needs(Permission.ISSUES_REPORT)
async def new_page(request: web.Request) -> web.Response:
    """The form a centre uses to report an issue between meetings."""
    return await _form(request, {}, {})


@routes.post("/issues", name="issue_create")
@needs(Permission.ISSUES_REPORT)
async def create(request: web.Request) -> web.Response:
    """Report an issue; it goes onto the next meeting's agenda."""
    values = await form_fields(request, "text", "category", "severity", "unit", "key")
    async with request.app[keys.DB]() as db:
        try:
            issue = await service.report(db, actor(request), service.ReportInput(**values))
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _form(request, values, field_errors(exc.errors), 422)
    raise web.HTTPSeeOther(request.app.router["issue"].url_for(id=str(issue.id)).with_query(done="reported"))


@routes.get("/issues/{id}", name="issue")
@needs(Permission.MEETINGS_READ)
async def issue_page(request: web.Request) -> web.Response:
    """One issue: its facts, its history across meetings, and what may be done with it."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        row = await service.get_issue(db, who, int_param(request))
        steps = await service.history(db, row.id)
        articles = list(
            await db.execute(
                select(Article.id, Article.question)
                .join(ArticleSource, ArticleSource.article_id == Article.id)
                .where(ArticleSource.issue_id == row.id)
            )
        )
        await db.commit()
    _centres, owners = await _units(request)
    return render(
        request,
        "issues/issue.html",
        {
            "row": row,
            "steps": steps,
            "articles": articles,
            "owners": owners,
            "may_move": service.may_move(who, row),
            "manager": service.manages(who),
            "done": request.query.get("done", ""),
            "status_choices": [
                s
                for s in IssueStatus
                if service.manages(who)
                or s in {IssueStatus.IN_PROGRESS, IssueStatus.RESOLVED}
                or s == row.status
            ],
            **labels(),
        },
    )


async def _assign(request: web.Request, owner: str) -> tuple[int, int]:
    settings = request.app[keys.SETTINGS]
    issue_id = int_param(request)
    async with request.app[keys.DB]() as db:
        _issue, queued = await service.assign(
            db,
            actor(request),
            issue_id,
            owner,
            base_url=settings.base_url,
            sender_email=settings.mail_from,
            sender_name=settings.organizer_name,
        )
        await db.commit()
    _wake_mail(request)
    return issue_id, queued


@routes.post("/issues/{id}/assign", name="issue_assign")
@needs(Permission.ISSUES_MANAGE)
async def assign(request: web.Request) -> web.Response:
    """Give the issue to a department or support team (its people are emailed)."""
    values = await form_fields(request, "owner")
    issue_id, _queued = await _assign(request, values["owner"])
    raise web.HTTPSeeOther(request.app.router["issue"].url_for(id=str(issue_id)).with_query(done="assigned"))


@routes.post("/issues/{id}/status", name="issue_status")
@needs(Permission.ISSUES_REPORT)
async def status(request: web.Request) -> web.Response:
    """Move the issue (in progress, resolved with its resolution, closed, open again)."""
    values = await form_fields(request, "status", "resolution")
    issue_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.set_status(db, actor(request), issue_id, values["status"], values["resolution"])
        await db.commit()
    raise web.HTTPSeeOther(request.app.router["issue"].url_for(id=str(issue_id)).with_query(done="saved"))


# --- JSON API --------------------------------------------------------------------------------


@routes.get("/api/issues", name="api_issues")
@needs(Permission.MEETINGS_READ)
async def api_list(request: web.Request) -> web.Response:
    """The register as JSON, with the same filters as the page."""
    who = actor(request)
    params = {k: request.query.get(k, "") for k in ("unit", "category", "owner", "status", "age")}
    filters = service.parse_filters(params)
    async with request.app[keys.DB]() as db:
        rows = await service.list_issues(db, who, filters)
        reach = await service.reach_of(db, who)
        await db.commit()
    scope = "all" if reach.whole else (reach.unit.code if reach.unit else None)
    return web.json_response({"scope": scope, "issues": [r.data() for r in rows]})


@routes.post("/api/issues", name="api_issue_create")
@needs(Permission.ISSUES_REPORT)
async def api_create(request: web.Request) -> web.Response:
    """Report an issue: {"text", "category", "severity", "unit"?}; Idempotency-Key makes retries safe."""
    data = await json_object(request)
    values = {name: text_field(data, name) for name in ("text", "category", "severity", "unit")}
    key = request.headers.get("Idempotency-Key", "") or text_field(data, "key")
    who = actor(request)
    async with request.app[keys.DB]() as db:
        issue = await service.report(db, who, service.ReportInput(**values, key=key))
        await db.commit()
        row = await service.get_issue(db, who, issue.id)
    return web.json_response({"issue": row.data()}, status=201)


@routes.get("/api/issues/{id}", name="api_issue")
@needs(Permission.MEETINGS_READ)
async def api_issue(request: web.Request) -> web.Response:
    """One issue with its history."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        row = await service.get_issue(db, who, int_param(request))
        steps = await service.history(db, row.id)
        await db.commit()
    return web.json_response({"issue": row.data(), "history": [service.step_data(s) for s in steps]})


@routes.post("/api/issues/{id}/assign", name="api_issue_assign")
@needs(Permission.ISSUES_MANAGE)
async def api_assign(request: web.Request) -> web.Response:
    """Assign: {"owner": "DOST"}; answers the issue and how many mails were queued."""
    data = await json_object(request)
    issue_id, queued = await _assign(request, text_field(data, "owner"))
    async with request.app[keys.DB]() as db:
        row = await service.get_issue(db, actor(request), issue_id)
    return web.json_response({"issue": row.data(), "mails_queued": queued})


@routes.post("/api/issues/{id}/status", name="api_issue_status")
@needs(Permission.ISSUES_REPORT)
async def api_status(request: web.Request) -> web.Response:
    """Move: {"status": "resolved", "resolution": "…"}."""
    data = await json_object(request)
    who = actor(request)
    issue_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.set_status(
            db, who, issue_id, text_field(data, "status"), text_field(data, "resolution")
        )
        await db.commit()
        row = await service.get_issue(db, who, issue_id)
    return web.json_response({"issue": row.data()})
