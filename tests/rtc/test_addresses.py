"""Which addresses the media server gathers on and announces (media_addresses, media_announced_address)."""

from __future__ import annotations

import pytest

from meetings.rtc.sfu import Sfu, SfuConfig, announce_address
from meetings.settings import SettingsError, load_settings, media_addresses
from tests.rtc.clients import Client, wait_for


def host_candidates(sdp: str) -> list[str]:
    """The addresses of the host candidates of an SDP."""
    found = []
    for line in sdp.splitlines():
        parts = line.split()
        if line.startswith("a=candidate:") and parts[6:8] == ["typ", "host"]:
            found.append(parts[4])
    return found


async def test_the_server_gathers_on_its_media_addresses_only_and_media_flows() -> None:
    # 127.0.0.2 is on Linux's loopback but no interface lists it: aioice would never pick it.
    sfu = Sfu(SfuConfig(media_addresses=("127.0.0.2",)))
    a = Client("a", amplitude=0.3, audio_slots=1, video_slots=0)
    b = Client("b", amplitude=0.3, audio_slots=1, video_slots=0)
    try:
        await a.connect(sfu)
        await b.connect(sfu)
        answer = a.pc.remoteDescription.sdp
        assert set(host_candidates(answer)) == {"127.0.0.2"} and "c=IN IP4 127.0.0.2" in answer
        assert set(host_candidates(a.pc.localDescription.sdp)) == {"127.0.0.1"}  # the test client's
        assert await wait_for(lambda: a.frames("audio") > 10 and b.frames("audio") > 10, 15)
    finally:
        for client in (a, b):
            await client.close()
        await sfu.close()


async def test_an_announced_address_replaces_the_host_candidates() -> None:
    sfu = Sfu(SfuConfig(media_addresses=("127.0.0.1",), announced_address="203.0.113.7"))
    a = Client("a", amplitude=0.3, audio_slots=1, video_slots=1)
    try:
        await a.offer()
        answer = await sfu.join("a", a.pc.localDescription.sdp, a.sources_by_mid())
        assert set(host_candidates(answer)) == {"203.0.113.7"}
        assert "127.0.0.1" not in answer
        assert answer.count("c=IN IP4 203.0.113.7") == len(a.pc.getTransceivers())
    finally:
        await a.close()
        await sfu.close()


def test_announce_address_rewrites_host_candidates_and_their_connection_lines() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "o=- 1 1 IN IP4 0.0.0.0",
            "m=audio 40000 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 10.0.0.5",
            "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host",
            "a=candidate:2 1 udp 1694498815 198.51.100.2 40000 typ srflx raddr 10.0.0.5 rport 40000",
            "a=end-of-candidates",
            "",
        ]
    )
    out = announce_address(sdp, "203.0.113.7").split("\r\n")
    assert out[3] == "c=IN IP4 203.0.113.7"
    assert out[4] == "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"
    assert out[5] == "a=candidate:2 1 udp 1694498815 198.51.100.2 40000 typ srflx raddr 10.0.0.5 rport 40000"
    assert out[1] == "o=- 1 1 IN IP4 0.0.0.0"
    assert announce_address(sdp, "2001:db8::7").split("\r\n")[3] == "c=IN IP6 2001:db8::7"


def test_media_address_settings() -> None:
    assert media_addresses(load_settings(environ={})) == ("127.0.0.1",)  # the demo's: nothing leaves
    assert media_addresses(load_settings(environ={}, media_addresses=" 10.0.0.5, ::1 ")) == (
        "10.0.0.5",
        "::1",
    )
    assert media_addresses(load_settings(environ={}, media_addresses="*")) is None
    for bad in ("", "eth0", "10.0.0.5,*", "10.0.0.300"):
        with pytest.raises(SettingsError, match="media_addresses"):
            load_settings(environ={}, media_addresses=bad)
    with pytest.raises(SettingsError, match="media_announced_address"):
        load_settings(environ={}, media_announced_address="giaoban.hue.gov.vn")
