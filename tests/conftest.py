"""Shared fixtures: the real app on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

import chromium
from meetings.accounts.passwords import hash_password
from meetings.db import create_engine
from meetings.db.base import Base
from meetings.db.migrate import upgrade, upgrade_sync
from meetings.db.models import import_all
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.directory.service import person_search_text, unit_search_text
from meetings.settings import Settings, load_settings
from web import csrf, keys
from web.app import create_app

PG_ENV = "GIAOBAN_TEST_POSTGRES_URL"
SECRET = "test-secret-key-not-for-production"
PASSWORD = "correct horse battery"
# One argon2 hash for every test account: hashing is deliberately slow.
PASSWORD_HASH = hash_password(PASSWORD)

import_all()


def pytest_configure(config: pytest.Config) -> None:
    """Playwright finds no downloaded browser: the browser tests launch Debian's Chromium or fail."""
    chromium.isolate_playwright()


@functools.cache
def browser_line() -> str:
    """Which browser the browser tests drive, said first thing in the run."""
    path = chromium.executable()
    if path is None:
        return f"browser: none (the browser tests skip; {chromium.INSTALL_HINT})"
    return f"browser: {chromium.version_line(path)} ({path})"


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [browser_line()]


def pytest_sessionstart(session: pytest.Session) -> None:
    """`pytest -q` (as `make test` runs it) shows no header: say which browser anyway."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and session.config.option.verbose < 0:
        reporter.write_line(browser_line())


def backends() -> list[Any]:
    """SQLite always; PostgreSQL when GIAOBAN_TEST_POSTGRES_URL is set (CI sets it)."""
    params: list[Any] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(PG_ENV):
        params.append(pytest.param("postgresql", id="postgresql"))
    elif os.environ.get("CI"):
        raise RuntimeError(f"CI must test PostgreSQL too: set {PG_ENV}")
    else:
        params.append(
            pytest.param(
                "postgresql",
                id="postgresql",
                marks=pytest.mark.skip(reason=f"PostgreSQL not configured ({PG_ENV} unset)"),
            )
        )
    return params


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    """The test PostgreSQL database, emptied and migrated once per session."""
    url = os.environ[PG_ENV]

    async def reset() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(reset())
    return url


async def truncate_postgres(url: str) -> None:
    """Empty every table (not the migration version) before a test."""
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=backends())
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind under test."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated, empty database for one test (a sync fixture: it runs outside the loop)."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    asyncio.run(truncate_postgres(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Test settings on the fresh database."""
    return load_settings(
        environ={},
        database_url=database_url,
        secret_key=SECRET,
        var_dir=str(tmp_path / "var"),
        log_format="text",
        mail_catcher_port=0,  # each app its own catcher on a free port
        scheduler_enabled=False,  # scheduler tests turn it on
        media_addresses="127.0.0.1",  # the media server's candidates: media never leaves the machine
    )


@dataclass
class World:
    """The app under test with helpers to make data and sign in."""

    client: TestClient[Any, Any]
    settings: Settings

    @property
    def app(self) -> Any:
        return self.client.app

    def db(self) -> Any:
        """A database session of the running app."""
        return self.client.app[keys.DB]()

    async def unit(
        self, code: str = "P-TEST", kind: UnitKind = UnitKind.CENTRE, name: str = "", **kw: Any
    ) -> Unit:
        """Create a unit."""
        async with self.db() as db:
            unit = Unit(code=code, kind=kind, name=name or f"Phường {code.title()}", active=True, **kw)
            unit.search_text = unit_search_text(unit)
            db.add(unit)
            await db.commit()
            return unit

    async def person(
        self,
        email: str = "",
        role: Role = Role.MEMBER,
        unit: Unit | None = None,
        name: str = "",
        password: bool = True,
        **kw: Any,
    ) -> Person:
        """Create a person (with the test password unless password=False)."""
        email = email or f"{role.value}@hue.example"
        async with self.db() as db:
            person = Person(
                email=email,
                name=name or f"Người {role.value}",
                role=role,
                unit_id=unit.id if unit else None,
                password_hash=PASSWORD_HASH if password else None,
                **{"active": True, "language": "vi", "phone": "", "title": "", **kw},
            )
            person.search_text = person_search_text(person)
            db.add(person)
            await db.commit()
            return person

    async def open_meeting(self, unit_codes: list[str], chair_email: str = "") -> tuple[Any, Any]:
        """An ad hoc meeting starting in five minutes, so its room is open: (series, occurrence)."""
        from zoneinfo import ZoneInfo

        from sqlalchemy import select

        from meetings.cli import CLI_ACTOR
        from meetings.schedule import service
        from meetings.schedule.models import Occurrence

        now = datetime.now(UTC)
        start = (now + timedelta(minutes=5)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        ctx = service.Context(
            base_url="http://t",
            secret=self.settings.secret_key,
            organizer_email="org@hue.example",
            organizer_name="VP",
            now=now,
        )
        async with self.db() as db:
            series = await service.create_adhoc(
                db,
                CLI_ACTOR,
                service.SeriesInput(
                    title="Sự cố",
                    start_date=start.date().isoformat(),
                    start_time=start.strftime("%H:%M"),
                    duration_minutes="30",
                    unit_codes=unit_codes,
                    chair_email=chair_email,
                ),
                ctx,
            )
            occurrence = await db.scalar(select(Occurrence).where(Occurrence.series_id == series.id))
            await db.commit()
        return series, occurrence

    def csrf_token(self) -> str:
        """The CSRF token matching this client's cookie (the page would embed it)."""
        seed = next((c.value for c in self.client.session.cookie_jar if c.key == csrf.COOKIE), "")
        return csrf.token_for(self.settings.secret_key, seed)

    async def ensure_csrf_cookie(self) -> None:
        """Visit a page so that the browser has its CSRF cookie."""
        if not any(c.key == csrf.COOKIE for c in self.client.session.cookie_jar):
            await self.client.get("/login")

    async def post_form(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        """POST a form with the CSRF token, without following redirects."""
        await self.ensure_csrf_cookie()
        return await self.client.post(
            path, data={**(data or {}), "csrf_token": self.csrf_token()}, allow_redirects=False, **kw
        )

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        """A JSON API call with the CSRF header (a browser's fetch would send it)."""
        await self.ensure_csrf_cookie()
        headers = {csrf.HEADER: self.csrf_token(), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, allow_redirects=False, **kw)

    async def login(self, email: str, password: str = PASSWORD) -> Any:
        """Sign in through the login form."""
        response = await self.post_form("/login", {"email": email, "password": password, "next": "/"})
        assert response.status == 303, await response.text()
        return response

    async def logout(self) -> None:
        """Sign out."""
        await self.post_form("/logout")


@pytest.fixture
async def world(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> AsyncIterator[World]:
    """The running app on a fresh database."""
    client = await aiohttp_client(create_app(settings))
    yield World(client=client, settings=settings)
