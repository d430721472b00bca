"""Live connection monitoring of a meeting, unit by unit, and each invited unit's connection record.

The live layer (meetings.live.monitoring) samples every seated connection every few seconds from
the media server's own figures (bandwidth estimates, loss, round trip, the layer forwarded or
audio only) and feeds them here as plain `LinkSample`s; the client's own `stats` come along as a
`ClientClaim`, shown beside the server's figures and flagged when they disagree, never used in
their place. A `MeetingMonitor` keeps, per unit, its connected time, time on a weak link, time on
audio only, drop-outs and worst figures; it raises alerts (a unit dropped out, a unit on audio
only for too long). What it measured is saved every minute (`ConnectionProgress`, so a restart
loses nothing) and turned into one `ConnectionRecord` per invited unit when the meeting ends: the
records are written once, whole. Rules: docs/readiness/monitor.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.db.base import utcnow
from meetings.directory.models import Unit
from meetings.errors import N_
from meetings.readiness.models import ConnectionOutcome, ConnectionProgress, ConnectionRecord, ReadinessMark
from meetings.schedule.models import Occurrence, OccurrenceState, SeriesInvitee
from meetings.settings import Settings
from meetings.wire import ServerMessage

# A connection is on a weak link at "poor" quality (the room's own levels, docs/signaling.md).
POOR_RTT_MS = 600.0
POOR_LOSS_PCT = 8.0
# A client's claim disagrees wildly with the server when it is off by more than this much and by
# more than this factor (round trip), or by more than this many points (loss).
CLAIM_RTT_MS = 300.0
CLAIM_RTT_FACTOR = 3.0
CLAIM_LOSS_POINTS = 10.0
# A gap between two samples longer than this many sample periods (a stalled loop, a restart) is
# not counted as connected time: what was not seen is not measured.
MAX_GAP_SAMPLES = 3.0


@dataclass(frozen=True)
class MonitorRules:
    """The monitoring's thresholds, from the settings."""

    sample_seconds: float = 5.0
    alert_seconds: float = 120.0
    weak_share: float = 0.2
    weak_dropouts: int = 2
    weak_join_delay_s: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorRules:
        return cls(
            sample_seconds=settings.monitor_sample_seconds,
            alert_seconds=settings.monitor_alert_seconds,
            weak_share=settings.record_weak_share,
            weak_dropouts=settings.record_weak_dropouts,
            weak_join_delay_s=settings.record_weak_join_delay_minutes * 60,
        )


@dataclass(frozen=True)
class ClientClaim:
    """What a client's last `stats` message said of its own connection."""

    rtt_ms: float
    loss_pct: float
    bitrate_kbps: float


@dataclass(frozen=True)
class LinkSample:
    """One seated connection as the media server sees it now (None: not known yet)."""

    participant: str
    person_id: int
    unit_id: int | None
    name: str
    downlink_bps: int | None = None
    uplink_bps: int | None = None
    loss_pct: float | None = None
    rtt_ms: float | None = None
    width: int | None = None  # the largest video it receives now
    height: int | None = None
    paused: bool = False  # its link cannot carry even the lowest video layer
    audio_only: bool = False  # it chose audio only
    below_wanted: bool = False  # its link keeps a video below the layer its tiles ask for
    claim: ClientClaim | None = None

    @property
    def limited(self) -> bool:
        """Audio only or paused video: the unit hears the meeting but does not see it."""
        return self.audio_only or self.paused

    @property
    def poor(self) -> bool:
        return (self.rtt_ms is not None and self.rtt_ms >= POOR_RTT_MS) or (
            self.loss_pct is not None and self.loss_pct >= POOR_LOSS_PCT
        )

    @property
    def weak(self) -> bool:
        """On a weak link: limited, below the layer asked for, or at poor quality."""
        return self.limited or self.below_wanted or self.poor


def claim_flags(sample: LinkSample) -> tuple[str, ...]:
    """Which of the client's claimed figures ("rtt", "loss") disagree wildly with the server's."""
    claim = sample.claim
    if claim is None:
        return ()
    flags: list[str] = []
    if sample.rtt_ms is not None:
        low, high = sorted((claim.rtt_ms, sample.rtt_ms))
        if high - low > CLAIM_RTT_MS and high > CLAIM_RTT_FACTOR * max(low, 1.0):
            flags.append("rtt")
    if sample.loss_pct is not None and abs(claim.loss_pct - sample.loss_pct) > CLAIM_LOSS_POINTS:
        flags.append("loss")
    return tuple(flags)


