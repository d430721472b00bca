"""Fuzz every route of the app's own route table, as every role, and both WebSockets: never a 5xx.

The short version runs in `make test` (seeded, deterministic, bounded); the long one is marked
`fuzz` and `slow` (`pytest -m fuzz tests/test_fuzz_routes.py`). Both walk `app.router`, so a
route is fuzzed the day it is added. Each request sends a valid CSRF token (header, or in the
form) so that the body parsing is reached, and has a timeout: a hang fails too.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from meetings.accounts import service as accounts
from meetings.accounts.permissions import Actor, allowed
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.figures import service as figures_service
from meetings.minutes import service as minutes_service
from meetings.schedule.links import JoinLink, make_join_token
from tests.conftest import World
from tests.test_access import app_routes, fixtures_for_routes, path_parts
from web import csrf
from web.access import is_token_authenticated, permission_of
from web.middlewares import SESSION_COOKIE

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("anonymous", *(r.value for r in Role))
SEED = 14  # the short version is deterministic
REQUEST_TIMEOUT = 20.0  # seconds; a request that takes longer is a hang
DEEP = 50_000
HUGE = 100_000

# Path parameter values no route should choke on (ids, tokens and formats alike).
BAD_PARAMS_SHORT = ("-1", "99999999999999999999999999", "²", "%FF%FE")
BAD_PARAMS = (
    "-1",
    "0",
    "99999999999999999999999999",
    "abc",
    "1.5",
    "²",  # str.isdigit() says yes, int() says no
    "١٢",  # Arabic-Indic digits: int() accepts them
    "%00",
    "%FF%FE",
    "%E2%80%AE",
    "x" * 3000,
)


LITERAL = re.compile(r"""["']([a-z][a-z0-9_]{0,30})["']""")
# Where a view reads a field: .get("x"), .text("x"), text_field(data, "x"), form_fields(request, "x", …)
# and the *_FIELDS tuples; where a template names one: name="x".
READS = (
    re.compile(r"""(?:\.get|\.getall|\.text|\.texts|\.file)\(\s*(["'][a-z]\w*["'])"""),
    re.compile(r"""text_field\(\s*\w+\s*,\s*(["'][a-z]\w*["'])"""),
    re.compile(r"""form_fields\(\s*request\s*,([^)]*)\)"""),
    re.compile(r"""^[A-Z_]*FIELDS\b[^=\n]*=\s*\(([^)]*)\)""", re.M),
    re.compile(r"""\bin\s*\{([^}]*)\}"""),
)


def field_names() -> list[str]:
    """Every name a view or a template reads a field by (a new field is fuzzed the day it is added)."""
    names: set[str] = set()
    for path in sorted((ROOT / "web").rglob("*")):
        if path.suffix == ".py":
            source = path.read_text("utf-8")
            for pattern in READS:
                for found in pattern.findall(source):
                    names.update(LITERAL.findall(found))
        elif path.suffix == ".html":
            names.update(re.findall(r"""name=["']([a-zA-Z_][\w-]{0,30})["']""", path.read_text("utf-8")))
    names.discard(csrf.FIELD)
    return sorted(names)


FIELDS = field_names()
GOOD_VALUES = ("", "1", "2", "x", "add", "units", "open", "closed", "vi", "2026-12-07", "07:30", "P-FUZZ")


def bad_value(rng: random.Random) -> Any:
    """A JSON value of the wrong kind, or a string no field should accept."""
    return rng.choice(
        [
            [],
            ["a", "b"],
            {},
            {"a": "b"},
            [[[[]]]],
            0,
            -1,
            1.5,
            10**30,
            True,
            None,
            "x" * HUGE,
            "x" * 300,
            "x" * 4000,
            "a\x00b",
            "\ud800",  # a lone surrogate: valid JSON, not encodable as UTF-8
            "\u202e\u0000",
            "  ",
            "9" * 40,
        ]
    )


WRONG_TYPES: tuple[tuple[str, Any], ...] = (
    ("a list", ["a"]),
    ("an object", {"a": "b"}),
    ("a number", 7),
    ("a negative number", -1),
    ("null", None),
    ("true", True),
    ("a NUL", "a\x00b"),
)


def json_value(rng: random.Random) -> Any:
    return bad_value(rng) if rng.random() < 0.3 else rng.choice(GOOD_VALUES)


def text_value(rng: random.Random) -> str:
    if rng.random() >= 0.3:
        return rng.choice(GOOD_VALUES)
    return rng.choice(
        ["x" * HUGE, "x" * 300, "x" * 4000, "a\x00b", "\udcff", "-1", "99999999999999999999", "\r\n", "%"]
    )


@dataclass(frozen=True)
class Body:
    """One request body: what it is (for the report), its content type, bytes, and extra headers."""

    label: str
    content_type: str | None
    data: bytes
    csrf_header: bool = True  # False: the token is in the form (the middleware parses it)


def fixed_bodies(token: str) -> list[Body]:
    """The malformed bodies every unsafe route gets."""
    t = token.encode()
    return [
        Body("deep JSON", "application/json", b"[" * DEEP),
        Body("deep JSON object", "application/json", b'{"a":' * DEEP),
        Body("deep JSON in a field", "application/json", b'{"text":' + b"[" * DEEP),
        Body("broken multipart", "multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
        Body("broken multipart, token in form", "multipart/form-data; boundary=zz", b"--zz\r\nbroken", False),
        Body("multipart without boundary", "multipart/form-data", b"x", False),
        Body(
            "multipart part without a name",
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n",
        ),
        Body(
            "multipart with a bad part charset",
            "multipart/form-data; boundary=zz",
            b'--zz\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            + t
            + b'\r\n--zz\r\nContent-Disposition: form-data; name="text"\r\n'
            b"Content-Type: text/plain; charset=klingon\r\n\r\nx\r\n--zz--\r\n",
            False,
        ),
        Body("form with an unknown charset", "application/x-www-form-urlencoded; charset=klingon", b"a=b"),
        Body(
            "form with an unknown charset, token in form",
            "application/x-www-form-urlencoded; charset=klingon",
            b"csrf_token=" + t,
            False,
        ),
        Body(
            "form with invalid UTF-8",
            "application/x-www-form-urlencoded",
            b"csrf_token=" + t + b"&title=%ff%fe&text=\xff\xfe&what=\xc0",
            False,
        ),
        Body("JSON with invalid UTF-8", "application/json", b'{"text": "\xff\xfe", "name": "\xc0"}'),
        Body("JSON with a huge integer", "application/json", b'{"text": ' + b"1" * 5000 + b"}"),
        Body("JSON with NaN", "application/json", b'{"text": NaN, "version": Infinity, "id": -Infinity}'),
        Body("JSON array", "application/json", b"[]"),
        Body("JSON null", "application/json", b"null"),
        Body("JSON string", "application/json", b'"x"'),
        Body("JSON with a BOM", "application/json", b"\xef\xbb\xbf{}"),
        Body("text", "text/plain", b"hello"),
        Body("XML", "application/xml", b"<a/>"),
        Body("no content type", None, b"\x00\x01garbage"),
        Body("CSV with invalid UTF-8 and NULs", "text/csv", b"code,kind,name\n\xff\x00,\xfe,\x00\n"),
        Body("CSV, deep quotes", "text/csv", b'"' * 10_000 + b"\n"),
        *(
            Body(
                f"JSON, every field {label}",
                "application/json",
                json.dumps(dict.fromkeys(FIELDS, value)).encode(),
            )
            for label, value in WRONG_TYPES
        ),
        Body(
            "JSON, every field long",
            "application/json",
            json.dumps(dict.fromkeys(FIELDS, "x" * 12_000)).encode(),
        ),
        Body(
            "multipart, every field a file",
            *multipart([(csrf.FIELD, t, False), *((n, b"x", True) for n in FIELDS)]),
        ),
        Body(
            "multipart, every field long",
            *multipart([(csrf.FIELD, t, False), *((n, b"x" * 12_000, False) for n in FIELDS)]),
        ),
        Body(
            "multipart, every field 300 characters",
            *multipart([(csrf.FIELD, t, False), *((n, b"x" * 300, False) for n in FIELDS)]),
        ),
        Body(
            "multipart, every field bytes",
            *multipart([(csrf.FIELD, t, False), *((n, b"x", None) for n in FIELDS)]),
        ),
        Body(
            "form, every field twice and NUL",
            "application/x-www-form-urlencoded",
            b"&".join([b"csrf_token=" + t, *(f"{n}=1&{n}=a%00b".encode() for n in FIELDS)]),
            False,
        ),
    ]


# The kinds of a short run: one of each family (the long run sends them all).
SHORT_BODIES = frozenset(
    {
        "deep JSON",
        "broken multipart",
        "broken multipart, token in form",
        "multipart part without a name",
        "form with an unknown charset, token in form",
        "form with invalid UTF-8",
        "JSON with invalid UTF-8",
        "JSON with a huge integer",
        "JSON with NaN",
        "no content type",
        "CSV with invalid UTF-8 and NULs",
        *(f"JSON, every field {label}" for label, _v in WRONG_TYPES),
        "JSON, every field long",
        "multipart, every field a file",
        "multipart, every field long",
        "multipart, every field 300 characters",
        "form, every field twice and NUL",
    }
)


def multipart(parts: list[tuple[str, bytes, bool | None]]) -> tuple[str, bytes, bool]:
    """A multipart body; each part is text (False), a file (True) or untyped bytes (None)."""
    boundary = "fuzzboundary"
    out = []
    for name, value, is_file in parts:
        disposition = f'form-data; name="{name}"' + ('; filename="f.csv"' if is_file else "")
        kind = "" if is_file is False else "Content-Type: application/octet-stream\r\n"
        out.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + value + b"\r\n"
        )
    return f"multipart/form-data; boundary={boundary}", b"".join(out) + f"--{boundary}--\r\n".encode(), False


def generated_body(rng: random.Random, token: str) -> Body:
    """A body of well-formed syntax whose fields have random, often wrong, types and sizes."""
    kind = rng.choice(["json", "json", "form", "multipart"])
    names = rng.sample(FIELDS, k=min(len(FIELDS), 60))
    for must in ("op", "text", "what", "file", "timezone", "kind", "id", "version", "ref"):
        if must in FIELDS and must not in names:
            names.append(must)
    if kind == "json":
        values = {name: json_value(rng) for name in names}
        huge = [n for n, v in values.items() if isinstance(v, str) and len(v) >= HUGE]
        for name in huge[1:]:  # one huge value per body keeps it under the size limit
            values[name] = "x"
        return Body("typed JSON", "application/json", json.dumps(values).encode())
    pairs: list[tuple[str, str]] = [(csrf.FIELD, token)]
    huge_used = False
    for name in names:
        value = text_value(rng)
        if len(value) >= HUGE:
            if huge_used:
                value = "x"
            huge_used = True
        pairs.append((name, value))
        if rng.random() < 0.1:
            pairs.append((name, rng.choice(GOOD_VALUES)))  # a list where one value is expected
    if kind == "form":
        text = "&".join(
            f"{quote_plus(n)}={quote_plus(v.encode('utf-8', 'surrogateescape'))}" for n, v in pairs
        )
        return Body("typed form", "application/x-www-form-urlencoded", text.encode(), rng.random() < 0.5)
    boundary = "fuzz" + str(rng.randrange(10**9))
    parts = []
    for name, value in pairs:
        safe = value.encode("utf-8", "surrogateescape")
        if name != csrf.FIELD and rng.random() < 0.3:  # a file where text is expected
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="f.csv"\r\n'
                f"Content-Type: text/csv\r\n\r\n".encode()
                + safe
                + b"\r\n"
            )
        else:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + safe
                + b"\r\n"
            )
    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return Body("typed multipart", f"multipart/form-data; boundary={boundary}", data, rng.random() < 0.5)


