"""The room page: the personal join link opens it without a password; its texts come from the catalogs."""

from __future__ import annotations

import json
import re

from tests.conftest import World
from tests.signaling.conftest import Meeting


def embedded(body: str, element_id: str) -> dict[str, object]:
    """The JSON data block with this id."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', body, re.S)
    assert found, element_id
    data: dict[str, object] = json.loads(found.group(1))
    return data


async def test_the_join_link_opens_the_room_without_a_password(world: World, meeting: Meeting) -> None:
    join = await world.client.get(f"/join/{meeting.token_a}")
    body = await join.text()
    room_url = f"/rooms/{meeting.occurrence}?token={meeting.token_a}"
    assert f'href="{room_url}"' in body
    response = await world.client.get(room_url, headers={"Accept-Language": "vi"})
    assert response.status == 200
    page = await response.text()
    config = embedded(page, "room-config")
    assert config["occurrence"] == meeting.occurrence
    assert config["token"] == meeting.token_a
    assert config["name"] == "Nguyễn Văn An"
    assert config["unit"] == "Phường Phong Điền"
    assert config["mutedByDefault"] is True  # a centre
    assert embedded(page, "i18n")["raise_hand"] == "Giơ tay"
    assert "<script>" not in page  # the CSP allows no inline script: data blocks only


async def test_a_link_for_another_meeting_or_tampered_is_refused(world: World, meeting: Meeting) -> None:
    other = meeting.occurrence + 1000
    assert (await world.client.get(f"/rooms/{other}?token={meeting.token_a}")).status == 404
    tampered = meeting.token_a[:-2] + ("AA" if not meeting.token_a.endswith("AA") else "BB")
    assert (await world.client.get(f"/rooms/{meeting.occurrence}?token={tampered}")).status == 403
    anonymous = await world.client.get(f"/rooms/{meeting.occurrence}", allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/login")
