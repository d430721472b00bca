"""Minutes: pages (read, edit, versions, history, search), the JSON API, exports and the live socket.

Handlers parse, call meetings.minutes, commit, then push the change to the live viewers.
A stale save answers 409 with the current entry, over HTTP and over the WebSocket alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, assert_never

from aiohttp import WSMsgType, web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import i18n
from meetings.accounts.permissions import Actor, Permission
from meetings.directory.models import Person, Unit
from meetings.errors import N_, DomainError, FieldError, Forbidden, InvalidInput, NotFound
from meetings.live import minutes as protocol
from meetings.live.minutes import MinutesHub
from meetings.minutes import attendance as minutes_attendance
from meetings.minutes import export, service, workflow
from meetings.minutes.models import (
    CHANGE_LABELS,
    ENTRY_KIND_LABELS,
    ENTRY_STATUS_LABELS,
    ISSUE_CATEGORY_LABELS,
    MINUTES_STATUS_LABELS,
    SEVERITY_LABELS,
    Minutes,
    MinutesStatus,
    MinutesVersion,
)
from meetings.minutes.templates import sections_of
from meetings.schedule.models import OccurrenceState
from meetings.schedule.service import get_occurrence
from meetings.wire import ServerMessage, encode
from web import keys
from web.access import needs
from web.common import actor, origin_allowed
from web.forms import int_param, json_object, parse_json, read_form, whole_number
from web.labels import date_text
from web.minutes_live import Viewer
from web.render import STATUS_TITLES, database_clash, errors_json, jsonable, render, script_json

routes = web.RouteTableDef()
log = logging.getLogger("giaoban.minutes")
MAX_WS_MESSAGE = 64 * 1024
FORMATS = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
    "md": "text/markdown; charset=utf-8",
}

# Every text the editing page's JavaScript shows, by key; rendered translated into the page.
STRINGS: dict[str, str] = {
    "saved": N_("Saved"),
    "saving": N_("Saving…"),
    "conflict": N_("Someone else changed this entry first. Here is the current text."),
    "use_theirs": N_("Use their text"),
    "keep_mine": N_("Save my text over it"),
    "offline": N_("Connection lost; reconnecting…"),
    "online": N_("Live"),
    "close": N_("Close"),
    "reopen": N_("Reopen"),
    "delete": N_("Delete"),
    "history": N_("History"),
    "up": N_("Move up"),
    "down": N_("Move down"),
    "error": N_("Not saved"),
    "header_conflict": N_("Someone else changed the header first. Reload to see it."),
}


def hub(request: web.Request) -> MinutesHub:
    """This node's live viewers."""
    return request.app[keys.MINUTES_HUB]


def header_push(minutes: Minutes) -> protocol.Header:
    """The header as pushed to live viewers (the frozen room records stay on the server)."""
    header = {k: v for k, v in minutes.header.items() if k != minutes_attendance.ROOM_KEY}
    return protocol.Header(header, minutes.header_version)


async def live_state(db: AsyncSession, minutes: Minutes) -> dict[str, Any]:
    """The live minutes: status, header, sections with entries, carried items, versions."""
    data = await workflow.content(db, minutes)
    versions = await workflow.versions(db, minutes.id)
    return {
        **data,
        "status": minutes.status.value,
        "header_version": minutes.header_version,
        "versions": [
            {
                "number": v.number,
                "sha256": v.sha256,
                "approved_by": v.approved_by_name,
                "approved_at": v.approved_at.isoformat(),
                "published_at": v.published_at.isoformat() if v.published_at else None,
            }
            for v in versions
        ],
    }


async def _reader_version(db: AsyncSession, who: Actor, minutes: Minutes) -> MinutesVersion | None:
    """What this person reads: None for the live minutes (editors, and invitees during the
    meeting), else the newest published version."""
    await service.check_read(db, who, minutes, live=True)
    if service.can_edit(who):
        return None
    occ = await get_occurrence(db, minutes.occurrence_id)
    if (
        occ.state in {OccurrenceState.OPEN, OccurrenceState.IN_PROGRESS}
        and minutes.status in service.EDITABLE
    ):
        return None
    version = await workflow.newest_published(db, minutes.id)
    if version is None:
        raise NotFound(N_("These minutes are not published yet."))
    return version


