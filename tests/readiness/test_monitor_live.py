"""Live monitoring through the real app: real rooms, real aiortc peers, the monitoring socket,
the per-room metrics, and the connection records written for every invited unit."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.readiness import monitor as mon
from meetings.readiness.models import ConnectionOutcome, ConnectionProgress, ConnectionRecord, ReadinessMark
from meetings.readiness.monitor import LinkSample, MonitorRules
from meetings.schedule.links import JoinLink, make_join_token
from meetings.settings import Settings
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.peers import Peer, eventually
from web import keys

LAST: list[Any] = []
READERS = ("administrator", "chair", "secretary", "support")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Samples every 0.2 s, records saved every 0.5 s, the audio-only alert after 1 s."""
    return dataclasses.replace(
        settings, monitor_sample_seconds=0.2, monitor_save_seconds=0.5, monitor_alert_seconds=1.0
    )


@dataclass
class Scene:
    """A meeting inviting four centres: A's person joins, B's never does, C is excused, D's person
    joins on audio only."""

    world: World
    occurrence: int
    a: Person
    chair: Person
    unit_a: Unit
    unit_b: Unit
    unit_c: Unit
    unit_d: Unit
    d: Person
    dept: Unit
    series_id: int
    peers: list[Peer] = field(default_factory=list)
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)

    def token(self, person: Person) -> str:
        link = JoinLink(person.id, self.series_id, None, datetime.now(UTC) + timedelta(days=1))
        return make_join_token(self.world.settings.secret_key, link)

    async def join(self, person: Person, join: dict[str, Any] | None = None, **client: Any) -> Peer:
        peer = Peer(self.world, Client(person.name, **{"audio_slots": 0, "video_slots": 0, **client}))
        self.peers.append(peer)
        await peer.connect(self.occurrence, token=self.token(person), session=False, **(join or {}))
        await peer.negotiate()
        return peer

    async def watch(self, session: aiohttp.ClientSession | None = None) -> aiohttp.ClientWebSocketResponse:
        """The monitoring socket, as the signed-in client (or `session`)."""
        origin = str(self.world.client.make_url("/")).rstrip("/")
        url = self.world.client.make_url(f"/meetings/occurrences/{self.occurrence}/monitor/ws")
        ws = await (session or self.world.client.session).ws_connect(url, headers={"Origin": origin})
        self.sockets.append(ws)
        return ws


@pytest.fixture
async def scene(world: World) -> AsyncIterator[Scene]:
    unit_a = await world.unit("P-ANCUU", UnitKind.CENTRE, "Phường An Cựu")
    unit_b = await world.unit("P-BINHDIEN", UnitKind.CENTRE, "Xã Bình Điền")
    unit_c = await world.unit("P-CAUHAI", UnitKind.CENTRE, "Xã Cầu Hai")
    unit_d = await world.unit("P-DUONGNO", UnitKind.CENTRE, "Phường Dương Nỗ")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    a = await world.person("a@hue.example", Role.MEMBER, unit_a, name="Nguyễn Văn An")
    d = await world.person("d@hue.example", Role.MEMBER, unit_d, name="Hồ Văn Dũng")
    await world.person("b@hue.example", Role.MEMBER, unit_b, name="Lê Thị Bình")
    chair = await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    await world.person("support@hue.example", Role.SUPPORT, dept, name="Hỗ Trợ")
    series, occ = await world.open_meeting(
        ["P-ANCUU", "P-BINHDIEN", "P-CAUHAI", "P-DUONGNO"], chair_email="chair@hue.example"
    )
    async with world.db() as db:
        db.add(ReadinessMark(occurrence_id=occ.id, unit_id=unit_c.id, excused=True, excuse_reason="Nghỉ"))
        await db.commit()
    found = Scene(world, occ.id, a, chair, unit_a, unit_b, unit_c, unit_d, d, dept, series.id)
    yield found
    for ws in found.sockets:
        await ws.close()
    for peer in found.peers:
        await peer.close()
    assert await wait_for(lambda: not world.app[keys.MEDIA].sfus, 10)