def query_fuzz(rng: random.Random) -> str:
    """A query string of random field names with hostile values (percent-encoded by hand)."""
    values = ["%FF", "%00", "x" * 5000, "-1", "99999999999999999999", "%E2%80%AE", "&&", "%", "a%zz"]
    names = [*rng.sample(FIELDS, k=min(len(FIELDS), 8)), "q", "page", "day", "version", "next", "token"]
    return "&".join(f"{name}={rng.choice(values)}" for name in names)


@dataclass
class Caller:
    """One role's cookies and CSRF token."""

    role: str
    cookie: str
    token: str


@dataclass
class Tally:
    """What the fuzz sent and what came back."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def check(self, what: str, status: int) -> None:
        self.requests += 1
        self.statuses[status] += 1
        if status >= 500:
            self.failures.append(f"{status} {what}")


@dataclass
class Target:
    """A route to fuzz with its valid path parameters."""

    method: str
    name: str
    route: web.AbstractRoute
    parts: dict[str, str]


async def callers(world: World, unit: Unit) -> dict[str, Caller]:
    """A session for each role (opened directly: login attempts would be rate-limited)."""
    secret = world.settings.secret_key
    found: dict[str, Caller] = {}
    for role in ROLES:
        seed = csrf.new_seed()
        cookie = f"{csrf.COOKIE}={seed}"
        if role != "anonymous":
            person = await world.person(f"fuzz-{role}@hue.example", Role(role), unit)
            cookie += f"; {SESSION_COOKIE}={await open_session(world, person)}"
        found[role] = Caller(role, cookie, csrf.token_for(secret, seed))
    return found


async def open_session(world: World, person: Person) -> str:
    async with world.db() as db:
        token = await accounts.open_session(db, person, lifetime=timedelta(hours=8))
        await db.commit()
    return token


async def send(
    world: World,
    http: aiohttp.ClientSession,
    tally: Tally,
    caller: Caller,
    method: str,
    path: str,
    body: Body | None,
    extra: dict[str, str] | None = None,
) -> None:
    """One request with a timeout; a 5xx or a hang is recorded as a failure."""
    headers: CIMultiDict[str] = CIMultiDict({"Cookie": caller.cookie, **(extra or {})})
    if body is None or body.csrf_header:
        headers[csrf.HEADER] = caller.token
    if body is not None and body.content_type is not None:
        headers["Content-Type"] = body.content_type
    url = URL(str(world.client.make_url("/")).rstrip("/") + path, encoded=True)
    what = f"{method} {path[:120]} as {caller.role} with {body.label if body else 'no body'}"
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            async with http.request(
                method,
                url,
                data=io.BytesIO(body.data) if body is not None else None,
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=["Content-Type"],
            ) as response:
                await response.read()
                tally.check(what, response.status)
    except TimeoutError:
        tally.requests += 1
        tally.failures.append(f"hang: {what}")


def targets(world: World, values: dict[str, str]) -> list[Target]:
    """Every route of the table, logout last (it ends the session it is sent with)."""
    found = []
    for method, name, route in app_routes(world.app):
        resource = route.resource
        assert resource is not None
        found.append(Target(method, name, route, path_parts(name, resource.canonical, values)))
    return sorted(found, key=lambda t: (t.name == "logout", t.method, t.name))


def path_of(world: World, target: Target, parts: dict[str, str]) -> str:
    path = str(world.app.router[target.name].url_for(**{k: "PARAM" + k for k in parts}))
    for key, value in parts.items():
        path = path.replace("PARAM" + key, value if value.startswith("%") else _quote(value))
    return path


def _quote(value: str) -> str:
    return str(URL.build(path="/" + value)).lstrip("/")


def may(role: str, target: Target) -> bool:
    """Whether the role passes the route's permission (else it is refused before any parsing)."""
    permission = permission_of(target.route.handler)
    assert permission is not None
    return allowed(None if role == "anonymous" else Role(role), permission)


