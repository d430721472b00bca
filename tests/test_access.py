"""Every route, requested by every role and anonymously, is allowed or denied as this table says."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from meetings.directory.models import Role, UnitKind
from tests.conftest import World
from web.access import permission_of

ALL = frozenset({"anonymous", *(r.value for r in Role)})
SIGNED_IN = frozenset(r.value for r in Role)
ADMIN = frozenset({"administrator"})

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


@pytest.mark.parametrize("who", sorted(ALL))
async def test_every_route_as(world: World, who: str) -> None:
    unit = await world.unit("P-ACCESS", UnitKind.CENTRE)
    target = await world.person("target@hue.example", Role.MEMBER, unit)
    if who != "anonymous":
        await world.person(f"{who}@hue.example", Role(who), unit)
        await world.login(f"{who}@hue.example")
    ids = {"unit": unit.id, "person": target.id}
    outcomes = []
    for method, name, route in app_routes(world.app):
        if name in {"logout", "login_submit", "password_change"}:
            continue  # these change the session itself; covered in test_accounts
        parts = (
            {"id": str(ids["unit" if "unit" in name else "person"])}
            if "{id}" in route.resource.canonical
            else {}
        )
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