async def next_message(
    ws: aiohttp.ClientWebSocketResponse, where: Any, within: float = 20.0
) -> dict[str, Any]:
    """Read the socket until a message matches `where`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no matching message in time: {LAST}"
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            raise AssertionError(f"no matching message in time; the last: {LAST}") from None
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        LAST[:] = [data]
        if where(data):
            return data


def unit_of(state: dict[str, Any], unit: Unit) -> dict[str, Any]:
    return next(u for u in state["units"] if u["unit_id"] == unit.id)


def figures_known(unit: Unit) -> Any:
    def check(m: dict[str, Any]) -> bool:
        if m["type"] != "state":
            return False
        people = unit_of(m, unit)["participants"]
        return bool(people) and all(people[0][k] is not None for k in ("uplink_kbps", "loss_pct", "rtt_ms"))

    return check


async def test_the_monitor_shows_the_servers_figures_and_flags_a_forged_claim(scene: Scene) -> None:
    world = scene.world
    await world.login("support@hue.example")
    ws = await scene.watch()
    first = await next_message(ws, lambda m: m["type"] == "state")
    assert [(u["unit_id"], u["status"]) for u in first["units"]] == [
        (scene.unit_a.id, "waiting"),
        (scene.unit_b.id, "waiting"),
        (scene.unit_c.id, "excused"),
        (scene.unit_d.id, "waiting"),
    ]
    a = await scene.join(scene.a, amplitude=0.3, audio_slots=1)
    await scene.join(scene.chair, amplitude=0.3)  # A receives the chair: the server learns its round trip
    state = await next_message(ws, figures_known(scene.unit_a))
    unit = unit_of(state, scene.unit_a)
    assert unit["status"] == "connected"
    person = unit["participants"][0]
    assert (person["participant"], person["person_id"], person["name"]) == (
        a.participant,
        scene.a.id,
        "Nguyễn Văn An",
    )
    assert person["uplink_kbps"] > 10 and person["loss_pct"] < 5 and person["claim_flags"] == []
    # A forged report: an impossible round trip and total loss. Shown beside, flagged, not used.
    await a.send(type="stats", rttMs=60_000, lossPct=100, bitrateKbps=1_000_000)
    state = await next_message(
        ws, lambda m: m["type"] == "state" and unit_of(m, scene.unit_a)["participants"][0]["claim_flags"]
    )
    person = unit_of(state, scene.unit_a)["participants"][0]
    assert person["claim_flags"] == ["rtt", "loss"]
    assert (person["claim_rtt_ms"], person["claim_loss_pct"]) == (60_000, 100.0)
    assert person["loss_pct"] < 5 and person["rtt_ms"] < 1000  # the server's own figures stay
    # Nor does the room believe it: everyone's indicator shows the level of the server's figures.
    assert await a.event("quality", lambda e: e["person_id"] == scene.a.id)
    # (The claim alone reads "poor"; a loopback link measured by the server does not.)
    assert [e["level"] for e in a.of_type("quality") if e["person_id"] == scene.a.id] in (["good"], ["fair"])
    # An absurd one is refused by the protocol with an error (the socket stays open).
    await a.send(type="stats", rttMs=-5, lossPct=500, bitrateKbps="fast")
    assert await a.event("error", lambda e: e["code"] == "bad_message")
    api = await (await world.client.get(f"/api/occurrences/{scene.occurrence}/monitor")).json()
    assert unit_of(api, scene.unit_a)["participants"][0]["claim_rtt_ms"] == 60_000


async def test_audio_only_for_the_alert_period_raises_an_alert(scene: Scene) -> None:
    await scene.world.login("chair@hue.example")
    ws = await scene.watch()
    a = await scene.join(scene.a, amplitude=0.3)
    await next_message(
        ws, lambda m: m["type"] == "state" and unit_of(m, scene.unit_a)["status"] == "connected"
    )
    await a.send(type="audio_only", enabled=True)
    alert = await next_message(ws, lambda m: m["type"] == "alert")
    assert (alert["alert"]["kind"], alert["alert"]["unit_id"], alert["alert"]["unit"]) == (
        "audio_only",
        scene.unit_a.id,
        "Phường An Cựu",
    )
    state = await next_message(ws, lambda m: m["type"] == "state")
    assert [a["kind"] for a in state["alerts"]] == ["audio_only"]
    person = unit_of(state, scene.unit_a)["participants"][0]
    assert person["audio_only"] is True and person["layer"] is None
    page = await scene.world.client.get(f"/meetings/occurrences/{scene.occurrence}/monitor")
    assert "Phường An Cựu" in await page.text() and 'data-kind="audio_only"' in await page.text()


async def test_a_unit_dropping_out_raises_an_alert(scene: Scene) -> None:
    await scene.world.login("support@hue.example")
    ws = await scene.watch()
    a = await scene.join(scene.a, amplitude=0.3)
    await next_message(
        ws, lambda m: m["type"] == "state" and unit_of(m, scene.unit_a)["status"] == "connected"
    )
    await a.close()
    alert = await next_message(ws, lambda m: m["type"] == "alert")
    assert (alert["alert"]["kind"], alert["alert"]["unit_id"]) == ("dropped", scene.unit_a.id)
    state = await next_message(ws, lambda m: m["type"] == "state")
    assert unit_of(state, scene.unit_a)["status"] == "dropped"
    assert unit_of(state, scene.unit_a)["dropouts"] == 1


async def test_room_metrics_appear_and_disappear_with_the_room(scene: Scene) -> None:
    world = scene.world
    room = f'room="{scene.occurrence}"'

    async def metrics() -> str:
        return str(await (await world.client.get("/metrics")).text())

    assert room not in await metrics()
    a = await scene.join(scene.a, amplitude=0.3)
    chair = await scene.join(scene.chair, audio_slots=1)
    assert await wait_for(lambda: chair.client.frames("audio") > 10, 15)

    async def forwarded() -> bool:
        text = await metrics()
        lines = [line for line in text.splitlines() if room in line]
        values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in lines}
        return (
            values.get("giaoban_room_participants") == 2
            and values.get("giaoban_room_forwarded_packets_total", 0) > 10
            and values.get("giaoban_room_sent_bytes_total", 0) > 1000
            and values.get("giaoban_room_received_packets_total", 0) > 10
        )

    assert await eventually(forwarded, 15)
    await a.close()
    await chair.close()
    assert await wait_for(lambda: not world.app[keys.MEDIA].sfus, 10)
    assert room not in await metrics()


async def progress(world: World, occurrence: int) -> dict[int, dict[str, Any]]:
    async with world.db() as db:
        rows = await db.scalars(
            select(ConnectionProgress).where(ConnectionProgress.occurrence_id == occurrence)
        )
        return {r.unit_id: r.measured for r in rows}


async def records(world: World, occurrence: int) -> dict[int, ConnectionRecord]:
    async with world.db() as db:
        rows = await db.scalars(select(ConnectionRecord).where(ConnectionRecord.occurrence_id == occurrence))
        return {r.unit_id: r for r in rows}


async def test_records_for_every_invited_unit_when_the_meeting_ends(scene: Scene) -> None:
    world = scene.world
    await scene.join(scene.a, amplitude=0.3)
    await scene.join(scene.d, {"audioOnly": True}, amplitude=0.3)
    chair = await scene.join(scene.chair)

    async def running() -> bool:  # saved while the meeting goes on; no record before its end
        found = await progress(world, scene.occurrence)
        a = found.get(scene.unit_a.id)
        return a is not None and a["connected_s"] >= 1 and not await records(world, scene.occurrence)

    assert await eventually(running, 15)
    await chair.send(type="moderate", action="end")

    async def final() -> bool:
        found = await records(world, scene.occurrence)
        return len(found) == 4 and not await progress(world, scene.occurrence)

    assert await eventually(final, 15)
    found = await records(world, scene.occurrence)
    invited = {scene.unit_a.id, scene.unit_b.id, scene.unit_c.id, scene.unit_d.id}
    assert set(found) == invited  # not the chair's department
    a, b, c, d = (found[u.id] for u in (scene.unit_a, scene.unit_b, scene.unit_c, scene.unit_d))
    assert (a.outcome, b.outcome, c.outcome, d.outcome) == (
        ConnectionOutcome.GOOD,
        ConnectionOutcome.FAILED,
        ConnectionOutcome.EXCUSED,
        ConnectionOutcome.WEAK,  # on audio only the whole time
    )
    assert d.audio_only_s == d.weak_s == d.connected_s >= 1
    assert a.join_delay_s == 0  # joined before the start
    assert a.connected_s >= 1 and a.dropouts == 0 and a.audio_only_s == 0
    assert a.max_loss_pct is not None and a.meeting_start is not None
    assert (b.join_delay_s, b.connected_s, c.details["excused"]) == (None, 0, True)
    # Written once: a later finalisation (another node's catch-up) leaves the records as they are.
    before = {u: (r.outcome, r.connected_s, r.updated_at) for u, r in found.items()}
    async with world.db() as db:
        assert await mon.finalise(db, scene.occurrence, MonitorRules(), datetime.now(UTC)) == 0
        await db.commit()
    after = await records(world, scene.occurrence)
    assert {u: (r.outcome, r.connected_s, r.updated_at) for u, r in after.items()} == before
    # The monitoring page, once the meeting is over, shows who took part.
    await world.login("support@hue.example")
    api = await (await world.client.get(f"/api/occurrences/{scene.occurrence}/monitor")).json()
    assert [(u["unit_id"], u["status"]) for u in api["units"]] == [
        (scene.unit_a.id, "attended"),
        (scene.unit_b.id, "absent"),
        (scene.unit_c.id, "excused"),
        (scene.unit_d.id, "attended"),
    ]


async def test_a_restart_keeps_what_was_measured(scene: Scene) -> None:
    """The running measure saved, the node gone; the next monitor goes on from it, and the
    catch-up writes the records of a meeting no node finished."""
    world, rules = scene.world, MonitorRules(sample_seconds=5)
    async with world.db() as db:
        first = await mon.load_monitor(db, scene.occurrence, rules)
    start = first.start
    sample = LinkSample("p1", scene.a.id, scene.unit_a.id, "An", 800_000, 300_000, 1.0, 50.0)
    for t in range(0, 65, 5):
        first.observe([sample], start + timedelta(seconds=t))
    async with world.db() as db:
        assert await mon.save_progress(db, first) == 4
        await db.commit()
    # The node restarts: a new monitor reads the running records back and goes on.
    async with world.db() as db:
        second = await mon.load_monitor(db, scene.occurrence, rules)
    assert second.tracks[scene.unit_a.id].connected_s == 60
    assert second.excused == {scene.unit_c.id}
    for t in range(0, 35, 5):
        second.observe([dataclasses.replace(sample, participant="p2")], start + timedelta(seconds=120 + t))
    async with world.db() as db:
        await mon.save_progress(db, second)
        await db.commit()
    assert (await progress(world, scene.occurrence))[scene.unit_a.id]["connected_s"] == 90
    assert await records(world, scene.occurrence) == {}
    # Nobody finished it: once it is past its end and the grace period, the catch-up does.
    late = datetime.now(UTC) + timedelta(hours=3)
    async with world.db() as db:
        assert await mon.due_for_final(db, late, timedelta(minutes=30), timedelta(days=2)) == [
            scene.occurrence
        ]
        assert await mon.due_for_final(db, datetime.now(UTC), timedelta(minutes=30), timedelta(days=2)) == []
        assert await mon.finalise(db, scene.occurrence, rules, late) == 4
        await db.commit()
    found = await records(world, scene.occurrence)
    assert found[scene.unit_a.id].connected_s == 90 and await progress(world, scene.occurrence) == {}
    assert found[scene.unit_a.id].outcome is ConnectionOutcome.GOOD
    assert found[scene.unit_b.id].outcome is ConnectionOutcome.FAILED
    async with world.db() as db:
        assert await mon.due_for_final(db, late, timedelta(minutes=30), timedelta(days=2)) == []


async def test_records_are_final_once_the_rooms_time_is_over(scene: Scene) -> None:
    """No chair ended it: past its end and the grace period the room is over, and so are the records."""
    world = scene.world
    await scene.join(scene.a, amplitude=0.3)
    tracker = world.app[keys.MONITOR]
    room = world.app[keys.MEDIA].registry.get(scene.occurrence)
    assert await wait_for(lambda: scene.occurrence in tracker.monitors, 10)
    await tracker.tick(room.closes_at + timedelta(seconds=1))
    found = await records(world, scene.occurrence)
    assert {u: r.outcome for u, r in found.items()} == {
        scene.unit_a.id: ConnectionOutcome.GOOD,
        scene.unit_b.id: ConnectionOutcome.FAILED,
        scene.unit_c.id: ConnectionOutcome.EXCUSED,
        scene.unit_d.id: ConnectionOutcome.FAILED,
    }
    assert await progress(world, scene.occurrence) == {}
    assert found[scene.unit_a.id].dropouts == 0  # the end is no drop-out


# --- who may watch ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", *(r.value for r in Role)])
async def test_the_monitoring_socket_as(world: World, scene: Scene, who: str) -> None:
    if who != "anonymous":
        email = f"{who}@hue.example"
        if who not in {"chair", "support"}:  # the scene made these two
            await world.person(email, Role(who), scene.dept)
        await world.login(email)
    if who in READERS:
        ws = await scene.watch()
        state = await next_message(ws, lambda m: m["type"] == "state")
        assert state["occurrence"] == scene.occurrence
    else:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await scene.watch()
        if who == "anonymous":  # sent to the sign-in page
            assert refused.value.request_info.url.path == "/login"
        else:
            assert refused.value.status == 403


async def test_the_monitoring_socket_refuses_another_origin(world: World, scene: Scene) -> None:
    await world.login("support@hue.example")
    url = world.client.make_url(f"/meetings/occurrences/{scene.occurrence}/monitor/ws")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await world.client.session.ws_connect(url, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    missing = world.client.make_url("/meetings/occurrences/999999/monitor/ws")
    with pytest.raises(aiohttp.WSServerHandshakeError) as not_found:
        origin = str(world.client.make_url("/")).rstrip("/")
        await world.client.session.ws_connect(missing, headers={"Origin": origin})
    assert not_found.value.status == 404


async def test_whatever_the_page_sends_is_ignored(world: World, scene: Scene, caplog: Any) -> None:
    await world.login("support@hue.example")
    ws = await scene.watch()
    await next_message(ws, lambda m: m["type"] == "state")
    for frame in ("not json", json.dumps({"type": "stats", "rttMs": 1e308}), "[]" * 1000):
        await ws.send_str(frame)
    await ws.send_bytes(b"\x00\xff")
    await scene.join(scene.a, amplitude=0.3)
    state = await next_message(
        ws, lambda m: m["type"] == "state" and unit_of(m, scene.unit_a)["participants"]
    )
    assert unit_of(state, scene.unit_a)["status"] == "connected"
    assert not [r for r in caplog.records if r.levelname in {"ERROR", "CRITICAL"}]


async def test_the_occurrence_page_links_the_monitoring_for_those_who_may_see_it(
    world: World, scene: Scene
) -> None:
    link = f"/meetings/occurrences/{scene.occurrence}/monitor"
    await world.login("chair@hue.example")
    assert link in await (await world.client.get(f"/meetings/occurrences/{scene.occurrence}")).text()
    await world.logout()
    await world.login("a@hue.example")
    assert link not in await (await world.client.get(f"/meetings/occurrences/{scene.occurrence}")).text()


async def test_support_staff_go_back_to_the_home_page_and_the_board_not_to_the_meetings_page(
    world: World, scene: Scene
) -> None:
    """Support staff do not read a meeting's page (its invitees' and organisers'): the monitoring
    leads them back to their home page and to the meeting's readiness board."""
    await world.login("support@hue.example")
    page = await (await world.client.get(f"/meetings/occurrences/{scene.occurrence}/monitor")).text()
    assert f'href="/meetings/occurrences/{scene.occurrence}"' not in page
    assert f"/meetings/occurrences/{scene.occurrence}/readiness" in page
    assert (await world.client.get(f"/meetings/occurrences/{scene.occurrence}")).status == 403
