"""Sign in and out, rate limiting, password change and reset, CSRF, deactivation."""

from __future__ import annotations

from sqlalchemy import func, select

from meetings.accounts.models import LoginSession
from meetings.audit import AuditEntry
from meetings.directory.models import Person, Role
from tests.conftest import PASSWORD, World
from web.middlewares import LANGUAGE_COOKIE, SESSION_COOKIE


async def test_sign_in_and_out(world: World) -> None:
    await world.person("chair@hue.example", Role.CHAIR)
    response = await world.client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?next=/"
    login = await world.login("chair@hue.example")
    cookie = login.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    home = await world.client.get("/")
    assert home.status == 200 and "Người chair" in await home.text()
    await world.logout()
    assert (await world.client.get("/", allow_redirects=False)).status == 303
    async with world.db() as db:
        assert await db.scalar(select(func.count()).select_from(LoginSession)) == 0


async def test_wrong_password_is_refused_with_the_form_again(world: World) -> None:
    await world.person("member@hue.example")
    response = await world.post_form("/login", {"email": "member@hue.example", "password": "nope"})
    assert response.status == 401
    body = await response.text()
    assert 'aria-invalid="true"' in body and 'value="member@hue.example"' in body
    assert SESSION_COOKIE not in response.cookies


async def test_login_is_rate_limited_per_account(world: World) -> None:
    await world.person("member@hue.example")
    for _ in range(world.settings.login_max_failures):
        r = await world.post_form("/login", {"email": "member@hue.example", "password": "wrong"})
        assert r.status == 401
    # Even the right password is refused now: the limit is checked before the password.
    r = await world.post_form("/login", {"email": "member@hue.example", "password": PASSWORD})
    assert r.status == 429
    assert SESSION_COOKIE not in r.cookies


async def test_open_redirect_after_login_is_refused(world: World) -> None:
    await world.person("member@hue.example")
    r = await world.post_form(
        "/login", {"email": "member@hue.example", "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert r.status == 303 and r.headers["Location"] == "/"


async def test_missing_csrf_token_changes_nothing(world: World) -> None:
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    r = await world.client.post(
        "/admin/units/new", data={"code": "P-X", "kind": "centre", "name": "Phường X"}, allow_redirects=False
    )
    assert r.status == 403
    assert "did not come from this site" in await r.text() or "không" in (await r.text()).lower()
    r = await world.call(
        "POST",
        "/api/units",
        json={"code": "P-X", "kind": "centre", "name": "X"},
        headers={"X-CSRF-Token": "forged"},
    )
    assert r.status == 403
    async with world.db() as db:
        assert await db.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_password_change(world: World) -> None:
    await world.person("member@hue.example")
    await world.login("member@hue.example")
    bad = await world.post_form("/profile/password", {"current": "wrong", "new": "short", "confirm": "other"})
    assert bad.status == 422
    text = await bad.text()
    assert text.count('aria-invalid="true"') == 3
    ok = await world.post_form(
        "/profile/password",
        {"current": PASSWORD, "new": "a new long password", "confirm": "a new long password"},
    )
    assert ok.status == 303
    assert (await world.client.get("/profile")).status == 200  # this session was renewed
    await world.logout()
    r = await world.post_form("/login", {"email": "member@hue.example", "password": PASSWORD})
    assert r.status == 401
    await world.login("member@hue.example", "a new long password")


async def test_administrator_resets_a_password_and_it_is_audited(world: World) -> None:
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    member = await world.person("member@hue.example")
    await world.login(admin.email)
    r = await world.post_form(f"/admin/people/{member.id}/password", {"password": "short"})
    assert r.status == 422
    r = await world.post_form(f"/admin/people/{member.id}/password", {"password": "reset by admin 1"})
    assert r.status == 303
    async with world.db() as db:
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "password.reset"))
        assert entry is not None and entry.actor_email == admin.email and entry.target_id == str(member.id)
    await world.logout()
    await world.login(member.email, "reset by admin 1")


async def test_deactivated_person_cannot_sign_in_and_loses_the_session(world: World) -> None:
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    member = await world.person("member@hue.example")
    await world.login(member.email)
    async with world.db() as db:
        person = await db.get(Person, member.id)
        assert person is not None
        person.active = False
        await db.commit()
    assert (await world.client.get("/", allow_redirects=False)).status == 303
    r = await world.post_form("/login", {"email": member.email, "password": PASSWORD})
    assert r.status == 401
    await world.login(admin.email)


async def test_a_browser_asking_for_english_gets_vietnamese_until_the_person_chooses(world: World) -> None:
    english = {"Accept-Language": "en-US,en;q=0.9"}
    page = await (await world.client.get("/login", headers=english)).text()
    assert '<html lang="vi">' in page and "Đăng nhập" in page
    # The switch is on the login page, and the choice holds from then on.
    assert 'action="/language"' in page
    r = await world.post_form("/language", {"language": "en", "next": "/login"})
    assert r.status == 303
    page = await (await world.client.get("/login", headers={"Accept-Language": "vi"})).text()
    assert '<html lang="en">' in page and "Sign in" in page


async def test_an_account_that_chose_english_gets_english_without_the_cookie(world: World) -> None:
    member = await world.person("member@hue.example", language="en")
    await world.login(member.email)
    world.client.session.cookie_jar.clear(lambda cookie: cookie.key == LANGUAGE_COOKIE)
    page = await (await world.client.get("/", headers={"Accept-Language": "vi"})).text()
    assert '<html lang="en">' in page and "Sign out" in page


async def test_language_is_chosen_and_remembered(world: World) -> None:
    member = await world.person("member@hue.example")
    await world.login(member.email)
    vi = await (await world.client.get("/")).text()
    assert "Đăng xuất" in vi
    r = await world.post_form("/language", {"language": "en", "next": "/directory"})
    assert r.status == 303 and r.headers["Location"] == "/directory"
    en = await (await world.client.get("/")).text()
    assert "Sign out" in en and '<html lang="en">' in en
    async with world.db() as db:
        person = await db.get(Person, member.id)
        assert person is not None and person.language == "en"