async def readable(db: AsyncSession, who: Actor, minutes: Minutes) -> dict[str, Any]:
    """What this person reads: the live minutes for editors (and invitees during the meeting),
    else the newest published version."""
    found = await _reader_version(db, who, minutes)
    if found is None:
        return await live_state(db, minutes)
    return {**workflow.version_content(found), "status": MinutesStatus.PUBLISHED.value, "versions": []}


async def document(
    db: AsyncSession, who: Actor, minutes: Minutes
) -> tuple[dict[str, Any], MinutesVersion | None]:
    """What the default download gives: approved or published minutes as their approved version
    (with its approval line); a draft, or a correction in progress, as that draft."""
    found = await _reader_version(db, who, minutes) or await workflow.record_version(db, minutes)
    if found is None:
        return await workflow.content(db, minutes), None
    return workflow.version_content(found), found


def page_context() -> dict[str, Any]:
    """Labels the minutes templates show."""
    return {
        "kinds": ENTRY_KIND_LABELS,
        "categories": ISSUE_CATEGORY_LABELS,
        "severities": SEVERITY_LABELS,
        "statuses": MINUTES_STATUS_LABELS,
        "entry_statuses": ENTRY_STATUS_LABELS,
        "change_labels": CHANGE_LABELS,
        "section_labels": {s.key: s.label for t in ("morning", "afternoon", "adhoc") for s in sections_of(t)},
        "attendance_states": minutes_attendance.STATE_LABELS,
    }


# --- pages -----------------------------------------------------------------------------------


@routes.get("/minutes", name="minutes_list")
@needs(Permission.MEETINGS_READ)
async def list_page(request: web.Request) -> web.Response:
    """The newest minutes, and a search across all of them."""
    who = actor(request)
    query = request.query.get("q", "")[:200]
    async with request.app[keys.DB]() as db:
        rows = await service.list_minutes(db, who)
        hits = await service.search(db, who, query) if query.strip() else []
    return render(
        request,
        "minutes/list.html",
        {"rows": rows, "query": query, "hits": hits, **page_context()},
    )


@routes.get("/meetings/occurrences/{id}/minutes", name="occurrence_minutes")
@needs(Permission.MEETINGS_READ)
async def occurrence_minutes(request: web.Request) -> web.Response:
    """The minutes of a meeting: created on first visit by the secretary or the chair."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        occ = await get_occurrence(db, int_param(request))
        if service.can_edit(who):
            minutes = await service.ensure_minutes(db, occ)
            await db.commit()
        else:
            found = await service.minutes_of(db, occ.id)
            if found is None:
                raise NotFound(N_("These minutes do not exist."))
            minutes = found
    raise web.HTTPSeeOther(str(request.app.router["minutes"].url_for(id=str(minutes.id))))


async def _read_view(
    request: web.Request,
    minutes_id: int,
    *,
    warning: minutes_attendance.AttendanceDisagrees | None = None,
    action: str = "",
) -> web.Response:
    who = actor(request)
    async with request.app[keys.DB]() as db:
        minutes = await service.get_minutes(db, minutes_id)
        if minutes.status in service.EDITABLE and service.can_edit(who):
            await service.sync_carried(db, minutes)
            await db.commit()
        data = await readable(db, who, minutes)
    return render(
        request,
        "minutes/view.html",
        {
            "minutes": minutes,
            "data": data,
            "version": None,
            "editor": service.can_edit(who),
            "differences": [minutes_attendance.difference_data(d) for d in warning.differences]
            if warning
            else [],
            "confirm_action": action,
            **page_context(),
        },
        status=409 if warning else 200,
    )


@routes.get("/minutes/{id}", name="minutes")
@needs(Permission.MEETINGS_READ)
async def minutes_page(request: web.Request) -> web.Response:
    """The minutes, read view (live for editors, the published version for members)."""
    return await _read_view(request, int_param(request))


@routes.get("/minutes/{id}/edit", name="minutes_edit")
@needs(Permission.MINUTES_EDIT)
async def edit_page(request: web.Request) -> web.Response:
    """The secretary's live editing page."""
    async with request.app[keys.DB]() as db:
        minutes = await service.get_minutes(db, int_param(request))
        if minutes.status in service.EDITABLE:
            await service.sync_carried(db, minutes)
            await db.commit()
        data = await live_state(db, minutes)
        units = list(await db.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.code)))
    if minutes.status not in service.EDITABLE:  # approved: locked, read it instead
        raise web.HTTPSeeOther(str(request.app.router["minutes"].url_for(id=str(minutes.id))))
    strings = {k: i18n.gettext(v) for k, v in STRINGS.items()}
    strings.update({f"kind_{k.value}": i18n.gettext(v) for k, v in ENTRY_KIND_LABELS.items()})
    strings.update({f"section_{s.key}": i18n.gettext(s.label) for s in sections_of(minutes.template)})
    return render(
        request,
        "minutes/edit.html",
        {
            "minutes": minutes,
            "data": data,
            "units": units,
            "sections": sections_of(minutes.template),
            "strings_json": script_json(strings),
            "state_json": script_json(jsonable(data)),
            **page_context(),
        },
    )


