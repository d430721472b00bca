"""Every route, requested by every role and anonymously, is allowed or denied as this table says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from meetings.cli import CLI_ACTOR
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.mail.models import OutboxMessage
from meetings.schedule import feed, service
from meetings.schedule.links import JoinLink, make_answer_token, make_join_token
from meetings.schedule.models import Occurrence
from tests.conftest import World
from web.access import permission_of

ALL = frozenset({"anonymous", *(r.value for r in Role)})
SIGNED_IN = frozenset(r.value for r in Role)
ADMIN = frozenset({"administrator"})
ORGANISERS = frozenset({"administrator", "chair", "secretary"})

# Written out by hand, not derived from the permission map, so that a change there shows here.
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "healthz"): ALL,
    ("GET", "metrics"): ALL,
    ("GET", "login"): ALL,
    ("POST", "login_submit"): ALL,
    ("POST", "logout"): ALL,
    ("POST", "language"): ALL,
    ("GET", "home"): SIGNED_IN,
    ("GET", "profile"): SIGNED_IN,
    ("POST", "password_change"): SIGNED_IN,
    ("GET", "directory"): SIGNED_IN,
    ("GET", "unit"): SIGNED_IN,
    ("GET", "people"): SIGNED_IN,
    ("GET", "person"): SIGNED_IN,
    ("GET", "unit_new"): ADMIN,
    ("POST", "unit_create"): ADMIN,
    ("GET", "unit_edit"): ADMIN,
    ("POST", "unit_update"): ADMIN,
    ("POST", "unit_active"): ADMIN,
    ("GET", "person_new"): ADMIN,
    ("POST", "person_create"): ADMIN,
    ("GET", "person_edit"): ADMIN,
    ("POST", "person_update"): ADMIN,
    ("POST", "person_active"): ADMIN,
    ("POST", "password_reset"): ADMIN,
    ("GET", "directory_import"): ADMIN,
    ("POST", "import_submit"): ADMIN,
    ("GET", "audit"): ADMIN,
    ("GET", "api_me"): SIGNED_IN,
    ("GET", "api_units"): SIGNED_IN,
    ("POST", "api_unit_create"): ADMIN,
    ("GET", "api_unit"): SIGNED_IN,
    ("PUT", "api_unit_update"): ADMIN,
    ("DELETE", "api_unit_deactivate"): ADMIN,
    ("GET", "api_people"): SIGNED_IN,
    ("POST", "api_person_create"): ADMIN,
    ("GET", "api_person"): SIGNED_IN,
    ("PUT", "api_person_update"): ADMIN,
    ("DELETE", "api_person_deactivate"): ADMIN,
    ("POST", "api_import_units"): ADMIN,
    ("POST", "api_import_people"): ADMIN,
    ("GET", "meetings"): SIGNED_IN,
    ("GET", "series"): SIGNED_IN,
    ("GET", "occurrence"): SIGNED_IN,
    ("GET", "attendance"): SIGNED_IN,  # invitees of the series and organisers; all are invited here
    ("GET", "api_attendance"): SIGNED_IN,
    ("GET", "series_new"): ORGANISERS,
    ("POST", "series_create"): ORGANISERS,
    ("GET", "series_edit"): ORGANISERS,
    ("POST", "series_update"): ORGANISERS,
    ("POST", "series_cancel"): ORGANISERS,
    ("GET", "adhoc_new"): ORGANISERS,
    ("POST", "adhoc_create"): ORGANISERS,
    ("POST", "occurrence_move"): ORGANISERS,
    ("POST", "occurrence_cancel"): ORGANISERS,
    ("GET", "calendar_days"): ADMIN,
    ("POST", "calendar_day_add"): ADMIN,
    ("POST", "calendar_day_remove"): ADMIN,
    ("GET", "join"): ALL,
    ("GET", "answer"): ALL,
    ("POST", "answer_submit"): ALL,
    ("GET", "feed"): ALL,
    ("POST", "feed_renew"): SIGNED_IN,
    ("POST", "feed_revoke"): SIGNED_IN,
    ("GET", "mail_outbox"): ADMIN,
    ("POST", "mail_retry"): ADMIN,
    ("GET", "mail_caught"): ADMIN,
    ("GET", "mail_caught_message"): ADMIN,
    ("GET", "room"): SIGNED_IN,  # and anyone with a personal join link (?token=)
    ("GET", "room_ws"): ALL,  # a plain GET gets 400; who joins is checked in the socket
}


def app_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, name, route) of every named, non-static route."""
    found = []
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        assert route.resource is not None and route.resource.name, f"unnamed route {route}"
        found.append((route.method, route.resource.name, route))
    return found


