"""Directory operations: list, search, create, edit and deactivate units and people."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from meetings import audit
from meetings.accounts.passwords import hash_password, password_problems
from meetings.accounts.permissions import Actor, Permission
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.text import fold, has_control, normalize

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
PHONE_RE = re.compile(r"^[0-9 +().-]{0,32}$")
MAX_NAME = 200


CONTROL_CHARACTERS = N_("Control characters (such as NUL or a line break) are not allowed here.")
LAST_ADMINISTRATOR = N_(
    "At least one active administrator must remain: make someone else an administrator first."
)
CYCLE = N_("Unit %(code)s cannot be under itself (%(cycle)s).")


def require(actor: Actor, permission: Permission) -> None:
    """Raise Forbidden unless the actor has the permission."""
    if not actor.can(permission):
        raise Forbidden(N_("You may not do this."))


def unit_search_text(unit: Unit) -> str:
    """Folded text that a unit is found by."""
    return fold(f"{unit.code} {unit.name}")[:400]


def person_search_text(person: Person) -> str:
    """Folded text that a person is found by."""
    return fold(f"{person.name} {person.email} {person.phone} {person.title}")[:600]


def check_email(raw: str, field: str = "email") -> tuple[str, list[FieldError]]:
    """A normalised lower-case email address, or the problem with it."""
    text = raw.strip()
    if not text:
        return "", [FieldError(field, N_("This field is required."))]
    try:
        result = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return text, [FieldError(field, N_("This is not a valid email address."))]
    return result.normalized.lower(), []


def without_controls(errors: list[FieldError], fields: Mapping[str, str]) -> list[FieldError]:
    """The errors, where a field holding control characters has that one error instead of others."""
    bad = [name for name, value in fields.items() if has_control(value)]
    if not bad:
        return errors
    return [e for e in errors if e.field not in bad] + [FieldError(name, CONTROL_CHARACTERS) for name in bad]


def parent_cycle(parents: Mapping[str, str], code: str) -> list[str]:
    """The codes from `code` up through its parents back to `code`, or [] when it is not in a cycle."""
    path = [code]
    seen = {code}
    current = parents.get(code, "")
    while current:
        path.append(current)
        if current == code:
            return path
        if current in seen:  # a cycle above this unit, not through it
            return []
        seen.add(current)
        current = parents.get(current, "")
    return []


@dataclass(frozen=True)
class UnitInput:
    """Fields of a unit as typed in a form or read from a CSV row."""

    code: str
    kind: str
    name: str
    parent_code: str = ""
    # The number the support team calls, and the telecom operator or support team keeping the
    # unit connected (a unit of kind telecom or support, by code).
    phone: str = ""
    operator_code: str = ""


# What a unit's operator may be: whoever keeps a unit connected (meetings.readiness).
OPERATOR_KINDS = frozenset({UnitKind.TELECOM.value, UnitKind.SUPPORT.value})


@dataclass(frozen=True)
class PersonInput:
    """Fields of a person as typed in a form or read from a CSV row."""

    name: str
    email: str
    unit_code: str = ""
    phone: str = ""
    title: str = ""
    role: str = "member"
    language: str = "vi"


def validate_unit(
    data: UnitInput, known_codes: Mapping[str, Any], kinds: Mapping[str, str] | None = None
) -> tuple[UnitInput, list[FieldError]]:
    """Clean a unit's fields and list what is wrong (the parent must be in known_codes; the
    operator too, and of kind telecom or support by `kinds`, code → kind)."""
    errors: list[FieldError] = []
    code = normalize(data.code).upper()
    name = normalize(data.name)
    kind = normalize(data.kind).lower()
    parent = normalize(data.parent_code).upper()
    phone = normalize(data.phone)
    operator = normalize(data.operator_code).upper()
    if not code:
        errors.append(FieldError("code", N_("This field is required.")))
    elif not CODE_RE.match(code):
        errors.append(FieldError("code", N_("Use 1 to 32 capital letters, digits, '-' or '_'.")))
    if kind not in {k.value for k in UnitKind}:
        errors.append(FieldError("kind", N_("Unknown unit kind %(kind)s."), {"kind": data.kind}))
    if not name:
        errors.append(FieldError("name", N_("This field is required.")))
    elif len(name) > MAX_NAME:
        errors.append(FieldError("name", N_("Use at most %(n)s characters."), {"n": MAX_NAME}))
    if parent and parent not in known_codes:
        errors.append(FieldError("parent_code", N_("Unknown unit %(code)s."), {"code": parent}))
    if parent and parent == code:
        errors.append(FieldError("parent_code", N_("A unit cannot be its own parent.")))
    if not PHONE_RE.match(phone):
        errors.append(FieldError("phone", N_("This is not a valid phone number.")))
    if operator and operator == code:
        errors.append(FieldError("operator_code", N_("A unit cannot be its own operator.")))
    elif operator and operator not in known_codes:
        errors.append(FieldError("operator_code", N_("Unknown unit %(code)s."), {"code": operator}))
    elif operator and kinds is not None and kinds.get(operator) not in OPERATOR_KINDS:
        errors.append(
            FieldError("operator_code", N_("The operator must be a telecom operator or a support team."))
        )
    raw = {
        "code": data.code,
        "kind": data.kind,
        "name": data.name,
        "parent_code": data.parent_code,
        "phone": data.phone,
        "operator_code": data.operator_code,
    }
    cleaned = UnitInput(
        code=code, kind=kind, name=name, parent_code=parent, phone=phone, operator_code=operator
    )
    return cleaned, without_controls(errors, raw)


def validate_person(
    data: PersonInput, known_codes: Mapping[str, Any]
) -> tuple[PersonInput, list[FieldError]]:
    """Clean a person's fields and list what is wrong (the unit must be in known_codes)."""
    errors: list[FieldError] = []
    name = normalize(data.name)
    email, email_errors = check_email(data.email)
    errors += email_errors
    unit_code = normalize(data.unit_code).upper()
    phone = normalize(data.phone)
    title = normalize(data.title)
    role = normalize(data.role).lower() or Role.MEMBER.value
    language = normalize(data.language).lower() or "vi"
    if not name:
        errors.append(FieldError("name", N_("This field is required.")))
    elif len(name) > MAX_NAME:
        errors.append(FieldError("name", N_("Use at most %(n)s characters."), {"n": MAX_NAME}))
    if len(title) > MAX_NAME:
        errors.append(FieldError("title", N_("Use at most %(n)s characters."), {"n": MAX_NAME}))
    if not PHONE_RE.match(phone):
        errors.append(FieldError("phone", N_("This is not a valid phone number.")))
    if role not in {r.value for r in Role}:
        errors.append(FieldError("role", N_("Unknown role %(role)s."), {"role": data.role}))
    elif role == Role.MEMBER.value and not unit_code:
        errors.append(FieldError("unit_code", N_("A member must belong to a unit.")))
    if unit_code and unit_code not in known_codes:
        errors.append(FieldError("unit_code", N_("Unknown unit %(code)s."), {"code": unit_code}))
    if language not in {"vi", "en"}:
        errors.append(FieldError("language", N_("Choose Vietnamese or English.")))
    cleaned = PersonInput(
        name=name,
        email=email,
        unit_code=unit_code,
        phone=phone,
        title=title,
        role=role,
        language=language,
    )
    raw = {
        "name": data.name,
        "email": data.email,
        "unit_code": data.unit_code,
        "phone": data.phone,
        "title": data.title,
        "role": data.role,
        "language": data.language,
    }
    return cleaned, without_controls(errors, raw)


