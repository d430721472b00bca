"""A malformed SDP offer gets an `error` and the socket stays open; a correct offer afterwards works."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer

pytestmark = pytest.mark.slow

HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
# Each made aiortc raise (ValueError, OperationError…), which closed the socket with 1000.
MALFORMED = (
    HEAD + "m=audio x UDP/TLS/RTP/SAVPF 111\r\n",  # a port that is not a number
    HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=rtpmap:111 opus/48000/2\r\n",  # no ICE credentials, no DTLS fingerprint
    HEAD + "a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
    "a=recvonly\r\na=rtpmap:96 NOPE/90000\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\na=rtcp-mux\r\n",  # no codec
)


async def nth_error(peer: Peer, n: int) -> dict[str, Any]:
    """The n-th `error` the peer got (waiting for it)."""
    assert await wait_for(lambda: len(peer.of_type("error")) >= n, 10), peer.events
    return peer.of_type("error")[n - 1]


async def pong(peer: Peer) -> bool:
    """The socket answers a ping: it is still open."""
    before = len(peer.of_type("pong"))
    await peer.send(type="ping")
    return await peer.event("pong", lambda _e: len(peer.of_type("pong")) > before)


async def test_a_malformed_offer_gets_an_error_and_a_correct_one_then_works(
    world: World, meeting: Meeting
) -> None:
    a = meeting.peer(Peer(world, Client("a", amplitude=0.5, audio_slots=1, video_slots=0)))
    assert (await a.connect(meeting.occurrence, token=meeting.token(meeting.a), session=False))[
        "placement"
    ] == "seated"
    for number, sdp in enumerate(MALFORMED, start=1):
        await a.send(type="offer", sdp=sdp, sources={})
        error = await nth_error(a, number)
        assert error["code"] == "bad_sdp" and error["message"], error
        assert await pong(a) and a.close_code is None
    # The correct offer afterwards: answered, and the media flows.
    await a.negotiate()
    assert await wait_for(lambda: a.connected_at is not None, 15)
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, audio_slots=1, video_slots=0)))
    await b.connect(meeting.occurrence, token=meeting.token(meeting.b), session=False)
    await b.negotiate()
    assert await wait_for(lambda: a.client.frames("audio") > 5 and b.client.frames("audio") > 5, 20)
    # A malformed renegotiation and a garbage candidate later do not end the call either.
    errors = len(a.of_type("error"))
    await a.send(type="offer", sdp=MALFORMED[0], sources={})
    await a.send(type="candidate", candidate="candidate:x", sdpMid="0", sdpMLineIndex=0)
    assert await a.event("error", lambda _e: len(a.of_type("error")) >= errors + 2)
    assert {e["code"] for e in a.of_type("error")[errors:]} == {"bad_sdp"}
    assert await pong(a) and a.close_code is None
    frames = a.client.frames("audio")
    assert await wait_for(lambda: a.client.frames("audio") > frames + 5, 10)
