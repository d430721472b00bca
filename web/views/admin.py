"""Administration: create, edit and deactivate units and people, reset passwords, import, audit."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from meetings import audit
from meetings.accounts import service as accounts
from meetings.accounts.permissions import Permission
from meetings.directory import csv_import, service
from meetings.directory.models import ROLE_LABELS, UNIT_KIND_LABELS, Person, Unit
from meetings.errors import N_, FieldError, InvalidInput
from web import keys
from web.access import needs
from web.common import actor, see_other
from web.forms import form_fields, int_param, read_form, whole_number
from web.render import field_errors, render

routes = web.RouteTableDef()

UNIT_FIELDS = ("code", "kind", "name", "parent_code", "phone", "operator_code")
PERSON_FIELDS = ("name", "email", "unit_code", "phone", "title", "role", "language")


async def _unit_form(
    request: web.Request,
    values: dict[str, str],
    errors: dict[str, list[str]],
    unit: Unit | None,
    status: int = 200,
) -> web.Response:
    async with request.app[keys.DB]() as db:
        units = await service.list_units(db, include_inactive=True)
    return render(
        request,
        "admin/unit_form.html",
        {
            "values": values,
            "errors": errors,
            "unit": unit,
            "kinds": UNIT_KIND_LABELS,
            "units": units,
            "operators": [u for u in units if u.kind.value in service.OPERATOR_KINDS],
        },
        status=status,
    )


@routes.get("/admin/units/new", name="unit_new")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_new(request: web.Request) -> web.Response:
    """The form for a new unit."""
    return await _unit_form(request, dict.fromkeys(UNIT_FIELDS, "") | {"kind": "centre"}, {}, None)


@routes.post("/admin/units/new", name="unit_create")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_create(request: web.Request) -> web.StreamResponse:
    """Create a unit, or show the form again with the fields marked."""
    values = await form_fields(request, *UNIT_FIELDS)
    async with request.app[keys.DB]() as db:
        try:
            unit = await service.create_unit(db, actor(request), service.UnitInput(**values))
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _unit_form(request, values, field_errors(exc.errors), None, 422)
    raise see_other(request, "unit", "created", id=str(unit.id))


@routes.get("/admin/units/{id}/edit", name="unit_edit")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_edit(request: web.Request) -> web.Response:
    """The form to edit a unit."""
    async with request.app[keys.DB]() as db:
        unit = await service.get_unit(db, int_param(request))
    values = {
        "code": unit.code,
        "kind": unit.kind.value,
        "name": unit.name,
        "parent_code": unit.parent.code if unit.parent else "",
        "phone": unit.phone,
        "operator_code": unit.operator.code if unit.operator else "",
    }
    return await _unit_form(request, values, {}, unit)


@routes.post("/admin/units/{id}/edit", name="unit_update")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_update(request: web.Request) -> web.StreamResponse:
    """Save a unit's changes."""
    unit_id = int_param(request)
    values = await form_fields(request, *UNIT_FIELDS)
    async with request.app[keys.DB]() as db:
        try:
            await service.update_unit(db, actor(request), unit_id, service.UnitInput(**values))
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            unit = await service.get_unit(db, unit_id)
            return await _unit_form(request, values, field_errors(exc.errors), unit, 422)
    raise see_other(request, "unit", "saved", id=str(unit_id))


@routes.post("/admin/units/{id}/active", name="unit_active")
@needs(Permission.DIRECTORY_MANAGE)
async def unit_active(request: web.Request) -> web.StreamResponse:
    """Deactivate or reactivate a unit."""
    unit_id = int_param(request)
    fields = await form_fields(request, "active")
    async with request.app[keys.DB]() as db:
        await service.set_unit_active(db, actor(request), unit_id, fields["active"] == "1")
        await db.commit()
    raise see_other(request, "unit", "saved", id=str(unit_id))


async def _person_form(
    request: web.Request,
    values: dict[str, str],
    errors: dict[str, list[str]],
    person: Person | None,
    status: int = 200,
) -> web.Response:
    async with request.app[keys.DB]() as db:
        units = await service.list_units(db)
    return render(
        request,
        "admin/person_form.html",
        {"values": values, "errors": errors, "p": person, "roles": ROLE_LABELS, "units": units},
        status=status,
    )


@routes.get("/admin/people/new", name="person_new")
@needs(Permission.DIRECTORY_MANAGE)
async def person_new(request: web.Request) -> web.Response:
    """The form for a new person."""
    values = dict.fromkeys(PERSON_FIELDS, "") | {"role": "member", "language": "vi", "password": ""}
    values["unit_code"] = request.query.get("unit", "")[:32]
    return await _person_form(request, values, {}, None)


