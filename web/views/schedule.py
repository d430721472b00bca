"""Meetings: series, occurrences, ad hoc meetings and the working-day calendar."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from meetings.accounts import service as accounts
from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.directory import service as directory
from meetings.directory.models import Person, UnitKind
from meetings.errors import N_, FieldError, InvalidInput
from meetings.schedule import jobs as schedule_jobs
from meetings.schedule import service
from meetings.schedule.models import (
    OCCURRENCE_STATE_LABELS,
    SERIES_KIND_LABELS,
    CalendarDay,
    Occurrence,
    Series,
    SeriesInvitee,
    SeriesKind,
)
from meetings.schedule.workdays import WEEKDAY_NAMES
from web import keys
from web.access import needs
from web.common import me, schedule_context
from web.forms import int_param, read_form
from web.render import field_errors, render

routes = web.RouteTableDef()
log = logging.getLogger("giaoban.schedule")

SERIES_FIELDS = (
    "title",
    "kind",
    "start_time",
    "duration_minutes",
    "start_date",
    "end_date",
    "timezone",
    "chair_email",
    "secretary_email",
    "reminder_minutes",
    "description",
)


async def series_input(request: web.Request) -> tuple[service.SeriesInput, dict[str, Any]]:
    """A SeriesInput from the posted form, and the raw values to show the form again."""
    form = await read_form(request)
    errors: list[FieldError] = []

    def text(name: str) -> str:
        try:
            return form.text(name, limit=5000)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            return ""

    def many(name: str) -> list[str]:
        try:
            return form.texts(name, limit=200, count=500)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            return []

    values: dict[str, Any] = {name: text(name) for name in SERIES_FIELDS}
    values["weekdays"] = many("weekdays")
    values["unit_codes"] = many("unit_codes")
    values["person_emails"] = [e for e in text("person_emails").replace(",", "\n").split() if e.strip()]
    if errors:
        raise InvalidInput(errors)
    data = service.SeriesInput(
        title=values["title"],
        kind=values["kind"] or "morning",
        start_time=values["start_time"],
        duration_minutes=values["duration_minutes"],
        weekdays=values["weekdays"],
        start_date=values["start_date"],
        end_date=values["end_date"],
        timezone=values["timezone"] or "Asia/Ho_Chi_Minh",
        chair_email=values["chair_email"],
        secretary_email=values["secretary_email"],
        reminder_minutes=values["reminder_minutes"] or "15",
        description=values["description"],
        unit_codes=values["unit_codes"],
        person_emails=values["person_emails"],
    )
    values["person_emails"] = "\n".join(values["person_emails"])
    return data, values


async def _series_form(
    request: web.Request,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    series: Series | None,
    *,
    adhoc: bool = False,
    status: int = 200,
) -> web.Response:
    async with request.app[keys.DB]() as db:
        units = await directory.list_units(db)
    return render(
        request,
        "schedule/series_form.html",
        {
            "values": values,
            "errors": errors,
            "series": series,
            "units": units,
            "adhoc": adhoc,
            "weekday_names": WEEKDAY_NAMES,
            "kinds": SERIES_KIND_LABELS,
            "unit_kinds": list(UnitKind),
        },
        status=status,
    )


def default_values(request: web.Request, adhoc: bool) -> dict[str, Any]:
    """What a new series form starts with: the demo city's morning meeting."""
    tz = request.app[keys.SETTINGS].tz
    now = datetime.now(tz)
    start = now + timedelta(minutes=10 - now.minute % 5) if adhoc else now
    return {
        "title": "",
        "kind": "adhoc" if adhoc else "morning",
        "start_time": start.strftime("%H:%M") if adhoc else "07:30",
        "duration_minutes": "45",
        "start_date": start.date().isoformat(),
        "end_date": "",
        "timezone": request.app[keys.SETTINGS].timezone,
        "chair_email": "",
        "secretary_email": "",
        "reminder_minutes": "15",
        "description": "",
        "weekdays": list(WEEKDAY_NAMES[:5]),
        "unit_codes": [],
        "person_emails": "",
    }