@routes.get("/minutes/{id}/versions/{number}", name="minutes_version")
@needs(Permission.MEETINGS_READ)
async def version_page(request: web.Request) -> web.Response:
    """One approved version, as approved."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        minutes = await service.get_minutes(db, int_param(request))
        await service.check_read(db, who, minutes)
        version = await workflow.get_version(db, minutes.id, int_param(request, "number"))
        if not service.can_edit(who) and version.published_at is None:
            raise NotFound(N_("This version does not exist."))
    data = {**workflow.version_content(version), "status": "", "versions": []}
    return render(
        request,
        "minutes/view.html",
        {"minutes": minutes, "data": data, "version": version, "editor": False, **page_context()},
    )


@routes.get("/minutes/{id}/entries/{entry}/history", name="minutes_entry_history")
@needs(Permission.MEETINGS_READ)
async def history_page(request: web.Request) -> web.Response:
    """Every change of one entry: who, when, before, after."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        minutes, entry, changes = await _history(db, who, request)
        data = await service.entry_data(db, entry)
        names = await _names(db, changes)
    shown = [
        {
            **c,
            "before": _shown(c["before"], names),
            # A creation lists what was set, not every empty field.
            "after": _shown(c["after"], names, skip_empty=not c["before"]),
        }
        for c in changes
    ]
    return render(
        request,
        "minutes/history.html",
        {"minutes": minutes, "entry": data, "changes": shown, **page_context()},
    )


# The fields of an entry's history as a person reads them (the stored values are codes and ids).
CHANGE_FIELDS = {
    "kind": N_("Kind"),
    "section": N_("Section"),
    "text": N_("Text"),
    "unit_id": N_("Unit"),
    "category": N_("Category"),
    "severity": N_("Severity"),
    "owner_unit_id": N_("Owner unit"),
    "owner_person_id": N_("Owner"),
    "due_date": N_("Due date"),
    "link_id": N_("Answers entry"),
    "status": N_("Status"),
    "position": N_("Position"),
    "deleted": N_("Deleted"),
}