async def unit_codes(db: AsyncSession) -> dict[str, int]:
    """Every unit code with its id."""
    rows = await db.execute(select(Unit.code, Unit.id))
    return {code: uid for code, uid in rows}


async def unit_kinds(db: AsyncSession) -> dict[str, str]:
    """Every unit code with its kind."""
    rows = await db.execute(select(Unit.code, Unit.kind))
    return {code: UnitKind(kind).value for code, kind in rows}


async def unit_parents(db: AsyncSession) -> dict[str, str]:
    """Every unit code with its parent's code ('' for a top unit)."""
    parent = aliased(Unit)
    rows = await db.execute(select(Unit.code, parent.code).outerjoin(parent, Unit.parent_id == parent.id))
    return {code: parent_code or "" for code, parent_code in rows}


async def administrators_remain(db: AsyncSession, leaving: set[int], joining: int = 0) -> bool:
    """False when taking `leaving` (person ids) out of the active administrators leaves none.

    `joining` counts people who become active administrators in the same change. The active
    administrators' rows are locked (PostgreSQL) so that two concurrent demotions cannot both pass.
    """
    admins = set(
        await db.scalars(
            select(Person.id)
            .where(Person.role == Role.ADMINISTRATOR, Person.active.is_(True))
            .with_for_update()
        )
    )
    if not admins & leaving:
        return True
    return joining > 0 or bool(admins - leaving)


# --- reading -------------------------------------------------------------------------------