class AlertKind(enum.StrEnum):
    DROPPED = "dropped"  # its last participant left during the meeting, not excused
    AUDIO_ONLY = "audio_only"  # on audio only or paused video for `alert_seconds`


ALERT_LABELS: dict[AlertKind, str] = {
    AlertKind.DROPPED: N_("%(unit)s dropped out of the meeting"),
    AlertKind.AUDIO_ONLY: N_("%(unit)s has been on audio only for more than %(minutes)s minutes"),
}


@dataclass
class UnitTrack:
    """What was measured of one unit's connection at one meeting so far."""

    unit_id: int
    first_connected_at: datetime | None = None
    connected_s: float = 0.0
    weak_s: float = 0.0
    audio_only_s: float = 0.0
    dropouts: int = 0
    reconnects: int = 0
    min_down_kbps: float | None = None
    max_loss_pct: float | None = None
    max_rtt_ms: float | None = None
    # Not saved: the state of the live meeting.
    connected: bool = False
    limited_since: datetime | None = None
    alerts: dict[AlertKind, datetime] = field(default_factory=dict)

    def measure(self, samples: list[LinkSample], dt: float) -> None:
        """One sample of the unit's connections (at least one), `dt` seconds after the last."""
        # The unit is as well connected as its best connection.
        if dt > 0:
            self.connected_s += dt
            if all(s.weak for s in samples):
                self.weak_s += dt
            if all(s.limited for s in samples):
                self.audio_only_s += dt
        downs = [s.downlink_bps for s in samples if s.downlink_bps is not None]
        if downs:
            self.min_down_kbps = _least(self.min_down_kbps, max(downs) / 1000)
        losses = [s.loss_pct for s in samples if s.loss_pct is not None]
        if losses:
            self.max_loss_pct = _most(self.max_loss_pct, min(losses))
        rtts = [s.rtt_ms for s in samples if s.rtt_ms is not None]
        if rtts:
            self.max_rtt_ms = _most(self.max_rtt_ms, float(min(rtts)))


