"""CSV import of units and people: idempotent by code/email, all-or-nothing, every bad line named."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import audit
from meetings.accounts.permissions import Actor, Permission
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.directory.service import (
    CYCLE,
    LAST_ADMINISTRATOR,
    PersonInput,
    UnitInput,
    administrators_remain,
    parent_cycle,
    person_search_text,
    require,
    unit_parents,
    unit_search_text,
    validate_person,
    validate_unit,
)
from meetings.errors import N_, FieldError, InvalidInput

UNIT_COLUMNS = ("code", "kind", "name")
UNIT_OPTIONAL = ("parent", "phone", "operator")
PEOPLE_COLUMNS = ("name", "email")
PEOPLE_OPTIONAL = ("unit", "phone", "title", "role", "language")
MAX_ROWS = 20_000


@dataclass
class ImportReport:
    """What an import did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    lines: int = 0
    created_keys: list[str] = field(default_factory=list)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput.one(
            FieldError("file", N_("The file is not UTF-8 text (line %(line)s)."), {"line": line}, line)
        ) from exc


def _rows(
    data: bytes, required: tuple[str, ...], optional: tuple[str, ...]
) -> list[tuple[int, dict[str, str]]]:
    """Parse CSV bytes into (line number, row) after checking the header."""
    text = _decode(data)
    if not text.strip():
        raise InvalidInput.one(FieldError("file", N_("The file is empty."), line=1))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    unknown = [h for h in header if h not in required + optional]
    if missing or unknown:
        msg = N_("Wrong header: expected columns %(expected)s; missing %(missing)s; unknown %(unknown)s.")
        params = {
            "expected": ", ".join(required + optional),
            "missing": ", ".join(missing) or "-",
            "unknown": ", ".join(unknown) or "-",
        }
        raise InvalidInput.one(FieldError("file", msg, params, 1))
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if len(rows) >= MAX_ROWS:
                msg = N_("The file has more than %(n)s rows.")
                raise InvalidInput.one(FieldError("file", msg, {"n": MAX_ROWS}))
            line = reader.line_num
            if None in row:
                rows.append((line, {"__error__": "extra"}))
                continue
            values = {k: (v or "") for k, v in row.items()}
            if not any(v.strip() for v in values.values()):
                continue
            rows.append((line, values))
    except csv.Error as exc:
        msg = N_("The file is not valid CSV (line %(line)s).")
        raise InvalidInput.one(FieldError("file", msg, {"line": reader.line_num}, reader.line_num)) from exc
    return rows


def _with_line(errors: list[FieldError], line: int) -> list[FieldError]:
    for e in errors:
        e.line = line
    return errors


def _fail(errors: list[FieldError]) -> InvalidInput:
    return InvalidInput(
        sorted(errors, key=lambda e: e.line or 0),
        N_("Nothing was imported: %(count)s problems, listed by line."),
        count=len(errors),
    )


async def _cycles(db: AsyncSession, cleaned: list[tuple[int, UnitInput]]) -> list[FieldError]:
    """One error per parent cycle the file would make, on the first line of the cycle."""
    parents = await unit_parents(db)
    lines: dict[str, int] = {}
    for line, clean in cleaned:
        lines.setdefault(clean.code, line)
        if clean.parent_code:  # an empty parent keeps the unit's parent
            parents[clean.code] = clean.parent_code
    errors: list[FieldError] = []
    reported: set[str] = set()
    for code, line in lines.items():
        cycle = parent_cycle(parents, code)
        if cycle and code not in reported:
            reported.update(cycle)
            errors.append(FieldError("parent", CYCLE, {"code": code, "cycle": " → ".join(cycle)}, line))
    return errors