async def list_units(
    db: AsyncSession, *, q: str = "", kind: str = "", include_inactive: bool = False
) -> list[Unit]:
    """Units matching a diacritic-insensitive query, committee first, then by kind and name."""
    stmt = select(Unit).options(selectinload(Unit.parent), selectinload(Unit.operator))
    if q.strip():
        stmt = stmt.where(Unit.search_text.contains(fold(q)))
    if kind:
        stmt = stmt.where(Unit.kind == kind)
    if not include_inactive:
        stmt = stmt.where(Unit.active.is_(True))
    kinds_order = {k: i for i, k in enumerate(UnitKind)}
    units = list(await db.scalars(stmt.order_by(Unit.code)))
    units.sort(key=lambda u: (kinds_order[u.kind], fold(u.name)))
    return units


async def get_unit(db: AsyncSession, unit_id: int) -> Unit:
    """The unit with this id."""
    unit = await db.scalar(
        select(Unit).options(selectinload(Unit.parent), selectinload(Unit.operator)).where(Unit.id == unit_id)
    )
    if unit is None:
        raise NotFound(N_("This unit does not exist."))
    return unit


async def list_people(
    db: AsyncSession,
    *,
    q: str = "",
    unit_id: int | None = None,
    include_inactive: bool = False,
    limit: int = 200,
    offset: int = 0,
) -> tuple[list[Person], int]:
    """People matching a diacritic-insensitive query, with the total count."""
    stmt = select(Person)
    if q.strip():
        folded = fold(q)
        stmt = stmt.outerjoin(Unit, Person.unit_id == Unit.id).where(
            or_(Person.search_text.contains(folded), Unit.search_text.contains(folded))
        )
    if unit_id is not None:
        stmt = stmt.where(Person.unit_id == unit_id)
    if not include_inactive:
        stmt = stmt.where(Person.active.is_(True))
    total = await db.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await db.scalars(
        stmt.options(selectinload(Person.unit)).order_by(Person.name, Person.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_person(db: AsyncSession, person_id: int) -> Person:
    """The person with this id."""
    person = await db.scalar(select(Person).options(selectinload(Person.unit)).where(Person.id == person_id))
    if person is None:
        raise NotFound(N_("This person does not exist."))
    return person


# --- writing -------------------------------------------------------------------------------


async def create_unit(db: AsyncSession, actor: Actor, data: UnitInput) -> Unit:
    """Create a unit; audited. Raises InvalidInput or Conflict."""
    require(actor, Permission.DIRECTORY_MANAGE)
    codes = await unit_codes(db)
    clean, errors = validate_unit(data, codes, await unit_kinds(db))
    if clean.code in codes:
        errors.append(FieldError("code", N_("A unit with code %(code)s exists."), {"code": clean.code}))
    if errors:
        raise InvalidInput(errors)
    unit = Unit(
        code=clean.code,
        kind=UnitKind(clean.kind),
        name=clean.name,
        parent_id=codes.get(clean.parent_code) if clean.parent_code else None,
        phone=clean.phone,
        operator_id=codes.get(clean.operator_code) if clean.operator_code else None,
    )
    unit.search_text = unit_search_text(unit)
    db.add(unit)
    await db.flush()
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="unit.create",
        target_type="unit",
        target_id=unit.id,
        details={"code": unit.code, "name": unit.name, "phone": unit.phone, "operator_id": unit.operator_id},
    )
    return unit


async def update_unit(db: AsyncSession, actor: Actor, unit_id: int, data: UnitInput) -> Unit:
    """Edit a unit (its code included); audited."""
    require(actor, Permission.DIRECTORY_MANAGE)
    unit = await get_unit(db, unit_id)
    codes = await unit_codes(db)
    kinds = await unit_kinds(db)
    kinds[unit.code] = ""  # the unit itself, renamed or not, is not its own operator
    clean, errors = validate_unit(data, codes, kinds)
    if clean.code != unit.code and clean.code in codes:
        errors.append(FieldError("code", N_("A unit with code %(code)s exists."), {"code": clean.code}))
    if not errors and clean.parent_code:

        def renamed(code: str) -> str:  # the unit may change its code in the same edit
            return clean.code if code == unit.code else code

        parents = {renamed(c): renamed(p) for c, p in (await unit_parents(db)).items()}
        parents[clean.code] = renamed(clean.parent_code)
        cycle = parent_cycle(parents, clean.code)
        if cycle:
            errors.append(FieldError("parent_code", CYCLE, {"code": clean.code, "cycle": " → ".join(cycle)}))
    if errors:
        raise InvalidInput(errors)
    before = {
        "code": unit.code,
        "kind": unit.kind.value,
        "name": unit.name,
        "phone": unit.phone,
        "operator_id": unit.operator_id,
    }
    unit.code = clean.code
    unit.kind = UnitKind(clean.kind)
    unit.name = clean.name
    unit.parent_id = codes.get(clean.parent_code) if clean.parent_code else None
    unit.phone = clean.phone
    unit.operator_id = codes.get(clean.operator_code) if clean.operator_code else None
    unit.search_text = unit_search_text(unit)
    after = {
        "code": unit.code,
        "kind": unit.kind.value,
        "name": unit.name,
        "phone": unit.phone,
        "operator_id": unit.operator_id,
    }
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="unit.update",
        target_type="unit",
        target_id=unit.id,
        details={"before": before, "after": after},
    )
    return unit