@routes.post("/admin/people/new", name="person_create")
@needs(Permission.DIRECTORY_MANAGE)
async def person_create(request: web.Request) -> web.StreamResponse:
    """Create a person (and an account when a password is given)."""
    values = await form_fields(request, *PERSON_FIELDS, "password")
    password = values.pop("password")
    async with request.app[keys.DB]() as db:
        try:
            person = await service.create_person(
                db, actor(request), service.PersonInput(**values), password=password
            )
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _person_form(request, values | {"password": ""}, field_errors(exc.errors), None, 422)
    raise see_other(request, "person", "created", id=str(person.id))


@routes.get("/admin/people/{id}/edit", name="person_edit")
@needs(Permission.DIRECTORY_MANAGE)
async def person_edit(request: web.Request) -> web.Response:
    """The form to edit a person."""
    async with request.app[keys.DB]() as db:
        person = await service.get_person(db, int_param(request))
    values = {
        "name": person.name,
        "email": person.email,
        "unit_code": person.unit.code if person.unit else "",
        "phone": person.phone,
        "title": person.title,
        "role": person.role.value,
        "language": person.language,
    }
    return await _person_form(request, values, {}, person)


@routes.post("/admin/people/{id}/edit", name="person_update")
@needs(Permission.DIRECTORY_MANAGE)
async def person_update(request: web.Request) -> web.StreamResponse:
    """Save a person's changes."""
    person_id = int_param(request)
    values = await form_fields(request, *PERSON_FIELDS)
    async with request.app[keys.DB]() as db:
        try:
            await service.update_person(db, actor(request), person_id, service.PersonInput(**values))
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            person = await service.get_person(db, person_id)
            return await _person_form(request, values, field_errors(exc.errors), person, 422)
    raise see_other(request, "person", "saved", id=str(person_id))


@routes.post("/admin/people/{id}/active", name="person_active")
@needs(Permission.DIRECTORY_MANAGE)
async def person_active(request: web.Request) -> web.StreamResponse:
    """Deactivate or reactivate a person."""
    person_id = int_param(request)
    fields = await form_fields(request, "active")
    async with request.app[keys.DB]() as db:
        await service.set_person_active(db, actor(request), person_id, fields["active"] == "1")
        await db.commit()
    raise see_other(request, "person", "saved", id=str(person_id))


@routes.post("/admin/people/{id}/password", name="password_reset")
@needs(Permission.ACCOUNTS_MANAGE)
async def password_reset(request: web.Request) -> web.StreamResponse:
    """Set a new password for someone."""
    person_id = int_param(request)
    fields = await form_fields(request, "password")
    async with request.app[keys.DB]() as db:
        try:
            await accounts.reset_password(db, actor(request), person_id, new=fields["password"])
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            person = await service.get_person(db, person_id)
            return render(
                request,
                "directory/person.html",
                {"p": person, "roles": ROLE_LABELS, "errors": field_errors(exc.errors)},
                status=422,
            )
    raise see_other(request, "person", "password", id=str(person_id))


@routes.get("/admin/import", name="directory_import")
@needs(Permission.DIRECTORY_MANAGE)
async def import_form(request: web.Request) -> web.Response:
    """The CSV upload form for units and people."""
    return render(request, "admin/import.html", {"report": None, "errors": [], "what": "units"})


@routes.post("/admin/import", name="import_submit")
@needs(Permission.DIRECTORY_MANAGE)
async def import_submit(request: web.Request) -> web.Response:
    """Import an uploaded CSV all-or-nothing; show what was done or every bad line."""
    form = await read_form(request)
    what = form.text("what") or "units"
    if what not in {"units", "people"}:
        what = "units"
    upload = form.file("file")
    context: dict[str, Any] = {"report": None, "errors": [], "what": what}
    data = upload.data if upload is not None else b""
    if not data:
        context["errors"] = [FieldError("file", N_("Choose a CSV file to upload."))]
        return render(request, "admin/import.html", context, status=422)
    importer = csv_import.import_units if what == "units" else csv_import.import_people
    async with request.app[keys.DB]() as db:
        try:
            context["report"] = await importer(db, actor(request), data)
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            context["errors"] = exc.errors
            return render(request, "admin/import.html", context, status=422)
    return render(request, "admin/import.html", context)


@routes.get("/admin/audit", name="audit")
@needs(Permission.AUDIT_READ)
async def audit_log(request: web.Request) -> web.Response:
    """The newest administrative changes."""
    raw = request.query.get("page", "1")
    page = max(1, whole_number(raw, 999_999) or 1)
    async with request.app[keys.DB]() as db:
        entries, total = await audit.recent(db, limit=100, offset=(page - 1) * 100)
    return render(
        request,
        "admin/audit.html",
        {"entries": entries, "total": total, "page": page, "pages": max(1, (total + 99) // 100)},
    )
