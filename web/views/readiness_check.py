"""The connection check: its page, the network probe's offer and answer, and the result.

Two doors to the same check: ``/check`` for a signed-in person (``?occurrence=`` when opened
from a meeting's pre-join screen), and ``/join/{token}/check`` for an invitee without an
account, signed like the join link it extends (the invitation's "check your devices" link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from meetings import i18n
from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.directory.models import Person, Unit
from meetings.errors import N_, FieldError, Forbidden, InvalidInput, RateLimited
from meetings.readiness import checks
from meetings.readiness.models import CHECK_VERDICT_LABELS, CheckVerdict, ConnectionCheck
from meetings.rtc.probe import ProbeBusy, ProbeFigures, ProbeRefused
from meetings.schedule.links import join_link_holder
from meetings.schedule.models import Occurrence, OccurrenceState
from web import csrf, keys
from web.access import needs
from web.common import me, origin_allowed
from web.forms import MAX_INT, json_object, text_field, whole_number
from web.render import render

routes = web.RouteTableDef()

STRINGS = {
    "start": N_("Start the check"),
    "again": N_("Run the check again"),
    "waiting": N_("Not tested yet"),
    "camera_wait": N_("Opening the camera…"),
    "camera_ok": N_("The camera works: you should see yourself."),
    "camera_bad": N_("No picture from the camera."),
    "mic_wait": N_("Speak: the bar moves when the microphone hears you."),
    "mic_ok": N_("The microphone works."),
    "mic_bad": N_("The microphone picked up no sound."),
    "devices_denied": N_(
        "The browser may not use the camera or the microphone: allow them in the address bar, "
        "then run the check again."
    ),
    "speaker_ask": N_("Play the test sound, then say whether you heard it."),
    "speaker_ok": N_("You heard the test sound."),
    "speaker_bad": N_("You did not hear the test sound."),
    "net_connect": N_("Connecting to the meeting server…"),
    "net_ping": N_("Measuring the round trip and the loss…"),
    "net_down": N_("Measuring the download speed…"),
    "net_up": N_("Measuring the upload speed…"),
    "net_done": N_("Measured against the meeting server."),
    "net_failed": N_("Could not reach the meeting server."),
    "saving": N_("Saving the result…"),
    "save_failed": N_("The result could not be saved"),
    "rtt": N_("Round trip"),
    "loss": N_("Loss"),
    "down": N_("Download"),
    "up": N_("Upload"),
}


def verdict_headline(verdict: CheckVerdict, phone: str) -> str:
    """The verdict in the words a centre understands (translated)."""
    if verdict is CheckVerdict.FAILED and phone:
        return i18n.gettext(N_("Could not connect — call support: %(phone)s"), phone=phone)
    return i18n.gettext(CHECK_VERDICT_LABELS[verdict])


def result_view(check: ConnectionCheck, phone: str) -> dict[str, Any]:
    """What the page (and the result's JSON) shows of one check."""
    advice = check.details.get("advice", []) if isinstance(check.details, dict) else []
    return {
        "id": check.id,
        "verdict": check.verdict.value,
        "headline": verdict_headline(check.verdict, phone),
        "advice": [i18n.gettext(a) for a in advice if isinstance(a, str)],
        "phone": phone if check.verdict is not CheckVerdict.VIDEO else "",
        "at": check.at.isoformat(),
        "rtt_ms": check.rtt_ms,
        "loss_pct": check.loss_pct,
        "down_kbps": check.down_kbps,
        "up_kbps": check.up_kbps,
        "camera_ok": check.camera_ok,
        "microphone_ok": check.microphone_ok,
        "speaker_ok": check.speaker_ok,
        "occurrence": check.occurrence_id,
    }


@dataclass(frozen=True)
class Checker:
    """Who runs the check, and for which meeting (if any)."""

    person: Person
    occurrence: Occurrence | None
    token: str  # the join link's, or "" when signed in


async def _by_link(request: web.Request) -> Checker:
    token = request.match_info["token"]
    async with request.app[keys.DB]() as db:
        link, person = await join_link_holder(db, request.app[keys.SETTINGS].secret_key, token)
        occ = await checks.occurrence_for_link(db, link, utcnow())
    return Checker(person, occ, token)


async def _signed_in(request: web.Request, occurrence: int | None) -> Checker:
    person = me(request)
    occ = None
    if occurrence is not None:
        async with request.app[keys.DB]() as db:
            occ = await db.get(Occurrence, occurrence)
        if occ is None:
            raise InvalidInput.one(FieldError("occurrence", N_("This meeting does not exist.")))
    return Checker(person, occ, "")


def _occurrence_param(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    value = whole_number(raw) if isinstance(raw, str) else raw
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_INT:
        raise InvalidInput.one(FieldError("occurrence", N_("This meeting does not exist.")))
    return value


async def _page(request: web.Request, who: Checker) -> web.Response:
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.DB]() as db:
        last = await checks.last_check(db, who.person.id)
        unit = await db.get(Unit, who.person.unit_id) if who.person.unit_id else None
        phone = await checks.support_phone(db, who.person.unit_id, settings.check_support_phone)
    if who.token:
        probe = request.app.router["check_link_probe"].url_for(token=who.token)
        result = request.app.router["check_link_result"].url_for(token=who.token)
    else:
        probe = request.app.router["check_probe"].url_for()
        result = request.app.router["check_result"].url_for()
    occ = who.occurrence
    room_url = ""
    if occ is not None and occ.state not in {OccurrenceState.CANCELLED, OccurrenceState.ENDED}:
        room = request.app.router["room"].url_for(id=str(occ.id))
        room_url = str(room.with_query(token=who.token) if who.token else room)
    config = {
        "probe": str(probe),
        "result": str(result),
        "occurrence": occ.id if occ is not None and not who.token else None,
        "csrf": csrf.token_for(settings.secret_key, request.get(keys.CSRF_SEED, "")),
        "iceServers": request.app[keys.MEDIA].ice_servers(who.person.id),
    }
    return render(
        request,
        "readiness/check.html",
        {
            "config": config,
            "strings": {key: i18n.gettext(text) for key, text in STRINGS.items()},
            "guest": who.person,
            "unit": unit,
            "last": result_view(last, phone) if last is not None else None,
            "last_at": last.at if last is not None else None,
            "room_url": room_url,
            "occ": occ,
        },
    )


def _same_site(request: web.Request) -> None:
    """A browser always says where a POST comes from; another site's is refused (the CSRF token
    already is). A client that sends no Origin is no browser, so no one's cookies ride with it."""
    if "Origin" in request.headers and not origin_allowed(request):
        raise Forbidden(N_("This request did not come from this site."))


async def _probe(request: web.Request, who: Checker) -> web.Response:
    _same_site(request)
    offer = text_field(await json_object(request), "offer")
    if not offer.strip():
        raise InvalidInput.one(FieldError("offer", N_("Send the browser's offer.")))
    request.app[keys.PROBE_LIMITER].take(who.person.id)
    secret = request.app[keys.SETTINGS].secret_key
    person_id = who.person.id

    def seal(figures: ProbeFigures) -> str:
        return checks.seal_figures(secret, person_id, figures.as_dict())

    try:
        probe, answer = await request.app[keys.PROBES].open(offer, seal)
    except ProbeBusy as exc:
        raise RateLimited(
            N_("The meeting server is checking many connections right now. Try again in a minute.")
        ) from exc
    except ProbeRefused as exc:
        raise InvalidInput.one(FieldError("offer", N_("This offer cannot be used for the check."))) from exc
    return web.json_response({"probe": probe.id, "answer": answer})


async def _result(request: web.Request, who: Checker, data: dict[str, Any]) -> web.Response:
    _same_site(request)
    settings = request.app[keys.SETTINGS]
    report = checks.parse_report(data)
    network = checks.open_figures(settings.secret_key, who.person.id, report.seal) if report.seal else None
    limits = checks.Thresholds.from_settings(settings)
    async with request.app[keys.DB]() as db:
        check = await checks.record_check(
            db, who.person, report, network, limits, who.occurrence.id if who.occurrence else None
        )
        phone = await checks.support_phone(db, who.person.unit_id, settings.check_support_phone)
        await db.commit()
        view = result_view(check, phone)
    return web.json_response(view, status=201)


@routes.get("/check", name="check")
@needs(Permission.SIGNED_IN)
async def check_page(request: web.Request) -> web.Response:
    """The check for a signed-in person (``?occurrence=`` from a meeting's pre-join screen)."""
    return await _page(request, await _signed_in(request, _occurrence_param(request.query.get("occurrence"))))


@routes.post("/check/probe", name="check_probe")
@needs(Permission.SIGNED_IN)
async def check_probe(request: web.Request) -> web.Response:
    """Start the network probe from the browser's offer; the SDP answer."""
    return await _probe(request, await _signed_in(request, None))


@routes.post("/check/result", name="check_result")
@needs(Permission.SIGNED_IN)
async def check_result(request: web.Request) -> web.Response:
    """Store the check (the probe's sealed figures and the devices); the verdict and advice."""
    data = await json_object(request)
    return await _result(request, await _signed_in(request, _occurrence_param(data.get("occurrence"))), data)


@routes.get("/join/{token}/check", name="check_link")
@needs(Permission.PUBLIC)  # the invitee's signed link decides
async def check_link_page(request: web.Request) -> web.Response:
    """The check from an invitation's personal link, without an account."""
    return await _page(request, await _by_link(request))


@routes.post("/join/{token}/check/probe", name="check_link_probe")
@needs(Permission.PUBLIC)
async def check_link_probe(request: web.Request) -> web.Response:
    """The network probe for an invitee's signed link."""
    return await _probe(request, await _by_link(request))


@routes.post("/join/{token}/check/result", name="check_link_result")
@needs(Permission.PUBLIC)
async def check_link_result(request: web.Request) -> web.Response:
    """Store an invitee's check, for the meeting their link leads to."""
    who = await _by_link(request)
    return await _result(request, who, await json_object(request))