def requests_for(
    world: World, target: Target, caller: Caller, rng: random.Random, *, full: bool, long: bool
) -> Iterator[tuple[str, Body | None]]:
    """(path, body) of the requests one role sends to one route."""
    path = path_of(world, target, target.parts)
    if not full:
        if target.method == "GET":
            yield path, None
        else:
            yield path, rng.choice([b for b in fixed_bodies(caller.token) if b.label in SHORT_BODIES])
        return
    if target.method == "GET":
        for _ in range(4 if long else 1):
            yield f"{path}?{query_fuzz(rng)}", None
    else:
        for body in fixed_bodies(caller.token):
            if long or body.label in SHORT_BODIES:
                yield path, body
        for _ in range(12 if long else 2):
            yield path, generated_body(rng, caller.token)
    # Hostile path parameters, one parameter at a time.
    empty = None if target.method == "GET" else Body("{}", "application/json", b"{}")
    for key in target.parts:
        for bad in BAD_PARAMS if long else BAD_PARAMS_SHORT:
            yield path_of(world, target, {**target.parts, key: bad}), empty


async def fuzz(world: World, *, seed: int, long: bool) -> Tally:
    """Fuzz every route as every role; the long version sends every body from every role."""
    rng = random.Random(seed)
    unit = await world.unit("P-FUZZ", UnitKind.CENTRE)
    target_person = await world.person("target@hue.example", Role.MEMBER, unit)
    values = await fixtures_for_routes(world, unit, target_person)
    who = await callers(world, unit)
    admin = Actor(id=0, email="cli", name="cli", role=Role.ADMINISTRATOR, unit_id=None)
    async with world.db() as db:
        centre_token, _row = await figures_service.issue_token(db, admin, unit.code)
        await db.commit()
    tally = Tally()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for index, target in enumerate(targets(world, values)):
            token_route = is_token_authenticated(target.route.handler)
            extra = {"Authorization": f"Bearer {centre_token}"} if token_route else {}
            passing = [r for r in ROLES if token_route or may(r, target)]
            # The short version sends the whole battery from one role that passes the route's
            # permission (another one from route to route) and one malformed request from every
            # other role; the long version sends everything from every role.
            full = ROLES if long else passing[index % len(passing) :][:1]
            for role in ROLES:
                for path, body in requests_for(world, target, who[role], rng, full=role in full, long=long):
                    await send(world, http, tally, who[role], target.method, path, body, extra)
        # The server is healthy afterwards: /healthz, and a normal request as a normal person.
        async with http.get(world.client.make_url("/healthz")) as response:
            assert response.status == 200
        fresh = await world.person("after@hue.example", Role.ADMINISTRATOR, unit)
        cookie = f"{SESSION_COOKIE}={await open_session(world, fresh)}"
        async with http.get(world.client.make_url("/api/me"), headers={"Cookie": cookie}) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["email"] == "after@hue.example"
    return tally


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Unhandled errors the server logged (a 500 page, a 4500 close, a swallowed socket error)."""
    return [
        f"{r.name}: {r.getMessage()} {r.exc_text or ''}"[:500]
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("giaoban")
    ]


def report(tally: Tally) -> str:
    counts = Counter(f.split(" with ", 1)[-1] for f in tally.failures)
    return (
        f"{tally.requests} requests, {len(tally.failures)} failures; by body: {dict(counts)}\n"
        + "\n".join(tally.failures[:40])
    )


async def test_every_route_as_every_role_survives_malformed_input(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    tally = await fuzz(world, seed=SEED, long=False)
    print(f"\nshort fuzz: {tally.requests} requests, statuses {dict(sorted(tally.statuses.items()))}")
    assert not tally.failures, report(tally)
    assert not errors_logged(caplog), errors_logged(caplog)[:5]
    assert tally.requests > 1000


@pytest.mark.slow
@pytest.mark.fuzz
@pytest.mark.parametrize("seed", [1, 2])
async def test_the_long_fuzz(world: World, caplog: pytest.LogCaptureFixture, seed: int) -> None:
    tally = await fuzz(world, seed=seed, long=True)
    statuses = dict(sorted(tally.statuses.items()))
    print(f"\nlong fuzz, seed {seed}: {tally.requests} requests, statuses {statuses}")
    assert not tally.failures, report(tally)
    assert not errors_logged(caplog), errors_logged(caplog)[:5]


# --- the sockets ------------------------------------------------------------------------------


def socket_garbage() -> Iterator[tuple[str, str | bytes]]:
    """Frames no socket should choke on."""
    yield "deep JSON", "[" * DEEP
    yield "deep JSON object", '{"type":' * DEEP
    yield "not JSON", "hello"
    yield "empty", ""
    yield "NUL", "\x00"
    yield "JSON array", "[]"
    yield "JSON null", "null"
    yield "huge integer", "1" * 5000
    yield "NaN", '{"type": NaN}'
    yield "type is a list", '{"type": ["join"]}'
    yield "type is an object", '{"type": {"a": 1}}'
    yield "type is huge", json.dumps({"type": "x" * 60_000})
    yield "binary", b"\x00\x01\x02"
    yield "binary JSON", b'{"type": "ping"}'


def room_messages(occurrence: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Well-formed JSON, wrong types: answered with an `error`, or a protocol-error close."""
    yield "ping", {"type": "ping"}
    wrong_values: list[Any] = [[], {}, None, "x", 1.5, True, -1, 10**30, "x" * 70_000]
    for bad in wrong_values:
        yield f"join occurrence {bad!r:.20}", {"type": "join", "occurrence": bad}
        yield f"mute {bad!r:.20}", {"type": "mute", "audio": bad, "video": bad}
        yield f"chat {bad!r:.20}", {"type": "chat", "text": bad}
        yield f"hand {bad!r:.20}", {"type": "hand", "raised": bad}
        yield f"stats {bad!r:.20}", {"type": "stats", "rttMs": bad, "lossPct": bad, "bitrateKbps": bad}
        yield f"moderate {bad!r:.20}", {"type": "moderate", "action": bad, "target": bad}
        yield (
            f"candidate {bad!r:.20}",
            {"type": "candidate", "candidate": bad, "sdpMid": bad, "sdpMLineIndex": bad},
        )
        yield f"offer sdp {bad!r:.20}", {"type": "offer", "sdp": bad}
        yield f"offer sources {bad!r:.20}", {"type": "offer", "sdp": "v=0\r\n", "sources": bad}
        yield f"audio_only {bad!r:.20}", {"type": "audio_only", "enabled": bad}
    yield "moderate target not a person", {"type": "moderate", "action": "mute", "target": "²"}
    yield "sources with a bad mid", {"type": "offer", "sdp": "v=0\r\n", "sources": {"x" * 40: "camera"}}
    yield "sources with bad values", {"type": "offer", "sdp": "v=0\r\n", "sources": {"0": ["camera"]}}
    yield "answer instead of offer", {"type": "answer", "sdp": "v=0\r\n"}
    for label, sdp in malformed_sdp():
        yield f"offer: {label}", {"type": "offer", "sdp": sdp, "sources": {}}
    for candidate in (
        "garbage",
        "candidate:",
        "candidate:1 1 udp x 127.0.0.1 y typ host",
        "candidate:" + "9" * 500,
    ):
        yield (
            f"candidate {candidate[:20]}",
            {"type": "candidate", "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0},
        )


def malformed_sdp() -> Iterator[tuple[str, str]]:
    """Session descriptions that start like one and are not."""
    head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    yield "only v=0", "v=0"
    yield "garbage lines", "v=0\r\ngarbage\r\n=\r\nx\r\n"
    yield "no media", head
    yield (
        "media without ICE or DTLS",
        head
        + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
        + "a=rtpmap:111 opus/48000/2\r\n",
    )
    yield "bad port", head + "m=audio x UDP/TLS/RTP/SAVPF 111\r\n"
    yield "bad payload type", head + "m=video 9 UDP/TLS/RTP/SAVPF abc\r\na=rtpmap:abc VP8/90000\r\n"
    yield "bad rtpmap", head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\na=mid:0\r\n"
    yield (
        "no common codec",
        head
        + (
            "a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
            "a=mid:0\r\na=recvonly\r\n"
            "a=rtpmap:96 NOPE/90000\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
            "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\na=rtcp-mux\r\n"
        ),
    )
    yield (
        "bad fingerprint",
        head
        + (
            "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
            "a=mid:0\r\na=sendrecv\r\n"
            "a=rtpmap:111 opus/48000/2\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
            "a=fingerprint:nope\r\na=setup:actpass\r\na=rtcp-mux\r\n"
        ),
    )
    yield (
        "bad candidate line",
        head + ("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=candidate:x\r\n"),
    )
    yield "bad ssrc", head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ssrc:x cname:y\r\na=mid:0\r\n"
    yield "bad extmap", head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:x urn:y\r\na=mid:0\r\n"
    yield (
        "bad simulcast",
        head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rid:\r\na=simulcast:send ;;\r\n",
    )
    yield (
        "bundle of an unknown mid",
        head + "a=group:BUNDLE 7\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n",
    )
    yield "NUL", "v=0\r\n\x00\r\n"


@dataclass
class RoomSocket:
    ws: aiohttp.ClientWebSocketResponse

    async def answer(self) -> dict[str, Any] | int:
        """The next text message (as JSON), or the close code (a hang fails the test)."""
        async with asyncio.timeout(REQUEST_TIMEOUT):  # receive()'s own timeout restarts on a ping
            return await self._answer()

    async def _answer(self) -> dict[str, Any] | int:
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") in {"joined", "left", "state", "quality", "speaking", "lobby", "queue"}:
                    continue
                return dict(data)
            if msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING}:
                code = self.ws.close_code
                assert code is not None
                return code
            raise AssertionError(f"unexpected frame {msg}")


