"""The directory as every signed-in person sees it: units and people, searchable."""

from __future__ import annotations

from itertools import groupby

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.directory import service
from meetings.directory.models import ROLE_LABELS, UNIT_KIND_LABELS, UnitKind
from web import keys
from web.access import needs
from web.forms import int_param, whole_number
from web.render import render

routes = web.RouteTableDef()
PAGE = 50


def page_number(request: web.Request) -> int:
    """The ?page= number, at least 1."""
    raw = request.query.get("page", "1")
    return max(1, whole_number(raw, 999_999) or 1)


@routes.get("/directory", name="directory")
@needs(Permission.DIRECTORY_READ)
async def units(request: web.Request) -> web.Response:
    """Units grouped by kind, with a diacritic-insensitive search."""
    q = request.query.get("q", "")[:200]
    kind = request.query.get("kind", "")
    if kind not in {k.value for k in UnitKind}:
        kind = ""
    show_inactive = request.query.get("inactive") == "1"
    async with request.app[keys.DB]() as db:
        found = await service.list_units(db, q=q, kind=kind, include_inactive=show_inactive)
    groups = [(k, list(g)) for k, g in groupby(found, key=lambda u: u.kind)]
    return render(
        request,
        "directory/units.html",
        {
            "groups": groups,
            "q": q,
            "kind": kind,
            "kinds": UNIT_KIND_LABELS,
            "count": len(found),
            "show_inactive": show_inactive,
        },
    )


@routes.get("/directory/units/{id}", name="unit")
@needs(Permission.DIRECTORY_READ)
async def unit(request: web.Request) -> web.Response:
    """One unit and its people."""
    unit_id = int_param(request)
    async with request.app[keys.DB]() as db:
        found = await service.get_unit(db, unit_id)
        people, _total = await service.list_people(db, unit_id=unit_id, include_inactive=True, limit=500)
    return render(
        request,
        "directory/unit.html",
        {"unit": found, "people": people, "kinds": UNIT_KIND_LABELS, "roles": ROLE_LABELS},
    )


@routes.get("/directory/people", name="people")
@needs(Permission.DIRECTORY_READ)
async def people(request: web.Request) -> web.Response:
    """People, searchable by name, email, phone or unit, with or without diacritics."""
    q = request.query.get("q", "")[:200]
    page = page_number(request)
    show_inactive = request.query.get("inactive") == "1"
    async with request.app[keys.DB]() as db:
        found, total = await service.list_people(
            db, q=q, include_inactive=show_inactive, limit=PAGE, offset=(page - 1) * PAGE
        )
    pages = max(1, (total + PAGE - 1) // PAGE)
    return render(
        request,
        "directory/people.html",
        {
            "people": found,
            "q": q,
            "total": total,
            "page": page,
            "pages": pages,
            "roles": ROLE_LABELS,
            "show_inactive": show_inactive,
        },
    )


@routes.get("/directory/people/{id}", name="person")
@needs(Permission.DIRECTORY_READ)
async def person(request: web.Request) -> web.Response:
    """One person."""
    async with request.app[keys.DB]() as db:
        found = await service.get_person(db, int_param(request))
    return render(request, "directory/person.html", {"p": found, "roles": ROLE_LABELS})
