"""The connection check anyone can run: its verdict, its advice, who to call, and its record.

The network figures come from the media plane's probe (``meetings.rtc.probe``), which seals
them (``seal_figures``) before the browser carries them back; ``open_figures`` is the only way
they reach the database, so a figure the browser makes up is never stored as measured. The
devices (camera, microphone, speaker) can only be tested in the browser: what it says of them
is taken as it says, within the shape ``parse_report`` allows. See docs/readiness/check.md.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.directory.models import Person, Unit
from meetings.errors import N_, FieldError, InvalidInput, RateLimited
from meetings.readiness.models import CheckVerdict, ConnectionCheck
from meetings.schedule.links import JoinLink
from meetings.schedule.models import Occurrence, OccurrenceState
from meetings.settings import Settings

SEAL_SALT = "giaoban.check.probe.v1"
SEAL_MAX_AGE = 600  # seconds from the probe's end to the result's post
# Bounds of what a browser may report of its own measurements (kept in details, never in columns).
CLIENT_BOUNDS: dict[str, tuple[float, float]] = {
    "rtt_ms": (0.0, 60_000.0),
    "loss_pct": (0.0, 100.0),
    "down_kbps": (0.0, 10_000_000.0),
    "up_kbps": (0.0, 10_000_000.0),
}
DEVICES = ("camera_ok", "microphone_ok", "speaker_ok")
MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class Thresholds:
    """What a check must measure for each verdict (settings ``check_*``)."""

    video_down_kbps: float = 500
    video_up_kbps: float = 300
    video_max_loss_pct: float = 5.0
    video_max_rtt_ms: float = 400
    audio_down_kbps: float = 64
    audio_up_kbps: float = 48
    audio_max_loss_pct: float = 20.0
    audio_max_rtt_ms: float = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            video_down_kbps=settings.check_video_down_kbps,
            video_up_kbps=settings.check_video_up_kbps,
            video_max_loss_pct=settings.check_video_max_loss_pct,
            video_max_rtt_ms=settings.check_video_max_rtt_ms,
            audio_down_kbps=settings.check_audio_down_kbps,
            audio_up_kbps=settings.check_audio_up_kbps,
            audio_max_loss_pct=settings.check_audio_max_loss_pct,
            audio_max_rtt_ms=settings.check_audio_max_rtt_ms,
        )


@dataclass(frozen=True)
class Network:
    """The network figures the media server measured (or accepted within its own counts)."""

    probe: str
    rtt_ms: float | None
    loss_pct: float | None
    down_kbps: float | None
    up_kbps: float | None
    complete: bool


@dataclass(frozen=True)
class Devices:
    """What the browser found of each device; None: not tested."""

    camera_ok: bool | None = None
    microphone_ok: bool | None = None
    speaker_ok: bool | None = None


@dataclass(frozen=True)
class Report:
    """What the browser posts at the end of a check."""

    devices: Devices
    seal: str  # "" when the probe never connected
    client: dict[str, float]  # the browser's own figures, within CLIENT_BOUNDS
    error: str  # why the browser could not run the probe, in its words (kept for support)


# --- the seal ---------------------------------------------------------------------------------


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SEAL_SALT)


def seal_figures(secret: str, owner: int, figures: dict[str, Any]) -> str:
    """A signed token of a probe's figures for one person (the probe's ``seal``)."""
    keep = ("probe", "rtt_ms", "loss_pct", "down_kbps", "up_kbps", "complete")
    return _serializer(secret).dumps({"o": owner, **{k: figures.get(k) for k in keep}})


def _figure(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(key)
    low, high = CLIENT_BOUNDS[key]
    return float(min(max(value, low), high))


def open_figures(secret: str, owner: int, token: str, max_age: int = SEAL_MAX_AGE) -> Network:
    """The figures a seal carries, for this person; InvalidInput when forged, expired or not theirs."""
    problem = FieldError("probe", N_("The network measurement is not valid. Run the check again."))
    if len(token) > 2000:
        raise InvalidInput.one(problem)
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        expired = FieldError("probe", N_("The network measurement is too old. Run the check again."))
        raise InvalidInput.one(expired) from exc
    except BadSignature as exc:
        raise InvalidInput.one(problem) from exc
    if not isinstance(data, dict) or data.get("o") != owner or not isinstance(data.get("probe"), str):
        raise InvalidInput.one(problem)
    try:
        return Network(
            probe=data["probe"],
            rtt_ms=_figure(data, "rtt_ms"),
            loss_pct=_figure(data, "loss_pct"),
            down_kbps=_figure(data, "down_kbps"),
            up_kbps=_figure(data, "up_kbps"),
            complete=data.get("complete") is True,
        )
    except ValueError as exc:
        raise InvalidInput.one(problem) from exc


# --- the browser's report -------------------------------------------------------------------


def parse_report(data: dict[str, Any]) -> Report:
    """Validate the browser's report; every problem at once, as InvalidInput."""
    errors: list[FieldError] = []
    found: dict[str, bool | None] = {}
    for name in DEVICES:
        value = data.get(name)
        if value is not None and not isinstance(value, bool):
            errors.append(FieldError(name, N_("Say true, false or null.")))
            value = None
        found[name] = value
    seal = data.get("probe", "")
    if seal is None:
        seal = ""
    if not isinstance(seal, str):
        errors.append(FieldError("probe", N_("The network measurement is not valid. Run the check again.")))
        seal = ""
    error = data.get("error", "")
    if error is None:
        error = ""
    if not isinstance(error, str):
        errors.append(FieldError("error", N_("This field must be text.")))
        error = ""
    client: dict[str, float] = {}
    raw = data.get("client") or {}
    if not isinstance(raw, dict):
        errors.append(FieldError("client", N_("Send the browser's figures as an object.")))
        raw = {}
    for key, value in raw.items():
        if key not in CLIENT_BOUNDS:
            continue
        low, high = CLIENT_BOUNDS[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            errors.append(
                FieldError(
                    f"client.{key}",
                    N_("This figure is not possible: it must be between %(low)s and %(high)s."),
                    {"low": int(low), "high": int(high)},
                )
            )
            continue
        client[key] = float(value)
    if errors:
        raise InvalidInput(errors)
    printable = "".join(ch for ch in error if ch.isprintable())[:MAX_ERROR_TEXT]
    return Report(Devices(**found), seal, client, printable)


# --- the verdict ----------------------------------------------------------------------------


def _at_least(value: float | None, floor: float) -> bool:
    return value is not None and value >= floor


def _at_most(value: float | None, ceiling: float) -> bool:
    return value is not None and value <= ceiling


def network_verdict(network: Network | None, limits: Thresholds) -> CheckVerdict:
    """What the network alone carries: video, audio only, or nothing usable."""
    if network is None:
        return CheckVerdict.FAILED
    n = network
    if (
        _at_least(n.down_kbps, limits.video_down_kbps)
        and _at_least(n.up_kbps, limits.video_up_kbps)
        and _at_most(n.loss_pct, limits.video_max_loss_pct)
        and _at_most(n.rtt_ms, limits.video_max_rtt_ms)
    ):
        return CheckVerdict.VIDEO
    if (
        _at_least(n.down_kbps, limits.audio_down_kbps)
        and _at_least(n.up_kbps, limits.audio_up_kbps)
        and _at_most(n.loss_pct, limits.audio_max_loss_pct)
        and _at_most(n.rtt_ms, limits.audio_max_rtt_ms)
    ):
        return CheckVerdict.AUDIO
    return CheckVerdict.FAILED


def verdict(network: Network | None, devices: Devices, limits: Thresholds) -> CheckVerdict:
    """The check's verdict: the network's, and no better than audio when the camera failed."""
    found = network_verdict(network, limits)
    if found is CheckVerdict.VIDEO and devices.camera_ok is False:
        return CheckVerdict.AUDIO
    return found


ADVICE_READY = N_("Your connection and devices are ready. Join a few minutes before the start.")
ADVICE_AUDIO = N_(
    "Join with your camera off (audio only). To get video: use a network cable rather than Wi-Fi, "
    "sit closer to the Wi-Fi router, and stop downloads and other video calls on this network."
)
ADVICE_WEAK = N_(
    "The connection is too weak even for audio: use a network cable or another network (a 4G "
    "phone hotspot), stop downloads and other video calls, then run the check again."
)
ADVICE_UNREACHABLE = N_(
    "Your browser could not reach the meeting server: try another network (a 4G phone hotspot), "
    "and ask your IT staff to allow UDP traffic to the meeting server."
)
ADVICE_LOSS = N_("Many packets were lost on the way: a cable instead of Wi-Fi usually helps.")
ADVICE_CAMERA = N_(
    "The camera gave no picture: check that it is plugged in, that no other program uses it, "
    "and that this browser may use it."
)
ADVICE_MICROPHONE = N_(
    "The microphone picked up no sound: choose another microphone, check its mute switch, and "
    "that this browser may use it."
)
ADVICE_SPEAKER = N_(
    "You did not hear the test sound: turn the volume up, or choose other speakers or headphones."
)


def advice(network: Network | None, devices: Devices, found: CheckVerdict, limits: Thresholds) -> list[str]:
    """What to try, most useful first (gettext msgids)."""
    tips: list[str] = []
    if network is None:
        tips.append(ADVICE_UNREACHABLE)
    elif found is CheckVerdict.FAILED:
        tips.append(ADVICE_WEAK)
    elif network_verdict(network, limits) is CheckVerdict.AUDIO:
        tips.append(ADVICE_AUDIO)
    if network is not None and network.loss_pct is not None and network.loss_pct > limits.video_max_loss_pct:
        tips.append(ADVICE_LOSS)
    if devices.camera_ok is False:
        tips.append(ADVICE_CAMERA)
    if devices.microphone_ok is False:
        tips.append(ADVICE_MICROPHONE)
    if devices.speaker_ok is False:
        tips.append(ADVICE_SPEAKER)
    if not tips:
        tips.append(ADVICE_READY)
    return tips


async def support_phone(db: AsyncSession, unit_id: int | None, fallback: str) -> str:
    """Who to call: the phone of the unit's operator (directory), else the configured number."""
    unit = await db.get(Unit, unit_id) if unit_id is not None else None
    if unit is not None and unit.operator_id is not None:
        operator = await db.get(Unit, unit.operator_id)
        if operator is not None and operator.phone.strip():
            return operator.phone.strip()
    return fallback.strip()


# --- where a check belongs, and its record ----------------------------------------------------


async def occurrence_for_link(db: AsyncSession, link: JoinLink, now: datetime) -> Occurrence | None:
    """The meeting a join link leads to now: its own, else the current or next of its series."""
    if link.occurrence_id is not None:
        return await db.get(Occurrence, link.occurrence_id)
    found: Occurrence | None = await db.scalar(
        select(Occurrence)
        .where(
            Occurrence.series_id == link.series_id,
            Occurrence.end >= now - timedelta(minutes=30),
            Occurrence.state != OccurrenceState.CANCELLED,
        )
        .order_by(Occurrence.start)
        .limit(1)
    )
    return found


async def record_check(
    db: AsyncSession,
    person: Person,
    report: Report,
    network: Network | None,
    limits: Thresholds,
    occurrence_id: int | None = None,
) -> ConnectionCheck:
    """Store one check for the person and their unit (and the meeting it was run for)."""
    found = verdict(network, report.devices, limits)
    details: dict[str, Any] = {
        "advice": advice(network, report.devices, found, limits),
        "client": report.client,
        "source": "server" if network is not None else "none",
    }
    if network is not None:
        details["probe"] = network.probe
        details["complete"] = network.complete
    if report.error:
        details["error"] = report.error
    check = ConnectionCheck(
        person_id=person.id,
        unit_id=person.unit_id,
        occurrence_id=occurrence_id,
        verdict=found,
        rtt_ms=network.rtt_ms if network else None,
        loss_pct=network.loss_pct if network else None,
        up_kbps=network.up_kbps if network else None,
        down_kbps=network.down_kbps if network else None,
        camera_ok=report.devices.camera_ok,
        microphone_ok=report.devices.microphone_ok,
        speaker_ok=report.devices.speaker_ok,
        details=details,
    )
    db.add(check)
    await db.flush()
    return check


async def last_check(db: AsyncSession, person_id: int) -> ConnectionCheck | None:
    """A person's most recent check."""
    found: ConnectionCheck | None = await db.scalar(
        select(ConnectionCheck)
        .where(ConnectionCheck.person_id == person_id)
        .order_by(ConnectionCheck.at.desc(), ConnectionCheck.id.desc())
        .limit(1)
    )
    return found


class ProbeLimiter:
    """At most ``per_minute`` probes started by one person in any minute (one node's count)."""

    def __init__(self, per_minute: int, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._starts: dict[int, deque[float]] = {}

    def take(self, person_id: int) -> None:
        """Count a start; RateLimited past the limit."""
        now = self._clock()
        starts = self._starts.setdefault(person_id, deque())
        while starts and now - starts[0] >= 60:
            starts.popleft()
        if len(starts) >= self.per_minute:
            raise RateLimited(
                N_("You have run the check several times in a row. Wait a minute and try again.")
            )
        starts.append(now)
        if len(self._starts) > 10_000:  # forget the idle
            for key in [k for k, v in self._starts.items() if not v or now - v[-1] >= 60]:
                del self._starts[key]