async def _names(db: AsyncSession, changes: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """The names of the units and people a history mentions, by ("unit"|"person", id)."""
    ids: dict[str, set[int]] = {"unit": set(), "person": set()}
    for change in changes:
        for values in (change["before"], change["after"]):
            for field, key in (("unit_id", "unit"), ("owner_unit_id", "unit"), ("owner_person_id", "person")):
                if isinstance(values.get(field), int):
                    ids[key].add(values[field])
    names: dict[tuple[str, int], str] = {}
    if ids["unit"]:
        for uid, name in await db.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ids["unit"]))):
            names[("unit", uid)] = name
    if ids["person"]:
        rows = await db.execute(select(Person.id, Person.name).where(Person.id.in_(ids["person"])))
        for pid, name in rows:
            names[("person", pid)] = name
    return names


def _shown(
    values: dict[str, Any], names: dict[tuple[str, int], str], *, skip_empty: bool = False
) -> list[tuple[str, str]]:
    """(field label, value) pairs of one side of a change, translated, units and people by name."""
    labels: dict[str, Any] = {
        "kind": ENTRY_KIND_LABELS,
        "category": ISSUE_CATEGORY_LABELS,
        "severity": SEVERITY_LABELS,
        "status": ENTRY_STATUS_LABELS,
        "section": {s.key: s.label for t in ("morning", "afternoon", "adhoc") for s in sections_of(t)},
    }
    shown = []
    for field, value in values.items():
        if skip_empty and (value is None or value == "" or value is False):
            continue
        if value is None or value == "":
            text = "—"
        elif field in labels and value in labels[field]:
            text = i18n.gettext(labels[field][value])
        elif field in {"unit_id", "owner_unit_id", "owner_person_id"} and isinstance(value, int):
            text = names.get(("person" if field == "owner_person_id" else "unit", value), "—")
        elif field == "due_date":
            text = date_text(str(value))
        elif isinstance(value, bool):
            text = i18n.gettext(N_("Yes") if value else N_("No"))
        else:
            text = str(value)
        shown.append((i18n.gettext(CHANGE_FIELDS.get(field, field)), text))
    return shown


async def _history(
    db: AsyncSession, who: Actor, request: web.Request
) -> tuple[Minutes, Any, list[dict[str, Any]]]:
    minutes = await service.get_minutes(db, int_param(request))
    await service.check_read(db, who, minutes, live=True)
    entry = await service.get_entry(db, int_param(request, "entry"))
    carried = {e.id for e in await service.carried_entries(db, minutes.id)}
    if entry.minutes_id != minutes.id and entry.id not in carried:
        raise NotFound(N_("This entry does not exist."))
    return minutes, entry, [service.change_data(c) for c in await service.history(db, entry.id)]


@routes.get("/minutes/{id}/export/{format}", name="minutes_export")
@needs(Permission.MEETINGS_READ)
async def export_file(request: web.Request) -> web.Response:
    """The minutes as DOCX, PDF or Markdown: by default the record as it stands (the approved
    version of approved or published minutes, else the draft, marked as one); ?version=N for one
    approved version."""
    fmt = request.match_info["format"]
    if fmt not in FORMATS:
        raise NotFound(N_("This page does not exist."))
    who = actor(request)
    raw = request.query.get("version", "")
    async with request.app[keys.DB]() as db:
        minutes = await service.get_minutes(db, int_param(request))
        version: MinutesVersion | None
        number = whole_number(raw, 99_999)
        if number is not None:
            await service.check_read(db, who, minutes)
            version = await workflow.get_version(db, minutes.id, number)
            if not service.can_edit(who) and version.published_at is None:
                raise NotFound(N_("This version does not exist."))
            data = workflow.version_content(version)
        else:
            data, version = await document(db, who, minutes)
        approval = workflow.approval_of(version, await workflow.zone_of(db, minutes)) if version else None
    loop = asyncio.get_running_loop()
    if fmt == "docx":
        body = await loop.run_in_executor(None, export.to_docx, data, approval)
    elif fmt == "pdf":
        body = await loop.run_in_executor(None, export.to_pdf, data, approval)
    else:
        body = export.to_markdown(data, approval).encode("utf-8")
    name = f"{export.file_stem(data, approval)}.{fmt}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": FORMATS[fmt],
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# --- workflow (forms) ------------------------------------------------------------------------


