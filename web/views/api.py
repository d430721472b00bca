"""The JSON API of the directory (same domain functions and permissions as the pages)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.directory import csv_import, service
from meetings.directory.models import Person, Unit
from meetings.errors import N_, FieldError, InvalidInput
from web import keys
from web.access import needs
from web.common import actor
from web.forms import int_param, json_object, read_body, text_field, whole_number

routes = web.RouteTableDef()


def unit_json(unit: Unit) -> dict[str, Any]:
    """A unit as the API shows it."""
    return {
        "id": unit.id,
        "code": unit.code,
        "kind": unit.kind.value,
        "name": unit.name,
        "parent_id": unit.parent_id,
        "phone": unit.phone,
        "operator_id": unit.operator_id,
        "active": unit.active,
    }


def person_json(person: Person, unit: Unit | None = None) -> dict[str, Any]:
    """A person as the API shows it (never the password hash)."""
    return {
        "id": person.id,
        "name": person.name,
        "email": person.email,
        "phone": person.phone,
        "title": person.title,
        "unit_id": person.unit_id,
        "unit_code": unit.code if unit else None,
        "role": person.role.value,
        "active": person.active,
        "language": person.language,
    }


def unit_input(data: dict[str, Any]) -> service.UnitInput:
    """A UnitInput from a JSON object."""
    return service.UnitInput(
        code=text_field(data, "code"),
        kind=text_field(data, "kind"),
        name=text_field(data, "name"),
        parent_code=text_field(data, "parent_code"),
        phone=text_field(data, "phone"),
        operator_code=text_field(data, "operator_code"),
    )


def person_input(data: dict[str, Any]) -> service.PersonInput:
    """A PersonInput from a JSON object."""
    return service.PersonInput(
        name=text_field(data, "name"),
        email=text_field(data, "email"),
        unit_code=text_field(data, "unit_code"),
        phone=text_field(data, "phone"),
        title=text_field(data, "title"),
        role=text_field(data, "role", "member"),
        language=text_field(data, "language", "vi"),
    )


@routes.get("/api/me", name="api_me")
@needs(Permission.SIGNED_IN)
async def me(request: web.Request) -> web.Response:
    """The signed-in person."""
    async with request.app[keys.DB]() as db:
        person = await service.get_person(db, actor(request).id)
    return web.json_response(person_json(person, person.unit))


@routes.get("/api/units", name="api_units")
@needs(Permission.DIRECTORY_READ)
async def units(request: web.Request) -> web.Response:
    """Units, optionally filtered by ?q= (diacritics optional) and ?kind=."""
    async with request.app[keys.DB]() as db:
        found = await service.list_units(
            db,
            q=request.query.get("q", "")[:200],
            kind=request.query.get("kind", "")[:16],
            include_inactive=request.query.get("inactive") == "1",
        )
    return web.json_response({"units": [unit_json(u) for u in found], "count": len(found)})


@routes.post("/api/units", name="api_unit_create")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_create(request: web.Request) -> web.Response:
    """Create a unit."""
    data = await json_object(request)
    async with request.app[keys.DB]() as db:
        unit = await service.create_unit(db, actor(request), unit_input(data))
        await db.commit()
    return web.json_response(unit_json(unit), status=201)


@routes.get("/api/units/{id}", name="api_unit")
@needs(Permission.DIRECTORY_READ)
async def unit(request: web.Request) -> web.Response:
    """One unit."""
    async with request.app[keys.DB]() as db:
        found = await service.get_unit(db, int_param(request))
    return web.json_response(unit_json(found))


@routes.put("/api/units/{id}", name="api_unit_update")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_update(request: web.Request) -> web.Response:
    """Replace a unit's fields."""
    unit_id = int_param(request)
    data = await json_object(request)
    async with request.app[keys.DB]() as db:
        found = await service.update_unit(db, actor(request), unit_id, unit_input(data))
        await db.commit()
    return web.json_response(unit_json(found))


