"""Reading form and JSON bodies into plain values."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from meetings.errors import N_, FieldError, InvalidInput, NotFound

MAX_FIELD = 10_000


async def form_fields(request: web.Request, *names: str) -> dict[str, str]:
    """Named text fields of a posted form ('' when absent); over-long values are refused."""
    form = await request.post()
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for name in names:
        raw = form.get(name, "")
        value = raw if isinstance(raw, str) else ""
        if len(value) > MAX_FIELD:
            errors.append(FieldError(name, N_("Use at most %(n)s characters."), {"n": MAX_FIELD}))
        values[name] = value
    if errors:
        raise InvalidInput(errors)
    return values


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    if request.content_type != "application/json":
        raise InvalidInput([FieldError("body", N_("Send a JSON object (Content-Type: application/json)."))])
    try:
        data = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput([FieldError("body", N_("The body is not valid JSON."))]) from exc
    if not isinstance(data, dict):
        raise InvalidInput([FieldError("body", N_("Send a JSON object (Content-Type: application/json)."))])
    return data


def text_field(data: dict[str, Any], name: str, default: str = "") -> str:
    """A string field of a JSON object; anything but a string is refused."""
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput([FieldError(name, N_("This field must be text."))])
    return value


def int_param(request: web.Request, name: str = "id") -> int:
    """An integer path parameter; anything else is a 404."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound(N_("This page does not exist."))
    return int(raw)