async def _workflow(request: web.Request, action: str) -> web.Response:
    who = actor(request)
    minutes_id = int_param(request)
    settings = request.app[keys.SETTINGS]
    form = await read_form(request)
    confirmed = form.text("confirm_attendance") == "1"
    try:
        status = await _run_workflow(request, who, minutes_id, action, confirmed, settings)
    except minutes_attendance.AttendanceDisagrees as warning:
        # Not a silent pass: the page shows the differences and asks to confirm them.
        return await _read_view(request, minutes_id, warning=warning, action=action)
    if action == "publish" and keys.OUTBOX in request.app:
        request.app[keys.OUTBOX].wake()
    hub(request).push(minutes_id, protocol.Status(status))
    # Leave the transaction first, then redirect (a redirect raised inside would roll back).
    raise web.HTTPSeeOther(str(request.app.router["minutes"].url_for(id=str(minutes_id))))


async def _run_workflow(
    request: web.Request, who: Actor, minutes_id: int, action: str, confirmed: bool, settings: Any
) -> str:
    async with request.app[keys.DB]() as db:
        if action == "submit":
            await workflow.submit(db, who, minutes_id, confirmed=confirmed)
        elif action == "return":
            await workflow.return_to_draft(db, who, minutes_id)
        elif action == "approve":
            await workflow.approve(db, who, minutes_id, confirmed=confirmed)
        elif action == "correct":
            await workflow.correct(db, who, minutes_id)
        else:
            await workflow.publish(
                db,
                who,
                minutes_id,
                base_url=settings.base_url,
                sender_email=settings.mail_from,
                sender_name=settings.organizer_name,
            )
        minutes = await service.get_minutes(db, minutes_id)
        status = minutes.status.value
        await db.commit()
    return status


@routes.post("/minutes/{id}/submit", name="minutes_submit")
@needs(Permission.MINUTES_EDIT)
async def submit(request: web.Request) -> web.Response:
    """Hand the draft to the chair."""
    return await _workflow(request, "submit")


@routes.post("/minutes/{id}/return", name="minutes_return")
@needs(Permission.MINUTES_EDIT)
async def return_to_draft(request: web.Request) -> web.Response:
    """Take submitted minutes back to the draft."""
    return await _workflow(request, "return")


@routes.post("/minutes/{id}/approve", name="minutes_approve")
@needs(Permission.MINUTES_APPROVE)
async def approve(request: web.Request) -> web.Response:
    """The chair approves."""
    return await _workflow(request, "approve")


@routes.post("/minutes/{id}/publish", name="minutes_publish")
@needs(Permission.MINUTES_EDIT)
async def publish(request: web.Request) -> web.Response:
    """Mail the approved version to every invitee."""
    return await _workflow(request, "publish")


@routes.post("/minutes/{id}/correct", name="minutes_correct")
@needs(Permission.MINUTES_EDIT)
async def correct(request: web.Request) -> web.Response:
    """Open a correction: the next version, as a draft."""
    return await _workflow(request, "correct")


# --- JSON API --------------------------------------------------------------------------------


def conflict_response(exc: service.EntryConflict) -> web.Response:
    """409 with the current entry, so the editor sees what is there now."""
    return web.json_response(
        {"error": {"status": 409, "message": i18n.gettext(exc.message), "current": exc.current}}, status=409
    )


@routes.get("/api/minutes/{id}", name="api_minutes")
@needs(Permission.MEETINGS_READ)
async def api_minutes(request: web.Request) -> web.Response:
    """The minutes as JSON (the room's read-only panel polls or subscribes to /minutes/{id}/ws)."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        minutes = await service.get_minutes(db, int_param(request))
        data = await readable(db, who, minutes)
    return web.json_response(jsonable(data))


@routes.get("/api/occurrences/{id}/minutes", name="api_occurrence_minutes")
@needs(Permission.MEETINGS_READ)
async def api_occurrence_minutes(request: web.Request) -> web.Response:
    """The minutes of a meeting as JSON; created on first call by the secretary or the chair."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        occ = await get_occurrence(db, int_param(request))
        if service.can_edit(who):
            minutes = await service.ensure_minutes(db, occ)
            await db.commit()
        else:
            found = await service.minutes_of(db, occ.id)
            if found is None:
                raise NotFound(N_("These minutes do not exist."))
            minutes = found
        data = await readable(db, who, minutes)
    return web.json_response(jsonable({**data, "ws": f"/minutes/{minutes.id}/ws"}))