async def import_units(db: AsyncSession, actor: Actor | None, data: bytes) -> ImportReport:
    """Create or update units from CSV (code, kind, name[, parent, phone, operator]); nothing is
    written on any error. An empty parent, phone or operator keeps the unit's."""
    if actor is not None:
        require(actor, Permission.DIRECTORY_MANAGE)
    rows = _rows(data, UNIT_COLUMNS, UNIT_OPTIONAL)
    existing = {u.code: u for u in await db.scalars(select(Unit))}
    file_codes: dict[str, int] = {}
    errors: list[FieldError] = []
    cleaned: list[tuple[int, UnitInput]] = []
    # Each code's kind after the import (an operator may be a unit the file creates or changes).
    kinds = {code: u.kind.value for code, u in existing.items()}
    for line, _row in rows:
        code = _row.get("code", "").strip().upper()
        if code:
            file_codes.setdefault(code, line)
            kinds[code] = _row.get("kind", "").strip().lower()
    known = {**existing, **file_codes}
    seen: dict[str, int] = {}
    for line, row in rows:
        if "__error__" in row:
            errors.append(FieldError("file", N_("Too many fields on this line."), line=line))
            continue
        clean, problems = validate_unit(
            UnitInput(
                row["code"],
                row["kind"],
                row["name"],
                row.get("parent", ""),
                phone=row.get("phone", ""),
                operator_code=row.get("operator", ""),
            ),
            known,
            kinds,
        )
        if clean.code and clean.code in seen:
            problems.append(
                FieldError(
                    "code",
                    N_("Code %(code)s repeats line %(first)s."),
                    {"code": clean.code, "first": seen[clean.code]},
                )
            )
        seen.setdefault(clean.code, line)
        errors += _with_line(problems, line)
        cleaned.append((line, clean))
    if not errors:
        errors += await _cycles(db, cleaned)
    if errors:
        raise _fail(errors)
    report = ImportReport(lines=len(cleaned))
    units: dict[str, Unit] = dict(existing)
    for _line, clean in cleaned:
        unit = units.get(clean.code)
        if unit is None:
            unit = Unit(code=clean.code, kind=UnitKind(clean.kind), name=clean.name, active=True)
            db.add(unit)
            units[clean.code] = unit
            report.created += 1
            report.created_keys.append(clean.code)
        elif (
            unit.kind == clean.kind
            and unit.name == clean.name
            and unit.active
            and (not clean.phone or unit.phone == clean.phone)
            and (
                not clean.operator_code
                or unit.operator_id == getattr(existing.get(clean.operator_code), "id", 0)
            )
        ):
            report.unchanged += 1
        else:
            unit.kind, unit.name, unit.active = UnitKind(clean.kind), clean.name, True
            report.updated += 1
        if clean.phone:  # an empty phone, like an empty parent, keeps the unit's
            unit.phone = clean.phone
        unit.search_text = unit_search_text(unit)
    await db.flush()
    for _line, clean in cleaned:
        unit = units[clean.code]
        parent_id = units[clean.parent_code].id if clean.parent_code else None
        if clean.parent_code and unit.parent_id != parent_id:
            unit.parent_id = parent_id
        operator_id = units[clean.operator_code].id if clean.operator_code else None
        if clean.operator_code and unit.operator_id != operator_id:
            unit.operator_id = operator_id
    await audit.record(
        db,
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else "cli",
        action="units.import",
        target_type="unit",
        details={
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
        },
    )
    return report


async def import_people(db: AsyncSession, actor: Actor | None, data: bytes) -> ImportReport:
    """Create or update people from CSV (name, email[, unit, phone, title, role, language]), all or none."""
    if actor is not None:
        require(actor, Permission.DIRECTORY_MANAGE)
    rows = _rows(data, PEOPLE_COLUMNS, PEOPLE_OPTIONAL)
    codes = {code: uid for code, uid in (await db.execute(select(Unit.code, Unit.id)))}
    existing = {p.email: p for p in await db.scalars(select(Person))}
    errors: list[FieldError] = []
    cleaned: list[PersonInput] = []
    seen: dict[str, int] = {}
    admin = Role.ADMINISTRATOR.value
    leaving: dict[int, int] = {}  # active administrators the file demotes: id -> line
    joining = 0  # people the file makes active administrators
    for line, row in rows:
        if "__error__" in row:
            errors.append(FieldError("file", N_("Too many fields on this line."), line=line))
            continue
        clean, problems = validate_person(
            PersonInput(
                name=row["name"],
                email=row["email"],
                unit_code=row.get("unit", ""),
                phone=row.get("phone", ""),
                title=row.get("title", ""),
                role=row.get("role", "") or Role.MEMBER.value,
                language=row.get("language", "") or "vi",
            ),
            codes,
        )
        if clean.email and clean.email in seen:
            problems.append(
                FieldError(
                    "email",
                    N_("Email %(email)s repeats line %(first)s."),
                    {"email": clean.email, "first": seen[clean.email]},
                )
            )
        seen.setdefault(clean.email, line)
        before = existing.get(clean.email)
        was_admin = before is not None and before.role is Role.ADMINISTRATOR and before.active
        if was_admin and before is not None and clean.role != admin:
            if actor is not None and before.id == actor.id:
                problems.append(FieldError("role", N_("You cannot remove your own administrator role.")))
            leaving.setdefault(before.id, line)
        elif clean.role == admin and not was_admin:
            joining += 1
        errors += _with_line(problems, line)
        cleaned.append(clean)
    if leaving and not await administrators_remain(db, set(leaving), joining):
        errors.append(FieldError("role", LAST_ADMINISTRATOR, line=min(leaving.values())))
    if errors:
        raise _fail(errors)
    report = ImportReport(lines=len(cleaned))
    for clean in cleaned:
        person = existing.get(clean.email)
        values = {
            "name": clean.name,
            "phone": clean.phone,
            "title": clean.title,
            "role": Role(clean.role),
            "language": clean.language,
            "unit_id": codes[clean.unit_code] if clean.unit_code else None,
        }
        if person is None:
            person = Person(email=clean.email, active=True, **values)
            db.add(person)
            report.created += 1
            report.created_keys.append(clean.email)
        elif all(getattr(person, k) == v for k, v in values.items()) and person.active:
            report.unchanged += 1
        else:
            for k, v in values.items():
                setattr(person, k, v)
            person.active = True
            report.updated += 1
        person.search_text = person_search_text(person)
    await audit.record(
        db,
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else "cli",
        action="people.import",
        target_type="person",
        details={
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
        },
    )
    await db.flush()
    return report
