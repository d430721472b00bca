"""Signed, expiring personal links: join a meeting, answer an invitation."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.errors import N_, Forbidden
from meetings.schedule.models import Occurrence

JOIN_SALT = "giaoban.join.v1"
ANSWER_SALT = "giaoban.answer.v1"


class LinkError(Forbidden):
    """A link that was tampered with or has expired."""


@dataclass(frozen=True)
class JoinLink:
    """Who may join which series (or one occurrence of it) until when."""

    person_id: int
    series_id: int
    occurrence_id: int | None
    expires: datetime


@dataclass(frozen=True)
class AnswerLink:
    """One invitee's accept or decline link for a series or an occurrence."""

    person_id: int
    series_id: int
    occurrence_id: int | None
    answer: str
    nonce: str
    expires: datetime


@functools.lru_cache(maxsize=8)
def _serializer(secret: str, salt: str) -> URLSafeSerializer:
    """One serializer per secret and salt (thousands of links are signed per send)."""
    return URLSafeSerializer(secret, salt=salt)


def _dump(secret: str, salt: str, payload: dict[str, Any]) -> str:
    return _serializer(secret, salt).dumps(payload)


def _load(secret: str, salt: str, token: str) -> dict[str, Any]:
    if len(token) > 1000:
        raise LinkError(N_("This link is not valid."))
    try:
        data = URLSafeSerializer(secret, salt=salt).loads(token)
    except BadSignature as exc:
        raise LinkError(N_("This link is not valid.")) from exc
    if not isinstance(data, dict) or not isinstance(data.get("x"), int):
        raise LinkError(N_("This link is not valid."))
    if data["x"] < int(utcnow().timestamp()):
        raise LinkError(N_("This link has expired."))
    return data


def _int(data: dict[str, Any], key: str, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int):
        raise LinkError(N_("This link is not valid."))
    return value


def make_join_token(secret: str, link: JoinLink) -> str:
    """The token of a personal join link."""
    payload = {
        "p": link.person_id,
        "s": link.series_id,
        "o": link.occurrence_id,
        "x": int(link.expires.timestamp()),
    }
    return _dump(secret, JOIN_SALT, payload)


def read_join_token(secret: str, token: str) -> JoinLink:
    """The join link a token stands for; LinkError when tampered with or expired."""
    data = _load(secret, JOIN_SALT, token)
    return JoinLink(
        person_id=_int(data, "p"),
        series_id=_int(data, "s"),
        occurrence_id=_int(data, "o", optional=True),
        expires=datetime.fromtimestamp(data["x"], tz=utcnow().tzinfo),
    )


async def join_link_holder(
    db: AsyncSession, secret: str, token: str, occurrence: Occurrence | None = None
) -> tuple[JoinLink, Person]:
    """Who a join link lets in, checked against an occurrence when one is given.

    The one rule for the room page, its socket and the link's own page: a valid token, for that
    occurrence's series (and that occurrence, if the link names one), of an active person.
    """
    link = read_join_token(secret, token)
    if occurrence is not None and (
        occurrence.series_id != link.series_id or link.occurrence_id not in {None, occurrence.id}
    ):
        raise LinkError(N_("This link is not valid."))
    person = await db.get(Person, link.person_id)
    if person is None or not person.active:
        raise LinkError(N_("This link is not valid."))
    return link, person


def make_answer_token(
    secret: str, *, person_id: int, series_id: int, occurrence_id: int | None, answer: str, expires: datetime
) -> str:
    """The token of a personal accept or decline link (each with its own nonce)."""
    payload = {
        "p": person_id,
        "s": series_id,
        "o": occurrence_id,
        "a": answer,
        "n": secrets.token_hex(8),
        "x": int(expires.timestamp()),
    }
    return _dump(secret, ANSWER_SALT, payload)


def read_answer_token(secret: str, token: str) -> AnswerLink:
    """The answer link a token stands for; LinkError when tampered with or expired."""
    data = _load(secret, ANSWER_SALT, token)
    answer, nonce = data.get("a"), data.get("n")
    if answer not in {"accepted", "declined"} or not isinstance(nonce, str):
        raise LinkError(N_("This link is not valid."))
    return AnswerLink(
        person_id=_int(data, "p"),
        series_id=_int(data, "s"),
        occurrence_id=_int(data, "o", optional=True),
        answer=answer,
        nonce=nonce,
        expires=datetime.fromtimestamp(data["x"], tz=utcnow().tzinfo),
    )