@routes.get("/api/search/minutes", name="api_minutes_search")
@needs(Permission.MEETINGS_READ)
async def api_search(request: web.Request) -> web.Response:
    """Entries matching every word of ?q=, with or without diacritics."""
    who = actor(request)
    async with request.app[keys.DB]() as db:
        hits = await service.search(db, who, request.query.get("q", ""))
        results = [
            {
                "minutes_id": h.minutes.id,
                "title": h.title,
                "date": h.minutes.header.get("date", ""),
                "entry": await service.entry_data(db, h.entry),
            }
            for h in hits
        ]
    return web.json_response({"results": results})


@routes.post("/api/minutes/{id}/entries", name="api_minutes_entry_create")
@needs(Permission.MINUTES_EDIT)
async def api_entry_create(request: web.Request) -> web.Response:
    """Add an entry: 201; the same idempotency key again (body "key" or an Idempotency-Key
    header) answers 200 with the entry the first add made. The route is the action: a body's
    "op" is not read."""
    data = await json_object(request)
    if "key" not in data and request.headers.get("Idempotency-Key"):
        data["key"] = request.headers["Idempotency-Key"]
    edit = protocol.parse_edit(data, op="add")
    try:
        result = await apply_edit(request.app, actor(request), int_param(request), edit)
    except service.EntryConflict as exc:
        return conflict_response(exc)
    return web.json_response(result, status=201 if result.pop("new", True) else 200)


@routes.put("/api/minutes/{id}/entries/{entry}", name="api_minutes_entry_update")
@needs(Permission.MINUTES_EDIT)
async def api_entry_update(request: web.Request) -> web.Response:
    """Save an entry over the version the editor saw (409 with the current entry when stale)."""
    data = await json_object(request)
    return await _apply(request, {**data, "id": int_param(request, "entry")}, "save")


@routes.post("/api/minutes/{id}/entries/{entry}/status", name="api_minutes_entry_status")
@needs(Permission.MINUTES_EDIT)
async def api_entry_status(request: web.Request) -> web.Response:
    """Close or reopen an issue or an action."""
    data = await json_object(request)
    return await _apply(request, {**data, "id": int_param(request, "entry")}, "status")


@routes.post("/api/minutes/{id}/entries/{entry}/move", name="api_minutes_entry_move")
@needs(Permission.MINUTES_EDIT)
async def api_entry_move(request: web.Request) -> web.Response:
    """Put an entry at another place."""
    data = await json_object(request)
    return await _apply(request, {**data, "id": int_param(request, "entry")}, "move")


@routes.delete("/api/minutes/{id}/entries/{entry}", name="api_minutes_entry_delete")
@needs(Permission.MINUTES_EDIT)
async def api_entry_delete(request: web.Request) -> web.Response:
    """Remove an entry (its history stays)."""
    raw = request.query.get("version", "")
    data: dict[str, Any] = {"version": whole_number(raw)}
    return await _apply(request, {**data, "id": int_param(request, "entry")}, "delete")


@routes.put("/api/minutes/{id}/header", name="api_minutes_header")
@needs(Permission.MINUTES_EDIT)
async def api_header(request: web.Request) -> web.Response:
    """Change the header (chair, secretary, attendance by unit)."""
    data = await json_object(request)
    return await _apply(request, data, "header")