async def test_the_table_covers_every_route(world: World) -> None:
    routes = {(m, n) for m, n, _ in app_routes(world.app)}
    assert routes == set(EXPECTED), f"add to or remove from EXPECTED: {routes ^ set(EXPECTED)}"
    for _m, _n, route in app_routes(world.app):
        assert permission_of(route.handler) is not None


async def fixtures_for_routes(world: World, unit: Unit, target: Person) -> dict[str, str]:
    """Path parameters for every route: ids of real rows and valid personal tokens."""
    now = datetime.now(UTC)
    ctx = service.Context(
        base_url="http://t",
        secret=world.settings.secret_key,
        organizer_email="org@hue.example",
        organizer_name="Org",
        now=now,
    )
    async with world.db() as db:
        series = await service.create_series(
            db,
            CLI_ACTOR,
            service.SeriesInput(
                title="Họp", start_date=(now + timedelta(days=2)).date().isoformat(), unit_codes=[unit.code]
            ),
            ctx,
        )
        occurrence = await db.scalar(select(Occurrence).where(Occurrence.series_id == series.id))
        day = await service.add_calendar_day(
            db, CLI_ACTOR, (now + timedelta(days=300)).date().isoformat(), "day_off", "Nghỉ", ctx
        )
        message = await db.scalar(select(OutboxMessage.id))
        feed_token = await feed.renew_token(db, world.settings.secret_key, target.id)
        await db.commit()
    assert occurrence is not None and message is not None
    expires = now + timedelta(days=5)
    return {
        "unit": str(unit.id),
        "person": str(target.id),
        "series": str(series.id),
        "occurrence": str(occurrence.id),
        "calendar_day": str(day.id),
        "mail": str(message),
        "join": make_join_token(world.settings.secret_key, JoinLink(target.id, series.id, None, expires)),
        "answer": make_answer_token(
            world.settings.secret_key,
            person_id=target.id,
            series_id=series.id,
            occurrence_id=None,
            answer="accepted",
            expires=expires,
        ),
        "feed": feed_token,
        "mail_caught_message": "no-such-message",
    }


def path_parts(name: str, canonical: str, values: dict[str, str]) -> dict[str, str]:
    """The parameters a route's path needs."""
    if "{token}" in canonical:
        return {"token": values["answer" if name.startswith("answer") else name]}
    if "{key}" in canonical:
        return {"key": values[name]}
    if "{id}" not in canonical:
        return {}
    if name in {"room", "room_ws", "attendance", "api_attendance"}:
        return {"id": values["occurrence"]}
    for prefix in ("series", "occurrence", "calendar_day", "mail", "unit", "api_unit"):
        if name.startswith(prefix):
            return {"id": values[prefix.removeprefix("api_")]}
    return {"id": values["person"]}


@pytest.mark.parametrize("who", sorted(ALL))
async def test_every_route_as(world: World, who: str) -> None:
    unit = await world.unit("P-ACCESS", UnitKind.CENTRE)
    target = await world.person("target@hue.example", Role.MEMBER, unit)
    if who != "anonymous":
        await world.person(f"{who}@hue.example", Role(who), unit)
        await world.login(f"{who}@hue.example")
    values = await fixtures_for_routes(world, unit, target)
    outcomes = []
    # Reads first: some writes (deactivating the target person) change what later requests see.
    for method, name, route in sorted(app_routes(world.app), key=lambda r: r[0] != "GET"):
        if name in {"logout", "login_submit", "password_change"}:
            continue  # these change the session itself; covered in test_accounts
        parts = path_parts(name, route.resource.canonical, values)
        path = str(world.app.router[name].url_for(**parts))
        if method == "GET":
            response = await world.client.get(path, allow_redirects=False)
        elif name.startswith("api_"):
            response = await world.call(method, path, json={})
        else:
            response = await world.post_form(path, {})
        body = await response.text()
        assert response.status != 500, f"{method} {path} as {who}: 500 {body[:300]}"
        allowed = who in EXPECTED[(method, name)]
        if allowed:
            ok = response.status not in {401, 403} and not (
                response.status == 303 and "/login" in response.headers.get("Location", "")
            )
        elif who == "anonymous":
            ok = (
                response.status == 401
                if name.startswith("api_")
                else (response.status == 303 and response.headers["Location"].startswith("/login"))
            )
        else:
            ok = response.status == 403
        outcomes.append((ok, f"{method} {path} as {who}: {response.status}"))
    wrong = [text for ok, text in outcomes if not ok]
    assert not wrong, "\n".join(wrong)