@routes.get("/meetings", name="meetings")
@needs(Permission.MEETINGS_READ)
async def meetings(request: web.Request) -> web.Response:
    """Upcoming meetings (the person's own, or all for organisers) and the series."""
    person = me(request)
    now = utcnow()
    async with request.app[keys.DB]() as db:
        manage = accounts.actor_of(person).can(Permission.SCHEDULE_MANAGE)
        ids = None if manage else await service.series_of_person(db, person)
        upcoming = await service.occurrences_between(
            db, now - timedelta(hours=2), now + timedelta(days=14), series_ids=ids
        )
        series_list = await service.list_series(db, include_cancelled=manage)
    if ids is not None:
        series_list = [s for s in series_list if s.id in ids]
    return render(
        request,
        "schedule/meetings.html",
        {
            "upcoming": upcoming,
            "series_list": series_list,
            "kinds": SERIES_KIND_LABELS,
            "states": OCCURRENCE_STATE_LABELS,
        },
    )


@routes.get("/meetings/series/new", name="series_new")
@needs(Permission.SCHEDULE_MANAGE)
async def series_new(request: web.Request) -> web.Response:
    """The form for a new recurring series."""
    return await _series_form(request, default_values(request, False), {}, None)


@routes.post("/meetings/series/new", name="series_create")
@needs(Permission.SCHEDULE_MANAGE)
async def series_create(request: web.Request) -> web.StreamResponse:
    """Create a series and send its invitations."""
    return await _create(request, adhoc=False)


async def _create(request: web.Request, *, adhoc: bool) -> web.StreamResponse:
    """Create a series or an ad hoc meeting from the form; invitations go out at once."""
    data, values = await series_input(request)
    create = service.create_adhoc if adhoc else service.create_series
    async with request.app[keys.DB]() as db:
        try:
            series = await create(db, accounts.actor_of(me(request)), data, schedule_context(request))
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _series_form(
                request, values, field_errors(exc.errors), None, adhoc=adhoc, status=422
            )
    await changed(request, series.id)
    raise web.HTTPSeeOther(request.app.router["series"].url_for(id=str(series.id)).with_query(done="created"))


@routes.get("/meetings/adhoc/new", name="adhoc_new")
@needs(Permission.SCHEDULE_MANAGE)
async def adhoc_new(request: web.Request) -> web.Response:
    """The form for an ad hoc meeting, now or later."""
    return await _series_form(request, default_values(request, True), {}, None, adhoc=True)


@routes.post("/meetings/adhoc/new", name="adhoc_create")
@needs(Permission.SCHEDULE_MANAGE)
async def adhoc_create(request: web.Request) -> web.StreamResponse:
    """Create an ad hoc meeting and invite at once."""
    return await _create(request, adhoc=True)


@routes.get("/meetings/series/{id}", name="series")
@needs(Permission.MEETINGS_READ)
async def series_page(request: web.Request) -> web.Response:
    """A series: when, who is invited, who answered (per unit), its upcoming meetings."""
    series_id = int_param(request)
    person = me(request)
    now = utcnow()
    async with request.app[keys.DB]() as db:
        series = await service.get_series(db, series_id)
        await service.check_read(db, person, series)
        manage = accounts.actor_of(person).can(Permission.SCHEDULE_MANAGE)
        units = await service.invited_units(db, series)
        answers = await service.answers_by_unit(db, series) if manage else []
        occurrences = await service.occurrences_between(
            db,
            now - timedelta(days=1),
            now + timedelta(days=request.app[keys.SETTINGS].schedule_horizon_days + 1),
            series_ids=[series.id],
        )
        chair = await db.get(Person, series.chair_id) if series.chair_id else None
        secretary = await db.get(Person, series.secretary_id) if series.secretary_id else None
    return render(
        request,
        "schedule/series.html",
        {
            "series": series,
            "units": units,
            "answers": answers,
            "occurrences": [o for o, _ in occurrences],
            "manage": manage,
            "chair": chair,
            "secretary": secretary,
            "kinds": SERIES_KIND_LABELS,
            "states": OCCURRENCE_STATE_LABELS,
            "done": request.query.get("done", ""),
            "zone": ZoneInfo(series.timezone),
            "weekday_names": WEEKDAY_NAMES,
        },
    )


@routes.get("/meetings/series/{id}/edit", name="series_edit")
@needs(Permission.SCHEDULE_MANAGE)
async def series_edit(request: web.Request) -> web.Response:
    """The form to change a series."""
    async with request.app[keys.DB]() as db:
        series = await service.get_series(db, int_param(request))
        units = await service.invited_units(db, series)
        people = list(
            await db.scalars(
                select(Person)
                .join_from(Person, SeriesInvitee, SeriesInvitee.person_id == Person.id)
                .where(SeriesInvitee.series_id == series.id)
            )
        )
        chair = await db.get(Person, series.chair_id) if series.chair_id else None
        secretary = await db.get(Person, series.secretary_id) if series.secretary_id else None
    values = {
        "title": series.title,
        "kind": series.kind.value,
        "start_time": series.start_time.strftime("%H:%M"),
        "duration_minutes": str(series.duration_minutes),
        "start_date": series.start_date.isoformat(),
        "end_date": series.end_date.isoformat() if series.end_date else "",
        "timezone": series.timezone,
        "chair_email": chair.email if chair else "",
        "secretary_email": secretary.email if secretary else "",
        "reminder_minutes": str(series.reminder_minutes),
        "description": series.description,
        "weekdays": list(series.weekday_names),
        "unit_codes": [u.code for u in units],
        "person_emails": "\n".join(p.email for p in people),
    }
    return await _series_form(request, values, {}, series, adhoc=series.kind == SeriesKind.ADHOC)


