"""The `giaoban` command: serve, db upgrade, demo, import-units, import-people, create-user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from meetings import demo, i18n
from meetings.accounts.permissions import CLI_ACTOR as CLI_ACTOR  # re-exported: tests and benches use it
from meetings.db import create_engine, create_sessionmaker
from meetings.db.migrate import upgrade_sync
from meetings.directory import csv_import, service
from meetings.directory.models import Role
from meetings.errors import DomainError, InvalidInput
from meetings.logs import setup_logging
from meetings.schedule.service import Context
from meetings.settings import Settings, SettingsError, ensure_secret_key, load_settings, settings_markdown

T = TypeVar("T")

Command = Callable[[Settings, argparse.Namespace], int]


async def _with_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            result = await work(db)
            await db.commit()
            return result
    finally:
        await engine.dispose()


def _print_errors(exc: DomainError) -> None:
    print(f"error: {i18n.gettext(exc.message, **exc.params)}", file=sys.stderr)
    if isinstance(exc, InvalidInput):
        for e in exc.errors:
            where = f"line {e.line}: " if e.line else ""
            print(f"  {where}{e.field}: {i18n.gettext(e.message, **e.params)}", file=sys.stderr)


def cmd_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    """Bring the database schema up to date."""
    upgrade_sync(settings.database_url, args.revision)
    print(f"database at {args.revision}")
    return 0


def cmd_demo(settings: Settings, _args: argparse.Namespace) -> int:
    """Load the demo city and print the demo logins."""
    upgrade_sync(settings.database_url)
    settings = ensure_secret_key(settings)
    ctx = Context(
        base_url=settings.base_url,
        secret=settings.secret_key,
        organizer_email=settings.mail_from,
        organizer_name=settings.organizer_name,
        horizon_days=settings.schedule_horizon_days,
    )
    units, people = asyncio.run(_with_db(settings, lambda db: demo.load_demo(db, ctx)))
    print(f"demo city loaded: {units} units and {people} people created (existing ones kept)")
    queued = asyncio.run(_with_db(settings, _queued_mail))
    print(f"meetings: morning 07:30 and afternoon 16:30 on working days; {queued} emails in the outbox,")
    print("  delivered to the built-in mail catcher: sign in as admin, then Mail -> Caught mail")
    print(f"demo logins (password: {demo.DEMO_PASSWORD}):")
    for login in demo.DEMO_LOGINS:
        print(f"  {login.email:32} {login.what}")
    return 0


async def _queued_mail(db: AsyncSession) -> int:
    from sqlalchemy import func, select

    from meetings.mail.models import OutboxMessage

    return int(await db.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from exc


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import units or people from a CSV file, all or nothing."""
    data = _read_file(args.file)
    importer = csv_import.import_units if args.command == "import-units" else csv_import.import_people
    report = asyncio.run(_with_db(settings, lambda db: importer(db, None, data)))
    print(
        f"imported {report.lines} lines: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged"
    )
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    """Create an account with a role."""
    password = os.environ.get("GIAOBAN_PASSWORD") or args.password
    if not password:
        password = getpass.getpass("password: ")
    data = service.PersonInput(
        name=args.name,
        email=args.email,
        unit_code=args.unit or "",
        role=args.role,
        language=args.language,
    )
    person = asyncio.run(
        _with_db(settings, lambda db: service.create_person(db, CLI_ACTOR, data, password=password))
    )
    print(f"created {person.email} ({person.role.value}), id {person.id}")
    return 0


def cmd_settings(_settings: Settings, _args: argparse.Namespace) -> int:
    """Print every setting as a Markdown table."""
    print(settings_markdown(), end="")
    return 0


def parser(serve: Command | None = None) -> argparse.ArgumentParser:
    """The command-line parser; `serve` comes from the web edge (web/cli.py), the domain has no server."""
    p = argparse.ArgumentParser(prog="giaoban", description="Giao Ban: a city's daily meetings.")
    p.add_argument("--config", help="TOML settings file (else GIAOBAN_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    if serve is not None:
        sub.add_parser("serve", help="run the web server").set_defaults(run=serve)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(run=cmd_upgrade)
    sub.add_parser("demo", help="load the demo city of Huế").set_defaults(run=cmd_demo)
    for name, what in (("import-units", "units"), ("import-people", "people")):
        imp = sub.add_parser(name, help=f"import {what} from a UTF-8 CSV file (all or nothing)")
        imp.add_argument("file")
        imp.set_defaults(run=cmd_import)
    cu = sub.add_parser("create-user", help="create an account")
    cu.add_argument("--email", required=True)
    cu.add_argument("--name", required=True)
    cu.add_argument("--role", required=True, choices=[r.value for r in Role])
    cu.add_argument("--unit", help="unit code (required for members)")
    cu.add_argument("--language", default="vi", choices=sorted(i18n.LANGUAGES))
    cu.add_argument("--password", help="password (else GIAOBAN_PASSWORD or a prompt)")
    cu.set_defaults(run=cmd_create_user)
    sub.add_parser("settings", help="list every setting").set_defaults(run=cmd_settings)
    return p


def main(argv: Sequence[str] | None = None, serve: Command | None = None) -> int:
    """Entry point of the `giaoban` command (web.cli.main adds `serve`)."""
    args = parser(serve).parse_args(argv)
    try:
        settings = load_settings(config_file=args.config)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format, access_log=settings.access_log)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    i18n.set_language("en")  # messages on the terminal stay in English, like the options
    try:
        code: int = args.run(settings, args)
    except DomainError as exc:
        _print_errors(exc)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
