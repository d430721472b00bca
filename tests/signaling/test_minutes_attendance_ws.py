"""The minutes' attendance follows the room live: real peers join, the editor sees them arrive.

Issue #13, item 3: people seated seconds after the chair were "absent" in the minutes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import World
from tests.minutes.test_web import Socket
from tests.rtc.clients import wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer

pytestmark = pytest.mark.slow


def centre(header: dict[str, Any]) -> dict[str, Any]:
    return next(u for u in header["attendance"] if u["unit_code"] == "P-PHONGDIEN")


async def test_the_editor_sees_people_seated_after_the_chair_and_the_final_attendance(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    chair = meeting.peer(Peer(world, name="chair"))
    await chair.connect(occ, token=meeting.token(meeting.chair), session=False)
    # The chair opens the minutes the room created and watches them live.
    await world.login(meeting.chair.email)
    state = await (await world.client.get(f"/api/occurrences/{occ}/minutes")).json()
    assert centre(state["header"])["absent"] == [meeting.a.name, meeting.b.name]
    origin = str(world.client.make_url("/")).rstrip("/")
    editor = Socket(
        await world.client.session.ws_connect(world.client.make_url(state["ws"]), headers={"Origin": origin})
    )
    try:
        assert await wait_for(lambda: bool(editor.state), 5)

        def last_centre() -> dict[str, Any] | None:
            headers = [p["header"] for p in editor.pushes if p["type"] == "header"]
            return centre(headers[-1]) if headers else None

        # A and B are seated seconds after the chair: present, pushed to the editor.
        for who in (meeting.a, meeting.b):
            peer = meeting.peer(Peer(world, name=who.email))
            await peer.connect(occ, token=meeting.token(who), session=False)
        assert await wait_for(
            lambda: (last_centre() or {}).get("present") == [meeting.a.name, meeting.b.name], 10
        )
        assert (last_centre() or {}).get("absent") == []

        await chair.send(type="moderate", action="end")
        assert await chair.closed() == 4100
        assert await wait_for(
            lambda: any(
                p["type"] == "header" and p["header"].get("attendance_final_at") for p in editor.pushes
            ),
            10,
        )
        final = next(p["header"] for p in reversed(editor.pushes) if p["header"].get("attendance_final_at"))
        assert centre(final)["present"] == [meeting.a.name, meeting.b.name] and centre(final)["absent"] == []
        # The minutes read after the end say the same.
        data = await (await world.client.get(f"/api/occurrences/{occ}/minutes")).json()
        assert centre(data["header"])["present"] == [meeting.a.name, meeting.b.name]
    finally:
        await editor.close()