async def set_unit_active(db: AsyncSession, actor: Actor, unit_id: int, active: bool) -> Unit:
    """Deactivate or reactivate a unit; audited."""
    require(actor, Permission.DIRECTORY_MANAGE)
    unit = await get_unit(db, unit_id)
    unit.active = active
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="unit.activate" if active else "unit.deactivate",
        target_type="unit",
        target_id=unit.id,
        details={"code": unit.code},
    )
    return unit


def _apply_person(person: Person, clean: PersonInput, codes: Mapping[str, int]) -> None:
    person.name = clean.name
    person.email = clean.email
    person.phone = clean.phone
    person.title = clean.title
    person.role = Role(clean.role)
    person.language = clean.language
    person.unit_id = codes[clean.unit_code] if clean.unit_code else None
    person.search_text = person_search_text(person)


async def create_person(db: AsyncSession, actor: Actor, data: PersonInput, *, password: str = "") -> Person:
    """Create a person (an account too when a password is given); audited."""
    require(actor, Permission.DIRECTORY_MANAGE)
    codes = await unit_codes(db)
    clean, errors = validate_person(data, codes)
    if password:
        errors += password_problems(password)
    if clean.email and await db.scalar(select(Person.id).where(Person.email == clean.email)):
        errors.append(FieldError("email", N_("Someone with this email exists.")))
    if errors:
        raise InvalidInput(errors)
    person = Person()
    _apply_person(person, clean, codes)
    person.password_hash = hash_password(password) if password else None
    db.add(person)
    await db.flush()
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="person.create",
        target_type="person",
        target_id=person.id,
        details={"email": person.email, "role": person.role.value},
    )
    return person


async def update_person(db: AsyncSession, actor: Actor, person_id: int, data: PersonInput) -> Person:
    """Edit a person, role included; audited."""
    require(actor, Permission.DIRECTORY_MANAGE)
    person = await get_person(db, person_id)
    codes = await unit_codes(db)
    clean, errors = validate_person(data, codes)
    taken = clean.email != person.email and await db.scalar(
        select(Person.id).where(Person.email == clean.email)
    )
    if clean.email and taken:
        errors.append(FieldError("email", N_("Someone with this email exists.")))
    if person.id == actor.id and clean.role != Role.ADMINISTRATOR.value:
        errors.append(FieldError("role", N_("You cannot remove your own administrator role.")))
    elif clean.role != Role.ADMINISTRATOR.value and not await administrators_remain(db, {person.id}):
        errors.append(FieldError("role", LAST_ADMINISTRATOR))
    if errors:
        raise InvalidInput(errors)
    before = {
        "email": person.email,
        "name": person.name,
        "role": person.role.value,
        "unit_id": person.unit_id,
    }
    _apply_person(person, clean, codes)
    after = {
        "email": person.email,
        "name": person.name,
        "role": person.role.value,
        "unit_id": person.unit_id,
    }
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="person.update",
        target_type="person",
        target_id=person.id,
        details={"before": before, "after": after},
    )
    return person


async def set_person_active(db: AsyncSession, actor: Actor, person_id: int, active: bool) -> Person:
    """Deactivate or reactivate a person (a deactivated person cannot sign in); audited."""
    require(actor, Permission.DIRECTORY_MANAGE)
    person = await get_person(db, person_id)
    if person.id == actor.id and not active:
        raise Conflict(N_("You cannot deactivate yourself."))
    if not active and not await administrators_remain(db, {person.id}):
        raise Conflict(LAST_ADMINISTRATOR)
    person.active = active
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="person.activate" if active else "person.deactivate",
        target_type="person",
        target_id=person.id,
        details={"email": person.email},
    )
    return person
