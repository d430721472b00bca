"""A meeting whose room is open, with invitees, a chair and an outsider, for the signaling tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from meetings.directory.models import Person, Role, UnitKind
from meetings.schedule.links import JoinLink, make_join_token
from meetings.schedule.models import Series
from tests.conftest import World
from tests.rtc.clients import wait_for
from tests.signaling.peers import Peer
from web import keys

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass
class Meeting:
    """An ad hoc meeting starting in five minutes (its room is open) and who is in it."""

    occurrence: int
    series: Series
    token_a: str  # A's link from the invitation
    a: Person  # invitee (centre)
    b: Person  # invitee (centre)
    chair: Person
    outsider: Person  # not invited: waits in the lobby
    token: Callable[[Person], str]  # a signed join link for anyone
    peers: list[Peer] = field(default_factory=list)

    def peer(self, peer: Peer) -> Peer:
        """Track a peer so that the fixture closes it."""
        self.peers.append(peer)
        return peer


@pytest.fixture
async def meeting(world: World) -> AsyncIterator[Meeting]:
    """An ad hoc meeting starting in five minutes: its room is open."""
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    a = await world.person("a@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An")
    b = await world.person("b@hue.example", Role.MEMBER, centre, name="Trần Thị Bình")
    chair = await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    other = await world.unit("P-OTHER", UnitKind.CENTRE, "Phường Khác")
    outsider = await world.person("x@hue.example", Role.MEMBER, other, name="Khách")
    now = datetime.now(UTC)
    series, occ = await world.open_meeting(["P-PHONGDIEN"], chair_email="chair@hue.example")
    token = make_join_token(
        world.settings.secret_key, JoinLink(a.id, series.id, None, now + timedelta(days=1))
    )

    def token_for(person: Person) -> str:
        link = JoinLink(person.id, series.id, None, now + timedelta(days=1))
        return make_join_token(world.settings.secret_key, link)

    found = Meeting(occ.id, series, token, a, b, chair, outsider, token_for)
    yield found
    for peer in found.peers:
        await peer.close()
    # The server finishes each connection (SFU leave, attendance) before the app stops.
    assert await wait_for(lambda: not world.app[keys.MEDIA].sfus, 10)