@routes.post("/meetings/series/{id}/edit", name="series_update")
@needs(Permission.SCHEDULE_MANAGE)
async def series_update(request: web.Request) -> web.StreamResponse:
    """Save a series' changes and send the update."""
    series_id = int_param(request)
    data, values = await series_input(request)
    async with request.app[keys.DB]() as db:
        try:
            await service.update_series(
                db, accounts.actor_of(me(request)), series_id, data, schedule_context(request)
            )
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            series = await service.get_series(db, series_id)
            return await _series_form(
                request,
                values,
                field_errors(exc.errors),
                series,
                adhoc=series.kind == SeriesKind.ADHOC,
                status=422,
            )
    await changed(request, series_id)
    raise web.HTTPSeeOther(request.app.router["series"].url_for(id=str(series_id)).with_query(done="saved"))


@routes.post("/meetings/series/{id}/cancel", name="series_cancel")
@needs(Permission.SCHEDULE_MANAGE)
async def series_cancel(request: web.Request) -> web.StreamResponse:
    """Cancel the rest of a series."""
    series_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.cancel_series(db, accounts.actor_of(me(request)), series_id, schedule_context(request))
        await db.commit()
    await changed(request, series_id)
    raise web.HTTPSeeOther(
        request.app.router["series"].url_for(id=str(series_id)).with_query(done="cancelled")
    )


@routes.get("/meetings/occurrences/{id}", name="occurrence")
@needs(Permission.MEETINGS_READ)
async def occurrence_page(request: web.Request) -> web.Response:
    """One meeting: when, its state, and (for organisers) move and cancel."""
    person = me(request)
    async with request.app[keys.DB]() as db:
        occ = await service.get_occurrence(db, int_param(request))
        series = await service.get_series(db, occ.series_id)
        await service.check_read(db, person, series)
        manage = accounts.actor_of(person).can(Permission.SCHEDULE_MANAGE)
    zone = ZoneInfo(series.timezone)
    values = {
        "date": occ.start.astimezone(zone).date().isoformat(),
        "time": occ.start.astimezone(zone).strftime("%H:%M"),
    }
    return _occurrence_view(request, occ, series, manage, values, {}, request.query.get("done", ""))


def _occurrence_view(
    request: web.Request,
    occ: Occurrence,
    series: Series,
    manage: bool,
    values: dict[str, str],
    errors: dict[str, list[str]],
    done: str,
    status: int = 200,
) -> web.Response:
    """The occurrence page, as shown or with the move form marked."""
    return render(
        request,
        "schedule/occurrence.html",
        {
            "occ": occ,
            "series": series,
            "manage": manage,
            "values": values,
            "errors": errors,
            "states": OCCURRENCE_STATE_LABELS,
            "done": done,
            "zone": ZoneInfo(series.timezone),
        },
        status=status,
    )


@routes.post("/meetings/occurrences/{id}/move", name="occurrence_move")
@needs(Permission.SCHEDULE_MANAGE)
async def occurrence_move(request: web.Request) -> web.StreamResponse:
    """Move one meeting to another working day or time."""
    occurrence_id = int_param(request)
    form = await read_form(request)
    values = {k: form.text(k)[:20] for k in ("date", "time")}
    async with request.app[keys.DB]() as db:
        try:
            try:
                new_start = datetime.combine(
                    date.fromisoformat(values["date"]), datetime.strptime(values["time"], "%H:%M").time()
                )
            except ValueError as exc:
                raise InvalidInput(
                    [FieldError("date", N_("Write the date as YYYY-MM-DD and the time as HH:MM."))]
                ) from exc
            moved = await service.move_occurrence(
                db, accounts.actor_of(me(request)), occurrence_id, new_start, schedule_context(request)
            )
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            occ = await service.get_occurrence(db, occurrence_id)
            series = await service.get_series(db, occ.series_id)
            errors = field_errors(exc.errors)
            errors.setdefault("date", []).extend(errors.pop("start", []))
            return _occurrence_view(request, occ, series, True, values, errors, "", 422)
    await changed(request, moved.series_id)
    raise web.HTTPSeeOther(
        request.app.router["occurrence"].url_for(id=str(occurrence_id)).with_query(done="moved")
    )


