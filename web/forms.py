"""Reading request bodies (forms and JSON) and path parameters into plain values: the one body parser.

Every view reads its body through here, never with `request.post()`, `request.json()`,
`request.text()` or `request.multipart()` directly. Whatever a client sends, the answer is a
clear 4xx in the request's language: 400 for a body that cannot be read (broken multipart, an
unknown charset, invalid UTF-8 or a NUL character in a form), 413 for one that is too large,
422 for JSON that is not sensible JSON (the API's contract: field "body") and for well-formed
input of the wrong type or size (a list where text is expected, a file sent as a plain field,
an over-long value).
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from meetings.errors import N_, FieldError, InvalidInput, NotFound
from meetings.i18n import gettext as _
from web import keys
from web.form_data import EMPTY_FORM, Form, Upload

MAX_PARTS = 2_000  # fields of one form
MAX_JSON_DEPTH = 32  # nesting of arrays and objects; nothing we accept is deeper than 3
MAX_JSON_TEXT = 100_000  # characters of one JSON string field (the domain limits each field further)
MAX_INT = 2**31 - 1  # every id and count fits a database integer
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class MalformedBody(web.HTTPBadRequest):
    """A body that cannot be read at all (400), with a translated reason."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(text=_(message, **params))


def _too_large(request: web.Request) -> web.HTTPRequestEntityTooLarge:
    limit = request.client_max_size
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=request.content_length or limit + 1,
        text=_("The request is too large (at most %(n)s bytes).", n=limit),
    )


async def read_form(request: web.Request) -> Form:
    """The posted form (read once per request; the CSRF check and the view share it)."""
    if keys.FORM in request:
        return request[keys.FORM]
    if request.content_type not in FORM_TYPES or request.method not in {"POST", "PUT", "PATCH", "DELETE"}:
        form = EMPTY_FORM
    elif request.content_type == "multipart/form-data":
        form = await _read_multipart(request)
    else:
        form = await _read_urlencoded(request)
    request[keys.FORM] = form
    return form


async def _read_urlencoded(request: web.Request) -> Form:
    try:
        posted = await request.post()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(request) from exc
    except LookupError as exc:
        raise MalformedBody(N_("The form uses an unknown character set.")) from exc
    except UnicodeDecodeError as exc:
        raise MalformedBody(N_("The form is not valid UTF-8 text.")) from exc
    except (ValueError, HttpProcessingError) as exc:
        raise MalformedBody(N_("The form could not be read.")) from exc
    fields: MultiDict[str] = MultiDict()
    for name, value in posted.items():
        if isinstance(value, str):
            fields.add(name, _clean_text(value))
    return Form(MultiDictProxy(fields), EMPTY_FORM.files)


async def _read_multipart(request: web.Request) -> Form:
    fields: MultiDict[str] = MultiDict()
    files: MultiDict[Upload] = MultiDict()
    total = 0
    try:
        reader = await request.multipart()
        for _count in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                break
            if isinstance(part, MultipartReader) or not part.name:
                raise MalformedBody(N_("The form could not be read."))
            data = bytearray()
            while chunk := await part.read_chunk():
                total += len(chunk)
                if total > request.client_max_size:
                    raise _too_large(request)
                data.extend(chunk)
            if _is_file(part):
                files.add(part.name, Upload(part.filename or "", _content_type(part), bytes(data)))
            else:
                fields.add(part.name, _clean_text(data.decode(part.get_charset(default="utf-8"))))
        else:
            raise MalformedBody(N_("The form has too many fields."))
    except LookupError as exc:
        raise MalformedBody(N_("The form uses an unknown character set.")) from exc
    except UnicodeDecodeError as exc:
        raise MalformedBody(N_("The form is not valid UTF-8 text.")) from exc
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        # aiohttp's multipart reader: no boundary, a broken part header, a missing end.
        raise MalformedBody(N_("The form could not be read.")) from exc
    return Form(MultiDictProxy(fields), MultiDictProxy(files))


