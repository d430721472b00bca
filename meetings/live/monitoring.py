"""The connection tracker of this node's live meetings: samples every seated connection from the
media server's own figures, feeds the meetings' monitors (meetings.readiness.monitor), pushes
the monitoring page's updates, keeps the per-room metrics, and saves each invited unit's
connection record every minute and at the end.

Samples come from the live session (the `link` figures the SFU reported, the layer forwarded,
audio only) and the SFU itself (whether its link keeps a video below what its tiles ask for, the
packet and byte counters); the client's own `stats` ride along as a claim, never in their place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db.base import utcnow
from meetings.live.registry import LiveMeetings
from meetings.live.session import MeetingSession
from meetings.readiness import monitor as mon
from meetings.readiness.monitor import ClientClaim, LinkSample, MeetingMonitor, MonitorAlert, RoomFigures
from meetings.rooms.room import Room
from meetings.rtc.sfu import ParticipantCounters, Sfu
from meetings.wire import encode

log = logging.getLogger("giaoban.monitor")

# Records of meetings that ended this long ago are no longer finalised by the catch-up.
CATCH_UP = timedelta(days=2)


class Watcher(Protocol):
    """A monitoring page's socket (web/views/readiness_monitor.py)."""

    def post(self, text: str) -> None:
        """Queue encoded text (a slow watcher is closed, never waited for)."""
        ...

    def close(self) -> None:
        """Close after what is queued (the node is going away: the page reconnects)."""
        ...


@dataclass
class _Totals:
    """A room's running packet and byte totals, summed from its connections' increments."""

    last: dict[str, ParticipantCounters] = field(default_factory=dict)
    forwarded: int = 0
    sent_bytes: int = 0
    received: int = 0
    received_bytes: int = 0

    def add(self, counters: dict[str, ParticipantCounters]) -> None:
        for participant, now in counters.items():
            before = self.last.get(participant, ParticipantCounters(0, 0, 0, 0))
            self.forwarded += max(0, now.forwarded - before.forwarded)
            self.sent_bytes += max(0, now.sent_bytes - before.sent_bytes)
            self.received += max(0, now.received - before.received)
            self.received_bytes += max(0, now.received_bytes - before.received_bytes)
        self.last = dict(counters)


def samples(room: Room, session: MeetingSession | None, sfu: Sfu | None) -> list[LinkSample]:
    """Every seated connection of a room as the media server sees it now."""
    found: list[LinkSample] = []
    for p in room.participants:
        link = session.links.get(p.id) if session is not None else None
        told = session.claims.get(p.id) if session is not None else None
        claim = ClientClaim(told.rtt_ms, told.loss_pct, told.bitrate_kbps) if told is not None else None
        audio_only = session is not None and p.id in session.audio_only
        found.append(
            LinkSample(
                participant=p.id,
                person_id=p.person_id,
                unit_id=p.unit_id,
                name=p.name,
                downlink_bps=link.downlink_bps if link else None,
                uplink_bps=link.uplink_bps if link else None,
                loss_pct=link.loss if link else None,
                rtt_ms=float(link.rtt_ms) if link and link.rtt_ms is not None else None,
                width=link.width if link else None,
                height=link.height if link else None,
                paused=bool(link and link.paused),
                audio_only=audio_only,
                below_wanted=sfu is not None and p.id in sfu.participants() and sfu.below_wanted(p.id),
                claim=claim,
            )
        )
    return found


