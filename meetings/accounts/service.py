"""Signing in and out, sessions, password changes; all take a database session and plain values."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import audit
from meetings.accounts.models import LoginAttempt, LoginSession
from meetings.accounts.passwords import (
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from meetings.accounts.permissions import Actor, Permission
from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.errors import N_, FieldError, Forbidden, InvalidInput, NotFound, RateLimited

# A client address may fail this many times more than one account may: a centre's
# staff often share one NAT address.
CLIENT_FACTOR = 4


def actor_of(person: Person) -> Actor:
    """The Actor for a person."""
    return Actor(
        id=person.id,
        email=person.email,
        name=person.name,
        role=person.role,
        unit_id=person.unit_id,
        language=person.language,
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


async def authenticate(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    client: str,
    max_failures: int,
    window: timedelta,
    now: datetime | None = None,
) -> Person:
    """The active person with this email and password; counts failures and refuses when too many."""
    now = now or utcnow()
    email = email.strip().lower()
    since = now - window
    by_email = await db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.email == email, LoginAttempt.at >= since, LoginAttempt.success.is_(False))
    )
    by_client = await db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.client == client, LoginAttempt.at >= since, LoginAttempt.success.is_(False))
    )
    if (by_email or 0) >= max_failures or (by_client or 0) >= max_failures * CLIENT_FACTOR:
        raise RateLimited(
            N_("Too many failed attempts. Try again in %(minutes)s minutes."),
            minutes=int(window.total_seconds() // 60),
        )
    person = await db.scalar(select(Person).where(Person.email == email))
    ok = verify_password(person.password_hash if person else None, password)
    ok = ok and person is not None and person.active
    db.add(LoginAttempt(email=email[:254], client=client[:64], at=now, success=ok))
    if not ok or person is None:
        await db.commit()
        raise InvalidInput(
            [FieldError("password", N_("Wrong email or password."))],
            N_("Wrong email or password."),
        )
    if person.password_hash and needs_rehash(person.password_hash):
        person.password_hash = hash_password(password)
    return person


async def open_session(db: AsyncSession, person: Person, *, lifetime: timedelta, user_agent: str = "") -> str:
    """Start a login session for the person; returns the cookie token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        LoginSession(
            token_hash=_token_hash(token),
            person_id=person.id,
            created_at=now,
            expires_at=now + lifetime,
            user_agent=user_agent[:300],
        )
    )
    # Old expired sessions are swept here rather than by a job: logins are frequent enough.
    await db.execute(delete(LoginSession).where(LoginSession.expires_at < now))
    return token


async def person_for_session(db: AsyncSession, token: str, *, lifetime: timedelta) -> Person | None:
    """The active person signed in with this token, sliding the expiry forward."""
    if not token or len(token) > 128:
        return None
    now = utcnow()
    row = await db.scalar(select(LoginSession).where(LoginSession.token_hash == _token_hash(token)))
    if row is None or row.expires_at < now:
        return None
    person = await db.get(Person, row.person_id)
    if person is None or not person.active:
        return None
    # Only write when it matters, so that page views stay read-only most of the time.
    if row.expires_at - now < lifetime - timedelta(minutes=5):
        row.expires_at = now + lifetime
    return person


async def close_session(db: AsyncSession, token: str) -> None:
    """End the login session with this token."""
    await db.execute(delete(LoginSession).where(LoginSession.token_hash == _token_hash(token)))


async def change_password(db: AsyncSession, person_id: int, *, current: str, new: str, confirm: str) -> None:
    """Change one's own password after checking the current one; other sessions end."""
    person = await db.get(Person, person_id)
    if person is None:
        raise NotFound(N_("This person does not exist."))
    errors: list[FieldError] = []
    if not verify_password(person.password_hash, current):
        errors.append(FieldError("current", N_("The current password is wrong.")))
    errors += password_problems(new, "new")
    if new != confirm:
        errors.append(FieldError("confirm", N_("The two new passwords differ.")))
    if errors:
        raise InvalidInput(errors)
    person.password_hash = hash_password(new)
    await db.execute(delete(LoginSession).where(LoginSession.person_id == person.id))


async def reset_password(db: AsyncSession, actor: Actor, person_id: int, *, new: str) -> None:
    """An administrator sets a new password for someone; their sessions end; audited."""
    if not actor.can(Permission.ACCOUNTS_MANAGE):
        raise Forbidden(N_("You may not do this."))
    person = await db.get(Person, person_id)
    if person is None:
        raise NotFound(N_("This person does not exist."))
    problems = password_problems(new)
    if problems:
        raise InvalidInput(problems)
    person.password_hash = hash_password(new)
    await db.execute(delete(LoginSession).where(LoginSession.person_id == person.id))
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="password.reset",
        target_type="person",
        target_id=person.id,
        details={"email": person.email},
    )