def _content_type(part: BodyPartReader) -> str:
    return part.headers.get("Content-Type", "application/octet-stream")


def _is_file(part: BodyPartReader) -> bool:
    """A part with a file name, or with content that is not text (RFC 7578)."""
    content_type = part.headers.get("Content-Type")
    return part.filename is not None or (content_type is not None and not content_type.startswith("text/"))


def _clean_text(value: str) -> str:
    """Text a database can store: NUL characters are refused, not silently cut."""
    if "\x00" in value:
        raise MalformedBody(N_("The request contains a NUL character."))
    return value


def check_address(request: web.Request) -> None:
    """Refuse a NUL character in the path or the query (no database stores one): a 400."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
        raise MalformedBody(N_("The request contains a NUL character."))


async def form_fields(request: web.Request, *names: str) -> dict[str, str]:
    """Named text fields of a posted form ('' when absent); every field problem is reported."""
    form = await read_form(request)
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for name in names:
        try:
            values[name] = form.text(name)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            values[name] = ""
    if errors:
        raise InvalidInput(errors)
    return values


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bad_json(message: str) -> InvalidInput:
    return InvalidInput([FieldError("body", message)], message)


def parse_json(raw: str | bytes) -> Any:
    """JSON text as plain values; InvalidInput (422, field "body") for anything that is not sensible JSON.

    Refuses what Python's parser accepts but nothing of ours can use: nesting deeper than
    MAX_JSON_DEPTH (which would exhaust the stack further on), NaN and Infinity, integers beyond a
    database integer, NUL characters and lone surrogates (no database stores them).
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise _bad_json(N_("The body is not valid UTF-8 text.")) from exc
    except RecursionError as exc:
        raise _bad_json(N_("The JSON is nested too deeply.")) from exc
    except ValueError as exc:  # JSONDecodeError, NaN, integers of more than 4,300 digits
        raise _bad_json(N_("The body is not valid JSON.")) from exc
    _check_json(data)
    return data


def _check_json(data: Any) -> None:
    """Walk parsed JSON without recursion; see parse_json for what is refused."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _bad_json(N_("The JSON is nested too deeply."))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_string(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _check_string(value)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not -MAX_INT <= value <= MAX_INT:
                raise _bad_json(N_("A number in the body is too large."))
        elif isinstance(value, float) and (not math.isfinite(value) or abs(value) > 1e15):
            raise _bad_json(N_("A number in the body is too large."))


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise _bad_json(N_("The request contains a NUL character."))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _bad_json(N_("The body is not valid UTF-8 text.")) from exc


async def read_body(request: web.Request) -> bytes:
    """The raw body (a CSV upload); over the size limit is a 413 with a clear message."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(request) from exc


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    if request.content_type != "application/json":
        raise InvalidInput([FieldError("body", N_("Send a JSON object (Content-Type: application/json)."))])
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise InvalidInput([FieldError("body", N_("Send a JSON object (Content-Type: application/json)."))])
    return data


def text_field(data: dict[str, Any], name: str, default: str = "") -> str:
    """A string field of a JSON object; anything but a string is refused, and so is an over-long one."""
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput([FieldError(name, N_("This field must be text."))])
    if len(value) > MAX_JSON_TEXT:
        raise InvalidInput([FieldError(name, N_("Use at most %(n)s characters."), {"n": MAX_JSON_TEXT})])
    return value


def whole_number(raw: str, limit: int = MAX_INT) -> int | None:
    """A non-negative whole number written in ASCII digits, at most `limit`; None for anything else."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if value <= limit else None


def int_param(request: web.Request, name: str = "id") -> int:
    """An integer path parameter; anything else (or beyond a database integer) is a 404."""
    value = whole_number(request.match_info.get(name, ""))
    if value is None:
        raise NotFound(N_("This page does not exist."))
    return value