@routes.post("/api/minutes/{id}/attendance", name="api_minutes_attendance")
@needs(Permission.MINUTES_EDIT)
async def api_attendance(request: web.Request) -> web.Response:
    """Correct one person's attendance (state and reason; an empty state follows the room again)."""
    data = await json_object(request)
    return await _apply(request, data, "correct")


@routes.get("/api/minutes/{id}/entries/{entry}/history", name="api_minutes_entry_history")
@needs(Permission.MEETINGS_READ)
async def api_history(request: web.Request) -> web.Response:
    """Every change of one entry."""
    async with request.app[keys.DB]() as db:
        _minutes, entry, changes = await _history(db, actor(request), request)
        data = await service.entry_data(db, entry)
    return web.json_response({"entry": data, "changes": changes})


async def _apply(request: web.Request, data: dict[str, Any], op: str) -> web.Response:
    """Run one edit for the HTTP API (the op is the route's); conflicts answer 409 with the current entry."""
    edit = protocol.parse_edit(data, op=op)
    try:
        result = await apply_edit(request.app, actor(request), int_param(request), edit)
    except service.EntryConflict as exc:
        return conflict_response(exc)
    return web.json_response(result)


async def apply_edit(
    app: web.Application, who: Actor, minutes_id: int, edit: protocol.MinutesEdit
) -> dict[str, Any]:
    """One edit (add, save, status, move, delete, header, attendance, correct) in one transaction,
    then pushed live (the HTTP API's path)."""
    result, push = await run_edit(app, who, minutes_id, edit)
    if push is not None:
        app[keys.MINUTES_HUB].push(minutes_id, push)
    return result


async def run_edit(
    app: web.Application, who: Actor, minutes_id: int, edit: protocol.MinutesEdit
) -> tuple[dict[str, Any], protocol.MinutesPush | None]:
    """One edit in one transaction, committed: (the answer to the editor, what to push to every
    viewer, None for nothing).

    The one path for HTTP and WebSocket edits, so both check versions and push the same way;
    the caller pushes, after the commit and with no session open, so nothing waits on a viewer.
    An add repeated with its idempotency key pushes nothing and answers with "new": false.
    """
    async with app[keys.DB]() as db:
        push: protocol.MinutesPush | None = None
        changed: list[Any] = []  # entries to push, read after the commit
        new = True
        match edit:
            case protocol.AddEntry(entry=typed, key=key):
                entry, new = await service.add_entry_once(db, who, minutes_id, typed, key=key)
                changed = [entry]
            case protocol.SaveEntry(id=entry_id, version=version, entry=typed):
                changed = [await service.update_entry(db, who, minutes_id, entry_id, version, typed)]
            case protocol.SetStatus(id=entry_id, version=version, status=status):
                changed = [await service.set_status(db, who, minutes_id, entry_id, version, status)]
            case protocol.MoveEntry(id=entry_id, version=version, position=position):
                changed = await service.move_entry(db, who, minutes_id, entry_id, version, position)
            case protocol.DeleteEntry(id=entry_id, version=version):
                entry = await service.delete_entry(db, who, minutes_id, entry_id, version)
                push = protocol.Deleted(entry.id, entry.version)
            case protocol.EditHeader(header_version=expected, changes=changes):
                minutes = await service.update_header(db, who, minutes_id, expected, dict(changes))
                push = header_push(minutes)
            case protocol.CorrectAttendance(
                header_version=expected, person_id=person_id, state=state, reason=reason
            ):
                minutes = await service.correct_attendance(
                    db, who, minutes_id, expected, person_id, state, reason
                )
                push = header_push(minutes)
            case protocol.RefreshAttendance(header_version=expected):
                minutes = await service.refresh_attendance(db, who, minutes_id, expected)
                push = header_push(minutes)
            case _:
                assert_never(edit)
        await db.commit()
        # Read what to push after the commit: on SQLite the next writer's turn comes sooner.
        if changed:
            data = [await service.entry_data(db, e) for e in changed]
            push = (
                protocol.Order(tuple(data))
                if isinstance(edit, protocol.MoveEntry)
                else protocol.EntryChanged(data[0])
            )
    assert push is not None
    if not new:
        return {**push.as_dict(), "new": False}, None
    return push.as_dict(), push


