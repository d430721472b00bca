"""Rendering: template context, JSON answers, error pages and form errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.exc import DBAPIError, IntegrityError

from meetings import i18n
from meetings.accounts.permissions import Permission, allowed
from meetings.db.engine import is_locked
from meetings.errors import N_, DomainError, FieldError, InvalidInput
from web import csrf, keys

STATUS_TITLES = {
    400: N_("The request could not be understood."),
    401: N_("Please sign in."),
    403: N_("You may not open this page."),
    404: N_("This page does not exist."),
    405: N_("This action is not allowed here."),
    409: N_("This conflicts with the current state."),
    413: N_("The upload is too large."),
    422: N_("Please correct the marked fields."),
    429: N_("Too many attempts. Please wait and try again."),
    500: N_("Something went wrong on our side. It has been logged."),
    503: N_("The server is busy. Please try again in a moment."),
}


RACED = N_("Someone else changed this at the same moment. Reload the page and try again.")
# PostgreSQL's serialization failure and deadlock: the transaction lost a race, nothing is broken.
RACE_SQLSTATES = {"40001", "40P01"}


def database_clash(error: BaseException) -> tuple[int, str] | None:
    """A database error that only means "someone else was first" or "busy", as (status, msgid):
    a unique or foreign key clash or a lost race is a 409, SQLite still locked a 503."""
    if isinstance(error, IntegrityError):
        return 409, RACED
    if is_locked(error):
        return 503, STATUS_TITLES[503]
    if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in RACE_SQLSTATES:
        return 409, RACED
    return None


def jsonable(value: Any) -> Any:
    """A structure of dicts and lists with its datetimes as ISO 8601 text, ready for JSON."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' escaped, so "</script>" cannot end it."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def wants_json(request: web.Request) -> bool:
    """True for the JSON API and for clients that ask for JSON."""
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def base_context(request: web.Request) -> dict[str, Any]:
    """What every template gets: the person, their permissions, CSRF token, language."""
    person = request.get(keys.PERSON)
    secret = request.app[keys.SETTINGS].secret_key
    seed = request.get(keys.CSRF_SEED, "")
    role = person.role if person else None
    return {
        "request": request,
        "person": person,
        "can": lambda name: allowed(role, Permission(name)),
        "csrf_token": csrf.token_for(secret, seed) if seed else "",
        "language": request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE),
        "languages": i18n.LANGUAGES,
        "request_path": request.path_qs,
        "tz": request.app[keys.SETTINGS].tz,
    }


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """Render a page template with the base context."""
    ctx = base_context(request)
    ctx.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def field_errors(errors: list[FieldError]) -> dict[str, list[str]]:
    """Translated messages per field, for marking a form."""
    marked: dict[str, list[str]] = {}
    for e in errors:
        marked.setdefault(e.field, []).append(i18n.gettext(e.message, **e.params))
    return marked


def errors_json(errors: list[FieldError]) -> list[dict[str, Any]]:
    """Translated field errors for the JSON API."""
    return [
        {
            "field": e.field,
            "message": i18n.gettext(e.message, **e.params),
            **({"line": e.line} if e.line else {}),
        }
        for e in errors
    ]


def error_response(
    request: web.Request, status: int, message: str = "", *, exc: DomainError | None = None
) -> web.Response:
    """A clear error: JSON for the API, an HTML page otherwise, in the request's language."""
    with i18n.language(request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)):
        if not message:
            message = i18n.gettext(STATUS_TITLES.get(status, STATUS_TITLES[400 if status < 500 else 500]))
        if wants_json(request):
            body: dict[str, Any] = {"error": {"status": status, "message": message}}
            if isinstance(exc, InvalidInput):
                body["error"]["fields"] = errors_json(exc.errors)
            return web.json_response(body, status=status)
        try:
            return render(
                request,
                "error.html",
                {
                    "status": status,
                    "message": message,
                    "errors": exc.errors if isinstance(exc, InvalidInput) else [],
                },
                status=status,
            )
        except Exception:  # the error page itself must never fail
            return web.Response(text=f"{status}: {message}", status=status)
