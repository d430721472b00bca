"""Every route, requested by every role and anonymously, is allowed or denied as this table says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from meetings.accounts.permissions import Actor
from meetings.cli import CLI_ACTOR
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.figures import service as figures_service
from meetings.issues import service as issues_service
from meetings.mail.models import OutboxMessage
from meetings.manual import service as manual_service
from meetings.minutes import service as minutes_service
from meetings.minutes import workflow as minutes_workflow
from meetings.minutes.service import EntryInput
from meetings.schedule import feed, service
from meetings.schedule.links import JoinLink, make_answer_token, make_join_token
from meetings.schedule.models import Occurrence
from tests.conftest import World
from web.access import permission_of

MINUTES_ACTOR = Actor(id=0, email="cli", name="cli", role=Role.CHAIR, unit_id=None)
ALL = frozenset({"anonymous", *(r.value for r in Role)})
SIGNED_IN = frozenset(r.value for r in Role)
ADMIN = frozenset({"administrator"})
ORGANISERS = frozenset({"administrator", "chair", "secretary"})
MINUTES_EDITORS = frozenset({"chair", "secretary"})
CHAIR = frozenset({"chair"})
ISSUE_REPORTERS = frozenset({"chair", "secretary", "member", "support"})
FIGURES_READERS = frozenset({"administrator", "chair", "secretary", "observer"})
# The readiness board, monitoring and connection history of every unit: read by whoever runs the
# meetings, the support team and administrators;
# acted on by the chair, the secretary and the support team (the test's meeting is two days away:
# those allowed get 409, the board not open yet).
READINESS_READERS = frozenset({"administrator", "chair", "secretary", "support"})
READINESS_MANAGERS = frozenset({"chair", "secretary", "support"})
# Who reads every centre's issues by role (members of non-centre units do too, by their unit).
REGISTER_READERS = frozenset({"administrator", "chair", "secretary", "observer", "support"})
# The readiness board, live monitoring and history (meetings.readiness).
READINESS_READERS = frozenset({"administrator", "chair", "secretary", "support"})
CENTRE_STAFF = frozenset({"member"})  # members of a centre (the test's people all are)
# Routes authenticated by a centre's token, not by role: tests/figures/test_figures_web.py covers them.
TOKEN_ROUTES = frozenset({"api_figures_report"})

# Written out by hand, not derived from the permission map, so that a change there shows here.
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "healthz"): ALL,
    ("GET", "metrics"): ALL,
    ("GET", "favicon"): ALL,
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
    ("GET", "check"): SIGNED_IN,
    ("POST", "check_probe"): SIGNED_IN,
    ("POST", "check_result"): SIGNED_IN,
    ("GET", "check_link"): ALL,  # the invitee's signed join link decides
    ("POST", "check_link_probe"): ALL,
    ("POST", "check_link_result"): ALL,
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
    # Minutes: members read the published minutes of meetings they are invited to (all are here).
    ("GET", "minutes_list"): SIGNED_IN,
    ("GET", "occurrence_minutes"): SIGNED_IN,
    ("GET", "minutes"): SIGNED_IN,
    ("GET", "minutes_edit"): MINUTES_EDITORS,
    ("GET", "minutes_version"): SIGNED_IN,
    ("GET", "minutes_entry_history"): SIGNED_IN,
    ("GET", "minutes_export"): SIGNED_IN,
    ("GET", "minutes_ws"): SIGNED_IN,  # a plain GET gets 400
    ("POST", "minutes_submit"): MINUTES_EDITORS,
    ("POST", "minutes_return"): MINUTES_EDITORS,
    ("POST", "minutes_approve"): CHAIR,
    ("POST", "minutes_publish"): MINUTES_EDITORS,
    ("POST", "minutes_correct"): MINUTES_EDITORS,
    ("GET", "api_minutes"): SIGNED_IN,
    ("GET", "api_occurrence_minutes"): SIGNED_IN,
    ("GET", "api_minutes_search"): SIGNED_IN,
    ("GET", "api_minutes_entry_history"): SIGNED_IN,
    ("POST", "api_minutes_entry_create"): MINUTES_EDITORS,
    ("PUT", "api_minutes_entry_update"): MINUTES_EDITORS,
    ("POST", "api_minutes_entry_status"): MINUTES_EDITORS,
    ("POST", "api_minutes_entry_move"): MINUTES_EDITORS,
    ("DELETE", "api_minutes_entry_delete"): MINUTES_EDITORS,
    ("PUT", "api_minutes_header"): MINUTES_EDITORS,
    ("POST", "api_minutes_attendance"): MINUTES_EDITORS,
    # The issue register: everyone reads the issues of their unit (the test's issue is theirs);
    # the whole city's register is REGISTER_READERS' (test_another_centres_issue_as).
    ("GET", "issues"): SIGNED_IN,
    ("GET", "issue_new"): ISSUE_REPORTERS,
    ("POST", "issue_create"): ISSUE_REPORTERS,
    ("GET", "issue"): SIGNED_IN,
    ("POST", "issue_assign"): MINUTES_EDITORS,
    # Members pass the route, but only the unit that owns an issue moves it (not theirs here).
    ("POST", "issue_status"): MINUTES_EDITORS,
    ("GET", "api_issues"): SIGNED_IN,
    ("POST", "api_issue_create"): ISSUE_REPORTERS,
    ("GET", "api_issue"): SIGNED_IN,
    ("POST", "api_issue_assign"): MINUTES_EDITORS,
    ("POST", "api_issue_status"): MINUTES_EDITORS,
    # Daily figures.
    ("GET", "figures"): FIGURES_READERS,
    ("GET", "api_figures"): FIGURES_READERS,
    ("GET", "figures_export"): FIGURES_READERS,
    ("GET", "figures_report"): CENTRE_STAFF,
    ("POST", "figures_report_submit"): CENTRE_STAFF,
    ("POST", "figures_upload"): CENTRE_STAFF,
    ("GET", "figures_tokens"): ADMIN,
    ("POST", "figures_token_create"): ADMIN,
    ("POST", "figures_token_revoke"): ADMIN,
    ("POST", "api_figures_report"): ALL,  # the token decides (TOKEN_ROUTES)
    # The manual: everyone reads and searches; the secretary and the chair edit.
    ("GET", "manual"): SIGNED_IN,
    ("GET", "api_manual_search"): SIGNED_IN,
    ("GET", "manual_new"): MINUTES_EDITORS,
    ("POST", "manual_create"): MINUTES_EDITORS,
    ("GET", "manual_article"): SIGNED_IN,
    ("GET", "manual_edit"): MINUTES_EDITORS,
    ("POST", "manual_update"): MINUTES_EDITORS,
    ("POST", "manual_publish"): MINUTES_EDITORS,
    ("POST", "manual_from_issue"): MINUTES_EDITORS,
    # Connection history: every unit's for the readiness readers; a unit's own for its people
    # (the test's people all belong to the unit asked for; tests/readiness/test_history.py
    # checks another unit's).
    ("GET", "readiness_history"): READINESS_READERS,
    ("GET", "readiness_unit_history"): SIGNED_IN,
    ("GET", "readiness_board"): READINESS_READERS,
    ("GET", "readiness_board_ws"): READINESS_READERS,  # checked before the upgrade; a plain GET gets 400
    ("POST", "readiness_resend"): READINESS_MANAGERS,
    ("POST", "readiness_excuse"): READINESS_MANAGERS,
    ("POST", "readiness_unexcuse"): READINESS_MANAGERS,
    ("POST", "readiness_help"): READINESS_MANAGERS,
    ("POST", "readiness_unhelp"): READINESS_MANAGERS,
    # Live connection monitoring of a meeting (a plain GET of its socket gets 400).
    ("GET", "readiness_monitor"): READINESS_READERS,
    ("GET", "api_readiness_monitor"): READINESS_READERS,
    ("GET", "readiness_monitor_ws"): READINESS_READERS,
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
        # Published minutes with one entry: members read them, only editors change them.
        minutes = await minutes_service.ensure_minutes(db, occurrence)
        entry = await minutes_service.add_entry(db, MINUTES_ACTOR, minutes.id, EntryInput(text="Ghi chú"))
        await minutes_workflow.submit(db, MINUTES_ACTOR, minutes.id)
        await minutes_workflow.approve(db, MINUTES_ACTOR, minutes.id)
        await minutes_workflow.publish(
            db,
            MINUTES_ACTOR,
            minutes.id,
            base_url="http://t",
            sender_email="vp@hue.example",
            sender_name="VP",
        )
        message = await db.scalar(select(OutboxMessage.id))
        feed_token = await feed.renew_token(db, world.settings.secret_key, target.id)
        # An issue of the unit, a published manual article, a centre token.
        issue = await issues_service.report(
            db, MINUTES_ACTOR, issues_service.ReportInput(text="Mất kết nối", unit=unit.code)
        )
        article = await manual_service.create(
            db, MINUTES_ACTOR, manual_service.ArticleInput("other", "Hỏi?", "Đáp.")
        )
        await manual_service.publish(db, MINUTES_ACTOR, article.id)
        admin = Actor(id=0, email="cli", name="cli", role=Role.ADMINISTRATOR, unit_id=None)
        _token, token_row = await figures_service.issue_token(db, admin, unit.code)
        await db.commit()
    assert occurrence is not None and message is not None
    expires = now + timedelta(days=5)
    # The connection check's link: another invitee, whom no request here deactivates.
    invitee = await world.person("invitee@hue.example", Role.MEMBER, unit)
    return {
        "unit": str(unit.id),
        "person": str(target.id),
        "series": str(series.id),
        "occurrence": str(occurrence.id),
        "calendar_day": str(day.id),
        "mail": str(message),
        "join": make_join_token(world.settings.secret_key, JoinLink(target.id, series.id, None, expires)),
        "check_join": make_join_token(
            world.settings.secret_key, JoinLink(invitee.id, series.id, None, expires)
        ),
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
        "minutes": str(minutes.id),
        "entry": str(entry.id),
        "issue": str(issue.id),
        "article": str(article.id),
        "figures_token": str(token_row.id),
    }


def path_parts(name: str, canonical: str, values: dict[str, str]) -> dict[str, str]:
    """The parameters a route's path needs."""
    if "{token}" in canonical:
        key = (
            "answer" if name.startswith("answer") else "check_join" if name.startswith("check_link") else name
        )
        return {"token": values[key]}
    if "{key}" in canonical:
        return {"key": values[name]}
    if "{format}" in canonical and "{id}" not in canonical:
        return {"format": "csv"}
    if "{id}" not in canonical:
        return {}
    if name in {
        "room",
        "room_ws",
        "attendance",
        "api_attendance",
        "occurrence_minutes",
        "api_occurrence_minutes",
        "readiness_monitor",
        "api_readiness_monitor",
        "readiness_monitor_ws",
    }:
        return {"id": values["occurrence"]}
    if name.startswith("readiness"):
        return {"id": values["occurrence"], **({"unit": values["unit"]} if "{unit}" in canonical else {})}
    if name.startswith(("minutes", "api_minutes")):
        extra = {"number": "1", "entry": values["entry"], "format": "md"}
        return {"id": values["minutes"], **{k: v for k, v in extra.items() if f"{{{k}}}" in canonical}}
    if name.startswith(("issue", "api_issue")) or name == "manual_from_issue":
        return {"id": values["issue"]}
    if name.startswith("manual"):
        return {"id": values["article"]}
    if name == "readiness_unit_history":
        return {"id": values["unit"]}
    if name == "figures_token_revoke":
        return {"id": values["figures_token"]}
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
        if name in TOKEN_ROUTES:
            continue  # no role opens these: a centre's token does
        parts = path_parts(name, route.resource.canonical, values)
        path = str(world.app.router[name].url_for(**parts))
        if method == "GET":
            response = await world.client.get(path, allow_redirects=False)
        elif name.startswith("api_"):
            response = await world.call(method, path, json={})
        else:
            response = await world.post_form(path, {})
        body = await response.text(errors="replace")  # some answers are files (an icon)
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


@pytest.mark.parametrize("who", sorted(SIGNED_IN))
async def test_another_centres_issue_as(world: World, who: str) -> None:
    """An issue of another centre: the whole register's readers see it, a centre's staff do not."""
    unit = await world.unit("P-ACCESS", UnitKind.CENTRE)
    other = await world.unit("P-OTHER", UnitKind.CENTRE)
    await world.person(f"{who}@hue.example", Role(who), unit)
    async with world.db() as db:
        issue = await issues_service.report(
            db, MINUTES_ACTOR, issues_service.ReportInput(text="Mất kết nối", unit=other.code)
        )
        await db.commit()
    await world.login(f"{who}@hue.example")
    page = await world.client.get(f"/issues/{issue.id}")
    api = await world.client.get(f"/api/issues/{issue.id}")
    listed = await (await world.client.get("/api/issues")).json()
    reads = who in REGISTER_READERS
    assert (page.status, api.status) == ((200, 200) if reads else (403, 403)), who
    assert [i["id"] for i in listed["issues"]] == ([issue.id] if reads else []), who