async def room_socket(world: World, http: aiohttp.ClientSession, occurrence: int) -> RoomSocket:
    origin = str(world.client.make_url("/")).rstrip("/")
    ws = await http.ws_connect(world.client.make_url(f"/rooms/{occurrence}/ws"), headers={"Origin": origin})
    return RoomSocket(ws)


async def send_frame(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)


async def test_the_room_socket_survives_malformed_messages(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Before `join`: every malformed frame closes with the protocol-error code (4000). After:
    harmless ones get an `error` and the socket stays open; the rest close with 4000."""
    centre = await world.unit("P-FUZZ", UnitKind.CENTRE)
    member = await world.person("member@hue.example", Role.MEMBER, centre)
    series, occ = await world.open_meeting(["P-FUZZ"])
    from datetime import UTC, datetime

    token = make_join_token(
        world.settings.secret_key, JoinLink(member.id, series.id, None, datetime.now(UTC) + timedelta(days=1))
    )
    join = json.dumps({"type": "join", "occurrence": occ.id, "token": token})
    wrong: list[str] = []
    cases = [*socket_garbage(), *((label, json.dumps(m)) for label, m in room_messages(occ.id))]
    async with aiohttp.ClientSession() as http:
        for label, frame in cases:
            # Before join: the protocol-error close code, nothing else.
            sock = await room_socket(world, http, occ.id)
            await send_frame(sock.ws, frame)
            got = await sock.answer()
            if isinstance(got, dict):  # the error, then the close
                got = await sock.answer()
            if got != 4000:
                wrong.append(f"before join, {label}: {got}")
            await sock.ws.close()
        joined: RoomSocket | None = None
        for label, frame in cases:
            # After join, on one socket while it stays open: an `error` (or nothing, for a
            # message that happens to be valid) and the socket open, or the protocol-error close.
            if joined is None or joined.ws.closed:
                joined = await room_socket(world, http, occ.id)
                await joined.ws.send_str(join)
                for expected in ("welcome", "room"):
                    got = await joined.answer()
                    assert isinstance(got, dict) and got["type"] == expected, got
            await send_frame(joined.ws, frame)
            await joined.ws.send_str('{"type": "ping"}')
            got = await joined.answer()
            while isinstance(got, dict) and got["type"] != "pong":  # an error, or the reply to a valid one
                if got.get("code") == "internal":
                    wrong.append(f"after join, {label}: {got}")
                got = await joined.answer()
            if isinstance(got, int) and got != 4000:
                wrong.append(f"after join, {label}: closed with {got}")
        if joined is not None:
            await joined.ws.close()
    assert not wrong, "\n".join(wrong)
    assert not errors_logged(caplog), errors_logged(caplog)[:5]


async def test_the_minutes_socket_survives_malformed_messages(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Every malformed message gets a clear `error` answer; never the internal-error one."""
    unit = await world.unit("P-FUZZ", UnitKind.CENTRE)
    secretary = await world.person("secretary@hue.example", Role.SECRETARY, unit)
    _series, occ = await world.open_meeting(["P-FUZZ"])
    async with world.db() as db:
        minutes = await minutes_service.ensure_minutes(db, occ)
        await db.commit()
    cookie = f"{SESSION_COOKIE}={await open_session(world, secretary)}"
    origin = str(world.client.make_url("/")).rstrip("/")
    rng = random.Random(SEED)
    frames: list[tuple[str, str | bytes]] = [
        (label, f) for label, f in socket_garbage() if not isinstance(f, bytes)
    ]
    wrong_values: list[Any] = [[], {}, None, 1, 1.5, True, "x" * 70_000, [[["deep"]]]]
    for bad in wrong_values:
        for op in ("add", "save", "status", "move", "delete", "header", "attendance"):
            frames.append(
                (
                    f"{op} with {bad!r:.20}",
                    json.dumps(
                        {
                            "op": op,
                            "id": bad,
                            "version": bad,
                            "text": bad,
                            "kind": bad,
                            "position": bad,
                            "header_version": bad,
                            "chair": bad,
                            "attendance": bad,
                            "status": bad,
                            "link_id": bad,
                            "ref": 1,
                        }
                    ),
                )
            )
        frames.append((f"op {bad!r:.20}", json.dumps({"op": bad, "ref": bad})))
    for i in range(60):
        message = {name: json_value(rng) for name in rng.sample(FIELDS, k=min(len(FIELDS), 30))}
        message["op"] = rng.choice(
            ["add", "save", "status", "move", "delete", "header", "attendance", json_value(rng)]
        )
        frames.append((f"generated {i}", json.dumps(message)))
    wrong: list[str] = []
    internal = None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        ws = await http.ws_connect(
            world.client.make_url(f"/minutes/{minutes.id}/ws"), headers={"Origin": origin, "Cookie": cookie}
        )
        first = json.loads((await ws.receive(timeout=REQUEST_TIMEOUT)).data)
        assert first["type"] == "state"
        for label, frame in frames:
            await send_frame(ws, frame)
            while True:
                msg = await ws.receive(timeout=REQUEST_TIMEOUT)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    wrong.append(f"{label}: the socket closed ({msg.type}, {ws.close_code})")
                    break
                answer = json.loads(msg.data)
                if answer["type"] in {"ack", "error", "conflict"}:
                    break
            if msg.type != aiohttp.WSMsgType.TEXT:
                ws = await http.ws_connect(
                    world.client.make_url(f"/minutes/{minutes.id}/ws"),
                    headers={"Origin": origin, "Cookie": cookie},
                )
                await ws.receive(timeout=REQUEST_TIMEOUT)
                continue
            if answer["type"] == "error" and answer.get("code") == "internal":
                internal = internal or answer
                wrong.append(f"{label}: internal error")
        # A binary frame is not part of this protocol either: the socket closes, cleanly.
        await ws.send_bytes(b"\x00")
        msg = await ws.receive(timeout=REQUEST_TIMEOUT)
        assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
        await ws.close()
    assert not wrong, "\n".join(wrong[:40])
    assert not errors_logged(caplog), errors_logged(caplog)[:5]