@routes.post("/meetings/occurrences/{id}/cancel", name="occurrence_cancel")
@needs(Permission.SCHEDULE_MANAGE)
async def occurrence_cancel(request: web.Request) -> web.StreamResponse:
    """Cancel one meeting."""
    occurrence_id = int_param(request)
    async with request.app[keys.DB]() as db:
        cancelled = await service.cancel_occurrence(
            db, accounts.actor_of(me(request)), occurrence_id, schedule_context(request)
        )
        await db.commit()
    await changed(request, cancelled.series_id)
    raise web.HTTPSeeOther(
        request.app.router["occurrence"].url_for(id=str(occurrence_id)).with_query(done="cancelled")
    )


@routes.get("/admin/calendar", name="calendar_days")
@needs(Permission.CALENDAR_MANAGE)
async def calendar_days(request: web.Request) -> web.Response:
    """Public holidays of this year and the next, with the administrator's days off and make-up days."""
    return await _calendar_page(request, {"day": "", "kind": "day_off", "name": ""}, {})


async def _calendar_page(
    request: web.Request, values: dict[str, str], errors: dict[str, list[str]], status: int = 200
) -> web.Response:
    today = datetime.now(request.app[keys.SETTINGS].tz).date()
    async with request.app[keys.DB]() as db:
        calendar = await service.working_calendar(db)
        days = list(await db.scalars(select(CalendarDay).order_by(CalendarDay.day)))
    end = date(today.year + 1, 12, 31)
    holidays = sorted(
        (d, name)
        for d, name in calendar.non_working_days(date(today.year, 1, 1), end).items()
        if d not in calendar.days_off
    )
    return render(
        request,
        "schedule/calendar.html",
        {
            "days": days,
            "holidays": holidays,
            "values": values,
            "errors": errors,
            "today": today,
        },
        status=status,
    )


@routes.post("/admin/calendar", name="calendar_day_add")
@needs(Permission.CALENDAR_MANAGE)
async def calendar_day_add(request: web.Request) -> web.StreamResponse:
    """Add a day off or a make-up working day."""
    form = await read_form(request)
    values = {k: form.text(k)[:300] for k in ("day", "kind", "name")}
    async with request.app[keys.DB]() as db:
        try:
            await service.add_calendar_day(
                db,
                accounts.actor_of(me(request)),
                values["day"],
                values["kind"],
                values["name"],
                schedule_context(request),
            )
            await db.commit()
        except InvalidInput as exc:
            await db.rollback()
            return await _calendar_page(request, values, field_errors(exc.errors), 422)
    await changed(request, None)
    raise web.HTTPSeeOther(request.app.router["calendar_days"].url_for())


@routes.post("/admin/calendar/{id}/delete", name="calendar_day_remove")
@needs(Permission.CALENDAR_MANAGE)
async def calendar_day_remove(request: web.Request) -> web.StreamResponse:
    """Remove a day off or make-up day."""
    day_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.remove_calendar_day(
            db, accounts.actor_of(me(request)), day_id, schedule_context(request)
        )
        await db.commit()
    await changed(request, None)
    raise web.HTTPSeeOther(request.app.router["calendar_days"].url_for())


def wake_mail(request: web.Request) -> None:
    """Tell this node's outbox sender that mail is waiting."""
    sender = request.app.get(keys.OUTBOX)
    if sender is not None:
        sender.wake()


async def changed(request: web.Request, series_id: int | None) -> None:
    """After a committed change: mail goes out, and the series' jobs are planned now.

    Reminders are planned here rather than only by the minutely reconcile, which skips what is
    already due: a meeting created 30 s before its reminder time would never be reminded.
    series_id None plans every series (a change of the working calendar moves many).
    """
    wake_mail(request)
    scheduler = request.app.get(keys.SCHEDULER)
    if scheduler is None:
        return
    try:
        await schedule_jobs.plan_series(
            scheduler, request.app[keys.DB], request.app[keys.SETTINGS], series_id
        )
    except (SQLAlchemyError, OSError):
        # The change is saved; the next reconcile plans its jobs (a late reminder is still sent).
        log.warning("jobs of series %s not planned now", series_id, exc_info=True)