def _least(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _most(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


def outcome(
    track: UnitTrack | None, excused: bool, start: datetime, rules: MonitorRules
) -> ConnectionOutcome:
    """How a unit's connection went (docs/readiness/monitor.md, "The record")."""
    if track is None or track.first_connected_at is None:
        return ConnectionOutcome.EXCUSED if excused else ConnectionOutcome.FAILED
    delay = max(0.0, (track.first_connected_at - start).total_seconds())
    if (
        delay > rules.weak_join_delay_s
        or track.dropouts >= rules.weak_dropouts
        or (track.connected_s > 0 and track.weak_s >= rules.weak_share * track.connected_s)
    ):
        return ConnectionOutcome.WEAK
    return ConnectionOutcome.GOOD


# --- what the monitoring page shows and its socket pushes ------------------------------------


@dataclass(frozen=True)
class ParticipantView:
    participant: str
    person_id: int
    name: str
    downlink_kbps: int | None
    uplink_kbps: int | None
    loss_pct: float | None
    rtt_ms: int | None
    layer: str | None  # "640×360", None when it receives no video
    paused: bool
    audio_only: bool
    below_wanted: bool
    reconnects: int
    claim_rtt_ms: int | None
    claim_loss_pct: float | None
    claim_flags: tuple[str, ...]


@dataclass(frozen=True)
class UnitView:
    unit_id: int | None
    code: str
    name: str
    invited: bool
    # Live: "connected", "dropped", "waiting" (not joined yet), "excused"; once the meeting is
    # over: "attended", "absent", "excused".
    status: str
    dropouts: int
    reconnects: int
    limited: bool
    participants: tuple[ParticipantView, ...]


@dataclass(frozen=True)
class AlertView:
    kind: str
    unit_id: int
    unit: str
    since: str  # ISO 8601, UTC


@dataclass(frozen=True)
class MonitorState(ServerMessage):
    """The whole monitoring view of a meeting, sent on connecting and after every sample."""

    TYPE: ClassVar[str] = "state"
    occurrence: int
    at: str
    units: tuple[UnitView, ...]
    alerts: tuple[AlertView, ...]


@dataclass(frozen=True)
class MonitorAlert(ServerMessage):
    """A new alert (also part of the next `state`): the page shows it at once."""

    TYPE: ClassVar[str] = "alert"
    alert: AlertView


MONITOR_MESSAGES: tuple[type[ServerMessage], ...] = (MonitorState, MonitorAlert)


@dataclass(frozen=True)
class RoomFigures:
    """One open room's figures for the metrics: running totals and the current state."""

    occurrence_id: int
    participants: int
    forwarded_packets: int
    sent_bytes: int
    received_packets: int
    received_bytes: int
    loss_pct: float | None  # the worst participant's loss now


@dataclass(frozen=True)
class UnitInfo:
    id: int
    code: str
    name: str


class MeetingMonitor:
    """The connections of one meeting, unit by unit, over time."""

    def __init__(
        self,
        occurrence_id: int,
        start: datetime,
        rules: MonitorRules,
        invited: Iterable[UnitInfo] = (),
        known: Iterable[UnitInfo] = (),
    ) -> None:
        self.occurrence_id = occurrence_id
        self.start = start
        self.rules = rules
        self.invited: dict[int, UnitInfo] = {u.id: u for u in invited}
        self.units: dict[int, UnitInfo] = {**{u.id: u for u in known}, **self.invited}
        self.tracks: dict[int, UnitTrack] = {}
        self.excused: set[int] = set()
        self.samples: list[LinkSample] = []
        self.sampled_at: datetime | None = None
        self._participants: dict[int, str] = {}  # each person's current connection
        self.person_reconnects: dict[int, int] = {}
        self.finished = False

    def track(self, unit_id: int) -> UnitTrack:
        found = self.tracks.get(unit_id)
        if found is None:
            found = self.tracks[unit_id] = UnitTrack(unit_id)
        return found

    def observe(self, samples: list[LinkSample], now: datetime) -> list[AlertView]:
        """One sample of every seated connection; returns the alerts raised by it."""
        dt = 0.0
        if self.sampled_at is not None:
            dt = max(0.0, (now - self.sampled_at).total_seconds())
            if dt > MAX_GAP_SAMPLES * self.rules.sample_seconds:
                dt = 0.0
        self.sampled_at = now
        self.samples = list(samples)
        for s in samples:
            before = self._participants.get(s.person_id)
            if before is not None and before != s.participant:
                self.person_reconnects[s.person_id] = self.person_reconnects.get(s.person_id, 0) + 1
                if s.unit_id is not None:
                    self.track(s.unit_id).reconnects += 1
            self._participants[s.person_id] = s.participant
        by_unit: dict[int, list[LinkSample]] = {}
        for s in samples:
            if s.unit_id is not None:
                by_unit.setdefault(s.unit_id, []).append(s)
        raised: list[AlertView] = []
        for unit_id in set(by_unit) | {u for u, t in self.tracks.items() if t.connected}:
            track = self.track(unit_id)
            present = by_unit.get(unit_id, [])
            if present:
                if track.first_connected_at is None:
                    track.first_connected_at = now
                track.measure(present, dt if track.connected else 0.0)
                track.connected = True
                track.alerts.pop(AlertKind.DROPPED, None)
                if all(s.limited for s in present):
                    track.limited_since = track.limited_since or now
                    limited_for = (now - track.limited_since).total_seconds()
                    if limited_for >= self.rules.alert_seconds and AlertKind.AUDIO_ONLY not in track.alerts:
                        track.alerts[AlertKind.AUDIO_ONLY] = track.limited_since
                        raised.append(self._alert_view(unit_id, AlertKind.AUDIO_ONLY))
                else:
                    track.limited_since = None
                    track.alerts.pop(AlertKind.AUDIO_ONLY, None)
            else:
                if dt > 0:
                    track.connected_s += dt  # it was there until this sample noticed it gone
                track.connected = False
                track.dropouts += 1
                track.limited_since = None
                track.alerts.pop(AlertKind.AUDIO_ONLY, None)
                if unit_id not in self.excused:
                    track.alerts[AlertKind.DROPPED] = now
                    raised.append(self._alert_view(unit_id, AlertKind.DROPPED))
        return raised

    def drop_excused_alerts(self) -> None:
        """A unit excused since it dropped out is no longer an alert."""
        for unit_id in self.excused:
            track = self.tracks.get(unit_id)
            if track is not None:
                track.alerts.pop(AlertKind.DROPPED, None)

    def finish(self, now: datetime) -> None:
        """The meeting is over: what was connected until now is counted, and is no drop-out."""
        if self.sampled_at is not None and not self.finished:
            dt = max(0.0, (now - self.sampled_at).total_seconds())
            if dt <= MAX_GAP_SAMPLES * self.rules.sample_seconds:
                by_unit: dict[int, list[LinkSample]] = {}
                for s in self.samples:
                    if s.unit_id is not None:
                        by_unit.setdefault(s.unit_id, []).append(s)
                for unit_id, present in by_unit.items():
                    track = self.tracks.get(unit_id)
                    if track is not None and track.connected:
                        track.measure(present, dt)
        for track in self.tracks.values():
            track.connected = False
            track.alerts.clear()
            track.limited_since = None
        self.sampled_at = now
        self.samples = []
        self.finished = True

    # --- reading -----------------------------------------------------------------------------

    def _unit_name(self, unit_id: int) -> str:
        info = self.units.get(unit_id)
        return info.name if info is not None else str(unit_id)

    def _alert_view(self, unit_id: int, kind: AlertKind) -> AlertView:
        since = self.tracks[unit_id].alerts[kind]
        return AlertView(kind.value, unit_id, self._unit_name(unit_id), since.isoformat())

    def alerts(self) -> list[AlertView]:
        """The alerts standing now, oldest first."""
        found = [
            self._alert_view(unit_id, kind) for unit_id, track in self.tracks.items() for kind in track.alerts
        ]
        return sorted(found, key=lambda a: (a.since, a.unit))

    def state(self, now: datetime) -> MonitorState:
        """Every unit (invited ones first, then others that joined) with its connections now."""
        by_unit: dict[int | None, list[LinkSample]] = {}
        for s in self.samples:
            by_unit.setdefault(s.unit_id, []).append(s)
        unit_ids = list(self.invited) + [
            u for u in {*self.tracks, *(k for k in by_unit if k is not None)} if u not in self.invited
        ]
        views: list[UnitView] = []
        for unit_id in unit_ids:
            info = self.units.get(unit_id)
            track = self.tracks.get(unit_id)
            present = by_unit.get(unit_id, [])
            came = track is not None and track.first_connected_at is not None
            if present:
                status = "connected"
            elif came:
                status = "attended" if self.finished else "dropped"
            elif unit_id in self.excused:
                status = "excused"
            else:
                status = "absent" if self.finished else "waiting"
            views.append(
                UnitView(
                    unit_id=unit_id,
                    code=info.code if info else "",
                    name=info.name if info else str(unit_id),
                    invited=unit_id in self.invited,
                    status=status,
                    dropouts=track.dropouts if track else 0,
                    reconnects=track.reconnects if track else 0,
                    limited=bool(present) and all(s.limited for s in present),
                    participants=tuple(self._participant_view(s) for s in present),
                )
            )
        if by_unit.get(None):
            views.append(
                UnitView(
                    None,
                    "",
                    "",
                    False,
                    "connected",
                    0,
                    0,
                    all(s.limited for s in by_unit[None]),
                    tuple(self._participant_view(s) for s in by_unit[None]),
                )
            )
        return MonitorState(self.occurrence_id, now.isoformat(), tuple(views), tuple(self.alerts()))

    def _participant_view(self, s: LinkSample) -> ParticipantView:
        return ParticipantView(
            participant=s.participant,
            person_id=s.person_id,
            name=s.name,
            downlink_kbps=round(s.downlink_bps / 1000) if s.downlink_bps is not None else None,
            uplink_kbps=round(s.uplink_bps / 1000) if s.uplink_bps is not None else None,
            loss_pct=s.loss_pct,
            rtt_ms=round(s.rtt_ms) if s.rtt_ms is not None else None,
            layer=f"{s.width}×{s.height}" if s.width and s.height and not s.limited else None,
            paused=s.paused,
            audio_only=s.audio_only,
            below_wanted=s.below_wanted,
            reconnects=self.person_reconnects.get(s.person_id, 0),
            claim_rtt_ms=round(s.claim.rtt_ms) if s.claim else None,
            claim_loss_pct=round(s.claim.loss_pct, 1) if s.claim else None,
            claim_flags=claim_flags(s),
        )

    # --- records -----------------------------------------------------------------------------

    def restore(self, unit_id: int, measured: dict[str, Any]) -> None:
        """Go on from what was measured before (a running measure saved before a restart, or a
        unit's final record for a meeting that is over)."""
        track = self.track(unit_id)
        delay = measured.get("join_delay_s")
        if delay is not None:
            track.first_connected_at = self.start + timedelta(seconds=float(delay))
        track.connected_s = float(measured.get("connected_s") or 0)
        track.weak_s = float(measured.get("weak_s") or 0)
        track.audio_only_s = float(measured.get("audio_only_s") or 0)
        track.dropouts = int(measured.get("dropouts") or 0)
        track.reconnects = int(measured.get("reconnects") or 0)
        track.min_down_kbps = measured.get("min_down_kbps")
        track.max_loss_pct = measured.get("max_loss_pct")
        track.max_rtt_ms = measured.get("max_rtt_ms")

    def measured(self, unit_id: int) -> dict[str, Any]:
        """What was measured of one unit so far, as saved (JSON) and as the record's columns."""
        track = self.tracks.get(unit_id)
        if track is None:
            return {
                "join_delay_s": None,
                "connected_s": 0,
                "weak_s": 0,
                "audio_only_s": 0,
                "dropouts": 0,
                "reconnects": 0,
                "min_down_kbps": None,
                "max_loss_pct": None,
                "max_rtt_ms": None,
            }
        joined = track.first_connected_at
        return {
            "join_delay_s": max(0.0, round((joined - self.start).total_seconds(), 1)) if joined else None,
            "connected_s": round(track.connected_s),
            "weak_s": round(track.weak_s),
            "audio_only_s": round(track.audio_only_s),
            "dropouts": track.dropouts,
            "reconnects": track.reconnects,
            "min_down_kbps": track.min_down_kbps,
            "max_loss_pct": track.max_loss_pct,
            "max_rtt_ms": track.max_rtt_ms,
        }

    def record_values(self, unit_id: int) -> dict[str, Any]:
        """The columns of one invited unit's record."""
        excused = unit_id in self.excused
        values = self.measured(unit_id)
        reconnects = values.pop("reconnects")
        return {
            **values,
            "meeting_start": self.start,
            "outcome": outcome(self.tracks.get(unit_id), excused, self.start, self.rules),
            "details": {
                "excused": excused,
                "reconnects": reconnects,
                "rules": {
                    "weak_share": self.rules.weak_share,
                    "weak_dropouts": self.rules.weak_dropouts,
                    "weak_join_delay_s": self.rules.weak_join_delay_s,
                },
            },
        }


# --- the database ------------------------------------------------------------------------------


async def load_monitor(
    db: AsyncSession, occurrence_id: int, rules: MonitorRules, *, saved: bool = False
) -> MeetingMonitor:
    """A meeting's monitor: its invited units, who is excused, and the running measure saved
    before a restart (`saved`: the final records too, for a meeting this node does not host)."""
    occurrence = await db.get(Occurrence, occurrence_id)
    start = occurrence.start if occurrence is not None else utcnow()
    invited: list[UnitInfo] = []
    if occurrence is not None:
        rows = await db.execute(
            select(Unit.id, Unit.code, Unit.name)
            .join(SeriesInvitee, SeriesInvitee.unit_id == Unit.id)
            .where(SeriesInvitee.series_id == occurrence.series_id)
            .order_by(Unit.code)
        )
        invited = [UnitInfo(i, c, n) for i, c, n in rows]
    monitor = MeetingMonitor(occurrence_id, start, rules, invited)
    monitor.excused = await excused_units(db, occurrence_id)
    progress = list(
        await db.scalars(select(ConnectionProgress).where(ConnectionProgress.occurrence_id == occurrence_id))
    )
    for row in progress:
        monitor.restore(row.unit_id, row.measured)
    if saved and not progress:
        records = list(
            await db.scalars(select(ConnectionRecord).where(ConnectionRecord.occurrence_id == occurrence_id))
        )
        for record in records:
            monitor.restore(
                record.unit_id,
                {
                    "join_delay_s": record.join_delay_s,
                    "connected_s": record.connected_s,
                    "weak_s": record.weak_s,
                    "audio_only_s": record.audio_only_s,
                    "dropouts": record.dropouts,
                    "reconnects": record.details.get("reconnects", 0),
                    "min_down_kbps": record.min_down_kbps,
                    "max_loss_pct": record.max_loss_pct,
                    "max_rtt_ms": record.max_rtt_ms,
                },
            )
        monitor.finished = bool(records)
    return monitor


async def unit_infos(db: AsyncSession, unit_ids: Iterable[int]) -> list[UnitInfo]:
    """Codes and names of units (for units that joined without being invited)."""
    ids = list(unit_ids)
    if not ids:
        return []
    rows = await db.execute(select(Unit.id, Unit.code, Unit.name).where(Unit.id.in_(ids)))
    return [UnitInfo(i, c, n) for i, c, n in rows]


async def excused_units(db: AsyncSession, occurrence_id: int) -> set[int]:
    """The units the readiness board excused from this meeting."""
    return set(
        await db.scalars(
            select(ReadinessMark.unit_id).where(
                ReadinessMark.occurrence_id == occurrence_id, ReadinessMark.excused.is_(True)
            )
        )
    )


async def save_progress(db: AsyncSession, monitor: MeetingMonitor) -> int:
    """Upsert the running measure of every invited unit (a meeting already recorded is left
    alone). Flushes; the caller commits. Returns the rows written."""
    recorded = await db.scalar(
        select(ConnectionRecord.id).where(ConnectionRecord.occurrence_id == monitor.occurrence_id).limit(1)
    )
    if recorded is not None:
        return 0
    existing = {
        row.unit_id: row
        for row in await db.scalars(
            select(ConnectionProgress).where(ConnectionProgress.occurrence_id == monitor.occurrence_id)
        )
    }
    for unit_id in monitor.invited:
        measured = monitor.measured(unit_id)
        row = existing.get(unit_id)
        if row is None:
            db.add(
                ConnectionProgress(occurrence_id=monitor.occurrence_id, unit_id=unit_id, measured=measured)
            )
        elif row.measured != measured:
            row.measured = measured
    await db.flush()
    return len(monitor.invited)


async def save_records(db: AsyncSession, monitor: MeetingMonitor) -> int:
    """The meeting is over: one record per invited unit that has none yet (a record is written
    once), and the running measure is deleted. Flushes; the caller commits. Returns the records
    written."""
    existing = set(
        await db.scalars(
            select(ConnectionRecord.unit_id).where(ConnectionRecord.occurrence_id == monitor.occurrence_id)
        )
    )
    written = 0
    for unit_id in monitor.invited:
        if unit_id not in existing:
            db.add(
                ConnectionRecord(
                    occurrence_id=monitor.occurrence_id, unit_id=unit_id, **monitor.record_values(unit_id)
                )
            )
            written += 1
    await db.execute(
        delete(ConnectionProgress).where(ConnectionProgress.occurrence_id == monitor.occurrence_id)
    )
    await db.flush()
    return written


async def finalise(db: AsyncSession, occurrence_id: int, rules: MonitorRules, now: datetime) -> int:
    """Write a meeting's records from its saved running measure (no live monitor: a restart, a
    node gone)."""
    monitor = await load_monitor(db, occurrence_id, rules)
    monitor.finish(now)
    return await save_records(db, monitor)


async def due_for_final(db: AsyncSession, now: datetime, grace: timedelta, within: timedelta) -> list[int]:
    """Meetings over (ended, or past their end and grace) that still have a running measure."""
    rows = await db.execute(
        select(ConnectionProgress.occurrence_id, Occurrence.state, Occurrence.end)
        .join(Occurrence, Occurrence.id == ConnectionProgress.occurrence_id)
        .where(Occurrence.end >= now - within)
        .distinct()
    )
    return sorted({o for o, state, end in rows if state is OccurrenceState.ENDED or now >= end + grace})