class ConnectionTracker:
    """The monitors of this node's open meetings, their watchers and their rooms' metrics."""

    def __init__(
        self,
        live: LiveMeetings,
        sessions: async_sessionmaker[AsyncSession],
        rules: mon.MonitorRules,
        *,
        save_seconds: float,
        grace: timedelta,
    ) -> None:
        self.live = live
        self.sessions = sessions
        self.rules = rules
        self.save_seconds = save_seconds
        self.grace = grace  # a room closes this long after its planned end
        self.monitors: dict[int, MeetingMonitor] = {}
        self.ends: dict[int, datetime] = {}
        self.watchers: dict[int, set[Watcher]] = {}
        self._totals: dict[int, _Totals] = {}
        self._saved_at: dict[int, datetime] = {}
        self._caught_up_at: datetime | None = None
        self._lock = asyncio.Lock()
        self.stopped = False

    # --- watchers ------------------------------------------------------------------------

    def watch(self, occurrence_id: int, watcher: Watcher) -> None:
        self.watchers.setdefault(occurrence_id, set()).add(watcher)

    def unwatch(self, occurrence_id: int, watcher: Watcher) -> None:
        found = self.watchers.get(occurrence_id)
        if found is not None:
            found.discard(watcher)
            if not found:
                del self.watchers[occurrence_id]

    async def state(self, occurrence_id: int, now: datetime | None = None) -> mon.MonitorState:
        """What the monitoring page shows now (a meeting not open on this node: the saved records)."""
        now = now or utcnow()
        async with self._lock:
            monitor = self.monitors.get(occurrence_id)
            if monitor is None:
                async with self.sessions() as db:
                    monitor = await mon.load_monitor(db, occurrence_id, self.rules, saved=True)
            return monitor.state(now)

    # --- sampling ------------------------------------------------------------------------

    async def run(self) -> None:
        """Forever: sample every `sample_seconds` (one failed sample does not stop the next)."""
        while True:
            await asyncio.sleep(self.rules.sample_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("connection monitoring sample failed")

    async def stop(self) -> None:
        """The node is stopping: save the running measures; the connections closing next are no
        drop-outs (their people reconnect to another node or after the restart)."""
        async with self._lock:
            self.stopped = True
            for watchers in self.watchers.values():
                for watcher in list(watchers):
                    watcher.close()
            for monitor in list(self.monitors.values()):
                try:
                    await self._save(monitor, final=False)
                except Exception:
                    log.exception("running measure not saved", extra={"occurrence": monitor.occurrence_id})

    async def attendance_changed(self, occurrence_id: int) -> None:
        """A seat, a leave or the end: sample that meeting now (a drop-out is seen at once)."""
        if self.stopped:
            return
        try:
            async with self._lock:
                room = self.live.registry.get(occurrence_id)
                now = utcnow()
                if room is not None:
                    await self._room(room, now)
                elif occurrence_id in self.monitors:
                    await self._orphan(occurrence_id, now)
        except Exception:  # the room goes on whatever happens to its monitoring
            log.exception("connection monitoring failed", extra={"occurrence": occurrence_id})

    async def tick(self, now: datetime | None = None) -> None:
        """One sample of every open meeting, saves that are due, and the catch-up of records."""
        now = now or utcnow()
        async with self._lock:
            if self.stopped:
                return
            seen: set[int] = set()
            # One meeting's failure (its database rows, a bug) must not stop the others'.
            for room in list(self.live.registry):
                seen.add(room.occurrence_id)
                with self._logged(room.occurrence_id):
                    await self._room(room, now)
            for occurrence_id in [o for o in self.monitors if o not in seen]:
                with self._logged(occurrence_id):
                    await self._orphan(occurrence_id, now)
            self.figures()  # the rooms' totals take each sample's increments, not only each scrape's
            for occurrence_id, monitor in list(self.monitors.items()):
                saved = self._saved_at.get(occurrence_id)
                if saved is None or (now - saved).total_seconds() >= self.save_seconds:
                    with self._logged(occurrence_id):
                        await self._save(monitor, final=False)
                        self._saved_at[occurrence_id] = now
            if self._caught_up_at is None or (now - self._caught_up_at).total_seconds() >= self.save_seconds:
                self._caught_up_at = now
                await self._catch_up(now)

    async def _room(self, room: Room, now: datetime) -> None:
        occurrence_id = room.occurrence_id
        monitor = self.monitors.get(occurrence_id)
        if room.finished(now):
            if monitor is not None:
                await self._finish(occurrence_id, now)
            return
        if monitor is None:
            monitor = await self._open(occurrence_id, room.ends_at)
        sfu = self.live.sfus.get(occurrence_id)
        taken = samples(room, self.live.meetings.get(occurrence_id), sfu)
        unknown = {s.unit_id for s in taken if s.unit_id is not None and s.unit_id not in monitor.units}
        if unknown:
            async with self.sessions() as db:
                for info in await mon.unit_infos(db, unknown):
                    monitor.units[info.id] = info
        raised = monitor.observe(taken, now)
        self._push(monitor, raised, now)

    async def _orphan(self, occurrence_id: int, now: datetime) -> None:
        """A monitored meeting whose room this node forgot (empty): over, or everyone dropped out."""
        monitor = self.monitors[occurrence_id]
        end = self.ends.get(occurrence_id, monitor.start)
        if now >= end + self.grace:
            await self._finish(occurrence_id, now)
        else:
            self._push(monitor, monitor.observe([], now), now)

    async def _open(self, occurrence_id: int, end: datetime) -> MeetingMonitor:
        async with self.sessions() as db:
            monitor = await mon.load_monitor(db, occurrence_id, self.rules)
        self.monitors[occurrence_id] = monitor
        self.ends[occurrence_id] = end
        return monitor

    async def _finish(self, occurrence_id: int, now: datetime) -> None:
        """The meeting is over: its records are finalised, then it is forgotten (a failed save is
        tried again at the next sample; the catch-up finalises it should this node stop)."""
        monitor = self.monitors[occurrence_id]
        monitor.finish(now)
        await self._save(monitor, final=True)
        del self.monitors[occurrence_id]
        self.ends.pop(occurrence_id, None)
        self._saved_at.pop(occurrence_id, None)
        self._push(monitor, [], now)

    @staticmethod
    @contextlib.contextmanager
    def _logged(occurrence_id: int) -> Iterator[None]:
        try:
            yield
        except Exception:
            log.exception("connection monitoring failed", extra={"occurrence": occurrence_id})

    async def _save(self, monitor: MeetingMonitor, *, final: bool) -> None:
        """Save the records (the excused units read afresh first); a clash with another node's
        write is tried once more."""
        for attempt in range(2):
            try:
                async with self.sessions() as db:
                    monitor.excused = await mon.excused_units(db, monitor.occurrence_id)
                    monitor.drop_excused_alerts()
                    if final:
                        await mon.save_records(db, monitor)
                    else:
                        await mon.save_progress(db, monitor)
                    await db.commit()
                return
            except IntegrityError:
                if attempt:
                    raise

    async def _catch_up(self, now: datetime) -> None:
        """Finalise the records of meetings that are over but were not finalised here (a restart)."""
        async with self.sessions() as db:
            due = await mon.due_for_final(db, now, self.grace, CATCH_UP)
        for occurrence_id in due:
            if occurrence_id in self.monitors:
                continue
            with contextlib.suppress(IntegrityError):
                async with self.sessions() as db:
                    await mon.finalise(db, occurrence_id, self.rules, now)
                    await db.commit()

    def _push(self, monitor: MeetingMonitor, raised: list[mon.AlertView], now: datetime) -> None:
        watchers = self.watchers.get(monitor.occurrence_id)
        if not watchers:
            return
        texts = [encode(MonitorAlert(alert)) for alert in raised]
        texts.append(encode(monitor.state(now)))
        for watcher in list(watchers):
            for text in texts:
                watcher.post(text)

    # --- metrics -------------------------------------------------------------------------

    def figures(self) -> list[RoomFigures]:
        """Each open room's figures now; a closed room's totals are forgotten (its series go)."""
        sfus = self.live.sfus
        for occurrence_id in [o for o in self._totals if o not in sfus]:
            del self._totals[occurrence_id]
        found: list[RoomFigures] = []
        for occurrence_id, sfu in sorted(sfus.items()):
            totals = self._totals.setdefault(occurrence_id, _Totals())
            totals.add(sfu.counters())
            session = self.live.meetings.get(occurrence_id)
            losses = [
                link.loss for link in (session.links.values() if session else ()) if link.loss is not None
            ]
            room = self.live.registry.get(occurrence_id)
            found.append(
                RoomFigures(
                    occurrence_id=occurrence_id,
                    participants=len(room.participants) if room is not None else 0,
                    forwarded_packets=totals.forwarded,
                    sent_bytes=totals.sent_bytes,
                    received_packets=totals.received,
                    received_bytes=totals.received_bytes,
                    loss_pct=max(losses) if losses else None,
                )
            )
        return found
