"""Daily figures: the centre's report (form, CSV), the token API, the dashboard, exports, tokens."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, overload

from aiohttp import web
from sqlalchemy import select

from meetings.accounts.permissions import Permission
from meetings.directory.models import Unit, UnitKind
from meetings.errors import N_, FieldError, Forbidden, InvalidInput
from meetings.figures import service, spreadsheet
from web import keys
from web.access import needs, token_authenticated
from web.common import actor
from web.forms import form_fields, int_param, json_object, read_form
from web.render import field_errors, render

routes = web.RouteTableDef()
MAX_UPLOAD = 2 * 1024 * 1024
EXPORTS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def today(request: web.Request) -> date:
    """Today in the service's time zone."""
    return datetime.now(request.app[keys.SETTINGS].tz).date()


@overload
def _day_param(request: web.Request, name: str) -> date | None: ...
@overload
def _day_param(request: web.Request, name: str, default: date) -> date: ...
def _day_param(request: web.Request, name: str, default: date | None = None) -> date | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise InvalidInput([FieldError(name, N_("Write the date as YYYY-MM-DD."))]) from exc


# --- the centre's report ---------------------------------------------------------------------


async def _report_page(
    request: web.Request,
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    *,
    upload_errors: list[FieldError] | None = None,
    status: int = 200,
) -> web.Response:
    who = actor(request)
    day = today(request)
    async with request.app[keys.DB]() as db:
        unit = await service.centre_of(db, who)
        current = await service.report_for(db, unit.id, day)
        history = await service.revisions(db, current.id) if current else []
        recent = await service.recent_reports(db, unit.id)
        backlog = await service.backlog_before(db, unit.id, day)
    if values is None:
        values = {"day": day.isoformat()}
        if current is not None:
            values |= {n: str(getattr(current, n)) for n in ("received", "resolved", "overdue", "backlog")}
    return render(
        request,
        "figures/report.html",
        {
            "unit": unit,
            "values": values,
            "errors": errors or {},
            "upload_errors": upload_errors or [],
            "columns": spreadsheet.COLUMN_LABELS,
            "vietnamese_names": ", ".join(spreadsheet.VIETNAMESE_NAMES.values()),
            "current": current,
            "history": history,
            "recent": recent,
            "backlog": backlog,
            "today": day,
            "done": request.query.get("done", ""),
        },
        status=status,
    )


@routes.get("/figures/report", name="figures_report")
@needs(Permission.REPORT_FIGURES)
async def report_page(request: web.Request) -> web.Response:
    """The centre's figures for today: the form, its corrections, the last reports, CSV upload."""
    return await _report_page(request)


@routes.post("/figures/report", name="figures_report_submit")
@needs(Permission.REPORT_FIGURES)
async def report_submit(request: web.Request) -> web.Response:
    """Save the day's figures (a same-day correction keeps the earlier version)."""
    values = await form_fields(request, "day", "received", "resolved", "overdue", "backlog")
    who = actor(request)
    tz = request.app[keys.SETTINGS].tz
    async with request.app[keys.DB]() as db:
        try:
            unit = await service.centre_of(db, who)
            figures = service.clean(dict(values), today(request))
            outcome = await service.submit(
                db, unit, figures, source="form", by=who.name, person_id=who.id, tz=tz
            )
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _report_page(request, values, field_errors(exc.errors), status=422)
    raise web.HTTPSeeOther(request.app.router["figures_report"].url_for().with_query(done=outcome.result))


@routes.post("/figures/upload", name="figures_upload")
@needs(Permission.REPORT_FIGURES)
async def upload(request: web.Request) -> web.Response:
    """A CSV of figures for the centre: all lines stored, or none (errors by line number)."""
    upload = (await read_form(request)).file("file")
    raw = upload.data if upload is not None else b""
    who = actor(request)
    tz = request.app[keys.SETTINGS].tz
    async with request.app[keys.DB]() as db:
        try:
            if not raw:
                raise InvalidInput([FieldError("file", N_("Choose a CSV file."), line=None)])
            if len(raw) > MAX_UPLOAD:
                raise InvalidInput([FieldError("file", N_("The file is too large."), line=None)])
            outcomes = await service.upload_csv(db, who, raw, tz=tz)
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _report_page(request, upload_errors=exc.errors, status=422)
    done = "uploaded" if any(o.result != "unchanged" for o in outcomes) else "unchanged"
    raise web.HTTPSeeOther(request.app.router["figures_report"].url_for().with_query(done=done))


@routes.post("/api/figures", name="api_figures_report")
@needs(Permission.PUBLIC)
@token_authenticated
async def api_report(request: web.Request) -> web.Response:
    """Automatic reports: Authorization: Bearer <centre token>; {"day", "received", "resolved", …}."""
    scheme, _sp, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(
            text='{"error": {"status": 401, "message": "Bearer token required"}}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="figures"'},
        )
    tz = request.app[keys.SETTINGS].tz
    async with request.app[keys.DB]() as db:
        unit = await service.unit_of_token(db, token.strip())
        data = await json_object(request)
        centre = data.get("centre")
        if centre is not None and (
            not isinstance(centre, str) or centre.strip().upper() != unit.code.upper()
        ):
            raise Forbidden(N_("A token reports for its own centre only."))
        figures = service.clean(data, today(request))
        outcome = await service.submit(
            db, unit, figures, source="api", by=f"token:{unit.code}", person_id=None, tz=tz
        )
        await db.commit()
        body = {"result": outcome.result, "report": service.report_data(outcome.report, unit)}
    return web.json_response(body, status=201 if outcome.result == "created" else 200)


