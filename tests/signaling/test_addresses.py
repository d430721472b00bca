"""The app's media server gathers on the media_addresses setting (here 127.0.0.2) and media flows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from meetings.settings import Settings
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.rtc.test_addresses import host_candidates
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer
from web import keys
from web.app import create_app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, media_addresses="127.0.0.2")


async def test_the_media_server_uses_the_media_addresses_setting(world: World, meeting: Meeting) -> None:
    assert world.app[keys.MEDIA].config.media_addresses == ("127.0.0.2",)
    a = meeting.peer(Peer(world, Client("a", amplitude=0.3, audio_slots=1, video_slots=0)))
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, audio_slots=1, video_slots=0)))
    for peer, person in ((a, meeting.a), (b, meeting.b)):
        await peer.connect(meeting.occurrence, token=meeting.token(person), session=False)
        await peer.negotiate()
    assert set(host_candidates(a.client.pc.remoteDescription.sdp)) == {"127.0.0.2"}
    assert await wait_for(lambda: a.client.frames("audio") > 10 and b.client.frames("audio") > 10, 15)


async def test_pages_served_further_than_loopback_media_is_warned_about(
    settings: Settings, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await aiohttp_client(
        create_app(dataclasses.replace(settings, host="0.0.0.0", media_addresses="127.0.0.1"))
    )
    assert "only browsers on this machine can send media" in caplog.text
    caplog.clear()
    await aiohttp_client(
        create_app(dataclasses.replace(settings, host="0.0.0.0", media_addresses="127.0.0.2,10.9.8.7"))
    )
    assert "only browsers on this machine" not in caplog.text