@routes.delete("/api/units/{id}", name="api_unit_deactivate")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_deactivate(request: web.Request) -> web.Response:
    """Deactivate a unit (units are never deleted: minutes refer to them)."""
    async with request.app[keys.DB]() as db:
        found = await service.set_unit_active(db, actor(request), int_param(request), False)
        await db.commit()
    return web.json_response(unit_json(found))


@routes.get("/api/people", name="api_people")
@needs(Permission.DIRECTORY_READ)
async def people(request: web.Request) -> web.Response:
    """People, filtered by ?q= and ?unit_id=, paged by ?limit= and ?offset=."""
    q = request.query
    limit = whole_number(q.get("limit", "100"))
    offset = whole_number(q.get("offset", "0"))
    unit_id = whole_number(q["unit_id"]) if q.get("unit_id") else None
    if limit is None or offset is None or (q.get("unit_id") and unit_id is None):
        raise InvalidInput([FieldError("query", N_("limit, offset and unit_id must be whole numbers."))])
    limit = min(500, max(1, limit))
    async with request.app[keys.DB]() as db:
        found, total = await service.list_people(
            db,
            q=q.get("q", "")[:200],
            unit_id=unit_id,
            include_inactive=q.get("inactive") == "1",
            limit=limit,
            offset=offset,
        )
    return web.json_response({"people": [person_json(p, p.unit) for p in found], "total": total})


@routes.post("/api/people", name="api_person_create")
@needs(Permission.DIRECTORY_MANAGE)
async def person_create(request: web.Request) -> web.Response:
    """Create a person; with "password", an account too."""
    data = await json_object(request)
    async with request.app[keys.DB]() as db:
        created = await service.create_person(
            db, actor(request), person_input(data), password=text_field(data, "password")
        )
        await db.commit()
        found = await service.get_person(db, created.id)
    return web.json_response(person_json(found, found.unit), status=201)


@routes.get("/api/people/{id}", name="api_person")
@needs(Permission.DIRECTORY_READ)
async def person(request: web.Request) -> web.Response:
    """One person."""
    async with request.app[keys.DB]() as db:
        found = await service.get_person(db, int_param(request))
    return web.json_response(person_json(found, found.unit))


@routes.put("/api/people/{id}", name="api_person_update")
@needs(Permission.DIRECTORY_MANAGE)
async def person_update(request: web.Request) -> web.Response:
    """Replace a person's fields."""
    person_id = int_param(request)
    data = await json_object(request)
    async with request.app[keys.DB]() as db:
        await service.update_person(db, actor(request), person_id, person_input(data))
        await db.commit()
        found = await service.get_person(db, person_id)
    return web.json_response(person_json(found, found.unit))


@routes.delete("/api/people/{id}", name="api_person_deactivate")
@needs(Permission.DIRECTORY_MANAGE)
async def person_deactivate(request: web.Request) -> web.Response:
    """Deactivate a person (people are never deleted: attendance refers to them)."""
    person_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.set_person_active(db, actor(request), person_id, False)
        await db.commit()
        found = await service.get_person(db, person_id)
    return web.json_response(person_json(found, found.unit))


async def _import(request: web.Request, units: bool) -> web.Response:
    if request.content_type not in {"text/csv", "application/octet-stream"}:
        raise InvalidInput(
            [FieldError("body", N_("Send the CSV file as the body (Content-Type: text/csv)."))]
        )
    data = await read_body(request)
    importer = csv_import.import_units if units else csv_import.import_people
    async with request.app[keys.DB]() as db:
        report = await importer(db, actor(request), data)
        await db.commit()
    return web.json_response(
        {
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "lines": report.lines,
        }
    )


@routes.post("/api/import/units", name="api_import_units")
@needs(Permission.DIRECTORY_MANAGE)
async def import_units(request: web.Request) -> web.Response:
    """Import units from a CSV body, all or nothing."""
    return await _import(request, units=True)


@routes.post("/api/import/people", name="api_import_people")
@needs(Permission.DIRECTORY_MANAGE)
async def import_people(request: web.Request) -> web.Response:
    """Import people from a CSV body, all or nothing."""
    return await _import(request, units=False)