# --- dashboard and exports -------------------------------------------------------------------


@routes.get("/figures", name="figures")
@needs(Permission.FIGURES_READ)
async def dashboard_page(request: web.Request) -> web.Response:
    """The morning meeting's dashboard: totals, rate, ranking, who has not reported, the trend."""
    day = _day_param(request, "day")
    async with request.app[keys.DB]() as db:
        board = await service.dashboard_for(db, today(request), day)
    return render(
        request,
        "figures/dashboard.html",
        {
            "board": board,
            "chart": service.trend_chart(board.weeks),
            "previous": board.day - timedelta(days=1),
            "next": board.day + timedelta(days=1),
        },
    )


def board_data(board: service.Dashboard) -> dict[str, Any]:
    """A dashboard as plain data."""
    return {
        "day": board.day.isoformat(),
        "working_day": board.working,
        "holiday": board.holiday,
        "off_days_reported": [{"day": d.isoformat(), "centres": n} for d, n in board.off_days],
        "received": board.received,
        "resolved": board.resolved,
        "overdue": board.overdue,
        "backlog": board.backlog,
        "rate": round(board.rate, 4),
        "ranking": [
            {
                "centre": c.unit.code,
                "received": c.received,
                "resolved": c.resolved,
                "overdue": c.overdue,
                "rate": round(c.rate, 4),
            }
            for c in board.ranking
        ],
        "missing": [u.code for u in board.missing],
        "weeks": [
            {
                "monday": w.monday.isoformat(),
                "received": w.received,
                "resolved": w.resolved,
                "overdue": w.overdue,
            }
            for w in board.weeks
        ],
    }


@routes.get("/api/figures", name="api_figures")
@needs(Permission.FIGURES_READ)
async def api_dashboard(request: web.Request) -> web.Response:
    """The dashboard as JSON (?day=YYYY-MM-DD; by default the last working day reported before today)."""
    day = _day_param(request, "day")
    async with request.app[keys.DB]() as db:
        board = await service.dashboard_for(db, today(request), day)
    return web.json_response(board_data(board))


@routes.get("/figures/export/{format}", name="figures_export")
@needs(Permission.FIGURES_READ)
async def export(request: web.Request) -> web.Response:
    """Every report between two days as CSV or XLSX (?from=&to=, the last 30 days by default)."""
    fmt = request.match_info["format"]
    if fmt not in EXPORTS:
        raise web.HTTPNotFound()
    last = _day_param(request, "to", today(request))
    first = _day_param(request, "from", last - timedelta(days=30))
    if first > last or (last - first).days > 400:
        raise InvalidInput([FieldError("from", N_("Choose at most a year, from an earlier to a later day."))])
    async with request.app[keys.DB]() as db:
        rows = await service.export_rows(db, first, last)
    body = service.to_csv(rows) if fmt == "csv" else service.to_xlsx(rows)
    name = f"so-lieu-{first.isoformat()}-{last.isoformat()}.{fmt}"
    return web.Response(
        body=body,
        headers={"Content-Type": EXPORTS[fmt], "Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- tokens ----------------------------------------------------------------------------------


async def _tokens_page(
    request: web.Request, new_token: str = "", status: int = 200, errors: dict[str, list[str]] | None = None
) -> web.Response:
    async with request.app[keys.DB]() as db:
        rows = await service.tokens(db)
        centres = list(
            await db.scalars(
                select(Unit).where(Unit.kind == UnitKind.CENTRE, Unit.active.is_(True)).order_by(Unit.code)
            )
        )
    return render(
        request,
        "figures/tokens.html",
        {"rows": rows, "centres": centres, "new_token": new_token, "errors": errors or {}},
        status=status,
    )


@routes.get("/figures/tokens", name="figures_tokens")
@needs(Permission.FIGURES_TOKENS)
async def tokens_page(request: web.Request) -> web.Response:
    """The centres' API tokens."""
    return await _tokens_page(request)


@routes.post("/figures/tokens", name="figures_token_create")
@needs(Permission.FIGURES_TOKENS)
async def token_create(request: web.Request) -> web.Response:
    """Issue a token for a centre; it is shown once."""
    values = await form_fields(request, "unit")
    async with request.app[keys.DB]() as db:
        try:
            token, _row = await service.issue_token(db, actor(request), values["unit"])
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _tokens_page(request, status=422, errors=field_errors(exc.errors))
    return await _tokens_page(request, token)


@routes.post("/figures/tokens/{id}/revoke", name="figures_token_revoke")
@needs(Permission.FIGURES_TOKENS)
async def token_revoke(request: web.Request) -> web.Response:
    """Stop a token from working."""
    async with request.app[keys.DB]() as db:
        await service.revoke_token(db, actor(request), int_param(request))
        await db.commit()
    raise web.HTTPSeeOther(request.app.router["figures_tokens"].url_for())
