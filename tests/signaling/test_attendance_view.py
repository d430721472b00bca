"""The per-unit attendance of a meeting, made by real peers and read as a page and as JSON."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from meetings.directory.models import Role
from meetings.rooms.models import Attendance
from meetings.schedule.models import Occurrence
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer, eventually

pytestmark = pytest.mark.slow


async def test_attendance_by_unit_as_a_page_and_as_json(world: World, meeting: Meeting) -> None:
    occ = meeting.occurrence
    chair = meeting.peer(Peer(world, name="chair"))
    await chair.connect(occ, token=meeting.token(meeting.chair), session=False)
    # A comes with media, reports its link, drops, comes back and leaves properly.
    a = meeting.peer(Peer(world, Client("a", amplitude=0.4, audio_slots=1, video_slots=0)))
    await a.connect(occ, token=meeting.token(meeting.a), session=False)
    await a.negotiate()
    assert await wait_for(lambda: a.client.pc.connectionState == "connected", 15)
    await a.send(type="stats", rttMs=35.0, lossPct=0.4, bitrateKbps=820.0)
    await a.drop()
    assert await chair.event("left", lambda e: e["person_id"] == meeting.a.id, 10)
    again = meeting.peer(Peer(world, name="a-again"))
    await again.connect(occ, token=meeting.token(meeting.a), session=False)
    await again.send(type="stats", rttMs=42.0, lossPct=1.5, bitrateKbps=640.0)
    await again.send(type="leave")
    assert await again.closed() == 1000
    # The outsider is let in from the lobby, late (moved back ten minutes past the start below).
    guest = meeting.peer(Peer(world, name="guest"))
    assert (await guest.connect(occ, token=meeting.token(meeting.outsider), session=False))["placement"] == (
        "lobby"
    )
    await chair.send(type="moderate", action="admit", target=str(meeting.outsider.id))
    assert await guest.event("room", within=5)

    async def settled() -> bool:
        async with world.db() as db:
            rows = {r.person_id: r for r in await db.scalars(select(Attendance))}
        a_row = rows.get(meeting.a.id)
        return len(rows) == 3 and a_row is not None and not a_row.connected and a_row.connections == 2

    assert await eventually(settled, 5)
    async with world.db() as db:
        occurrence = await db.get(Occurrence, occ)
        assert occurrence is not None
        start = occurrence.start
        late = await db.scalar(select(Attendance).where(Attendance.person_id == meeting.outsider.id))
        assert late is not None
        late.first_joined_at = late.last_joined_at = start + timedelta(minutes=10)
        await db.commit()

    # An invitee reads it.
    await world.login("a@hue.example")
    response = await world.client.get(f"/api/occurrences/{occ}/attendance")
    assert response.status == 200
    data = await response.json()
    assert data["occurrence"]["id"] == occ and data["occurrence"]["title"] == "Sự cố"
    assert data["totals"] == {"present": 2, "late": 1, "absent": 1}
    # Departments first, then centres by name; each person under the unit they were in.
    units = [(u["unit"]["code"], u) for u in data["units"]]
    assert [code for code, _ in units] == ["VP-UBND", "P-OTHER", "P-PHONGDIEN"]
    dept, other, centre = (u for _, u in units)
    assert [p["name"] for p in dept["present"]] == ["Phan Chủ Trì"]
    assert dept["present"][0]["connected"] is True
    assert [p["name"] for p in other["late"]] == ["Khách"] and not other["present"]
    assert [p["name"] for p in centre["absent"]] == ["Trần Thị Bình"]
    [an] = centre["present"]
    assert an["person_id"] == meeting.a.id and an["name"] == "Nguyễn Văn An"
    assert an["connections"] == 2 and an["connected"] is False
    assert (an["rtt_ms"], an["loss_pct"], an["bitrate_kbps"]) == (42.0, 1.5, 640.0)
    assert an["joined_at"].endswith("+00:00") and an["last_left_at"] is not None
    assert 0 <= an["seconds_present"] < 120

    page = await world.client.get(f"/meetings/occurrences/{occ}/attendance")
    assert page.status == 200
    html = await page.text()
    assert 'data-unit="P-PHONGDIEN"' in html and "Nguyễn Văn An" in html and "Trần Thị Bình" in html
    assert f'data-person="{meeting.a.id}"' in html and 'class="attendance-late"' in html
    assert "Điểm danh" in html  # Vietnamese by default
    # The meeting's page links to it.
    occurrence_page = await (await world.client.get(f"/meetings/occurrences/{occ}")).text()
    assert f"/meetings/occurrences/{occ}/attendance" in occurrence_page
    await world.logout()

    # Someone not invited to the series may not read it, though admitted from the lobby ...
    await world.login("x@hue.example")
    assert (await world.client.get(f"/api/occurrences/{occ}/attendance")).status == 403
    assert (await world.client.get(f"/meetings/occurrences/{occ}/attendance")).status == 403
    await world.logout()
    # ... and an organiser may read every meeting's.
    await world.person("sec@hue.example", Role.SECRETARY, name="Thư Ký")
    await world.login("sec@hue.example")
    assert (await world.client.get(f"/api/occurrences/{occ}/attendance")).status == 200
    assert (await world.client.get("/api/occurrences/999999/attendance")).status == 404