# --- live socket -----------------------------------------------------------------------------


@routes.get("/minutes/{id}/ws", name="minutes_ws")
@needs(Permission.MEETINGS_READ)  # the session decides; editing needs MINUTES_EDIT, checked per message
async def minutes_ws(request: web.Request) -> web.StreamResponse:
    """Live minutes: every change pushed to every viewer; editors save entries with their versions."""
    # Frames up to 1 MiB reach _socket_message, which refuses those over MAX_WS_MESSAGE with an
    # error and keeps the socket open; only larger ones get aiohttp's "message too big" (1009).
    # No per-message deflate: each push is encoded once and the same text goes to every viewer
    # (compressed, it would be deflated again for each of them on the event loop).
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 * MAX_WS_MESSAGE, compress=False)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this address is a WebSocket")
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    who = actor(request)
    minutes_id = int_param(request)
    async with request.app[keys.DB]() as db:
        minutes = await service.get_minutes(db, minutes_id)
        await service.check_read(db, who, minutes, live=True)
        snapshot = await readable(db, who, minutes)
    language = request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)
    await ws.prepare(request)
    viewer = Viewer(ws, minutes_id, who.id, language, request.transport)
    live = hub(request)
    live.add(viewer)
    viewer.out.start()
    viewer.post(encode(protocol.MinutesState(jsonable(snapshot))))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            push: protocol.MinutesPush | None = None
            try:
                answer, push = await _socket_message(request.app, who, minutes_id, msg.data, language)
            except Exception as exc:  # one bad message must not end everyone's editing session
                clash = database_clash(exc)
                if clash is None:
                    log.exception("minutes socket message failed", extra={"minutes": minutes_id})
                with i18n.language(language):
                    text = i18n.gettext(clash[1] if clash else STATUS_TITLES[500])
                    answer = protocol.Error(_ref_of(msg.data), text, retry=clash is not None)
            # The editor's answer first, then the push to every viewer (this one included): each
            # viewer has its own queue and writer, so the ack never waits for a slow viewer.
            await viewer.out.send(encode(answer))
            if push is not None:
                live.push(minutes_id, push)
    finally:
        live.remove(viewer)
        viewer.close()
        await viewer.out.wait()
    return ws


def _ref_of(raw: str) -> Any:
    """The ref of a client message, if it has one (to answer a failed message by its ref)."""
    try:
        message = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return message.get("ref") if isinstance(message, dict) else None


async def _socket_message(
    app: web.Application, who: Actor, minutes_id: int, raw: str, language: str
) -> tuple[ServerMessage, protocol.MinutesPush | None]:
    """One client message: the answer to send back to that client and what to push to everyone."""
    ref: Any = None
    try:
        if len(raw) > MAX_WS_MESSAGE:
            raise InvalidInput([FieldError("body", N_("The message is too large."))])
        message = parse_json(raw)
        if not isinstance(message, dict):
            raise InvalidInput(
                [FieldError("body", N_("Send a JSON object (Content-Type: application/json)."))]
            )
        ref = protocol.parse_ref(message)
        if not who.can(Permission.MINUTES_EDIT):
            raise Forbidden(N_("Only the secretary and the chair write the minutes."))
        edit = protocol.parse_edit(message)
        result, push = await run_edit(app, who, minutes_id, edit)
        return protocol.Ack(edit.ref, result), push
    except service.EntryConflict as exc:
        with i18n.language(language):
            text = i18n.gettext(exc.message)
        return protocol.Conflict(ref, text, exc.current), None
    except DomainError as exc:
        with i18n.language(language):
            text = i18n.gettext(exc.message, **exc.params)
            fields = errors_json(exc.errors) if isinstance(exc, InvalidInput) else []
        return protocol.Error(ref, text, tuple(fields)), None
