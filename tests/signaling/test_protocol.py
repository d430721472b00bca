"""The signaling protocol's parser refuses everything malformed with a clear reason and code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from meetings.live import protocol as s
from meetings.live.messages import Error, Speaking
from meetings.rtc.ice import ice_servers, turn_credentials
from meetings.wire import encode


def test_valid_messages_parse_to_typed_values() -> None:
    assert s.parse('{"type":"join","occurrence":7,"audio":false,"video":true}') == s.Join(
        7, "", False, True, False
    )
    assert s.parse('{"type":"offer","sdp":"v=0\\r\\no=- 1 1 IN IP4 0.0.0.0"}') == s.Sdp(
        "offer", "v=0\r\no=- 1 1 IN IP4 0.0.0.0"
    )
    assert s.parse('{"type":"mute","audio":true,"video":false}') == s.Mute(True, False)
    assert s.parse('{"type":"hand","raised":true}') == s.Hand(True)
    assert s.parse('{"type":"chat","text":"  Xin chào  "}') == s.Chat("Xin chào")
    assert s.parse('{"type":"moderate","action":"mute_all"}') == s.Moderate("mute_all", None)
    assert s.parse('{"type":"moderate","action":"remove","target":"p2"}') == s.Moderate("remove", "p2")
    assert s.parse('{"type":"candidate","candidate":null}') == s.Candidate(None, None, None)
    assert s.parse('{"type":"stats","rttMs":120,"lossPct":2.5,"bitrateKbps":300}') == s.Stats(
        120.0, 2.5, 300.0
    )
    assert isinstance(s.parse('{"type":"ping"}'), s.Ping)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "JSON object"),
        ('{"kind":"join"}', "JSON object"),
        ('{"type":"fly"}', "unknown message type"),
        ('{"type":"join","occurrence":"7"}', "occurrence"),
        ('{"type":"join","occurrence":true}', "occurrence"),
        ('{"type":"join","occurrence":-1}', "occurrence"),
        ('{"type":"join","occurrence":1,"audio":"yes"}', "audio"),
        ('{"type":"offer","sdp":"hello"}', "session description"),
        ('{"type":"offer","sdp":5}', "sdp"),
        ('{"type":"mute","audio":true}', "video"),
        ('{"type":"chat","text":"   "}', "empty"),
        ('{"type":"chat","text":"' + "x" * 2001 + '"}', "longer"),
        ('{"type":"moderate","action":"explode"}', "unknown moderator action"),
        ('{"type":"moderate","action":"remove"}', "target"),
        ('{"type":"stats","rttMs":-1,"lossPct":0,"bitrateKbps":0}', "rttMs"),
        ('{"type":"candidate","sdpMLineIndex":true}', "sdpMLineIndex"),
    ],
)
def test_malformed_messages_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(s.ProtocolError, match=reason):
        s.parse(raw)


def test_oversized_and_binary_frames_close_the_connection() -> None:
    with pytest.raises(s.ProtocolError) as big:
        s.parse('{"type":"chat","text":"' + "x" * s.MAX_MESSAGE_BYTES + '"}')
    assert big.value.close == s.CloseCode.BAD_MESSAGE
    with pytest.raises(s.ProtocolError) as binary:
        s.parse(b"\x00\x01")
    assert binary.value.close == s.CloseCode.BAD_MESSAGE


def test_server_messages_are_deterministic() -> None:
    assert encode(Speaking("p1", 3)) == '{"participant":"p1","person_id":3,"type":"speaking"}'
    assert json.loads(encode(Error("forbidden", "Bạn không có quyền"))) == {
        "type": "error",
        "code": "forbidden",
        "message": "Bạn không có quyền",
    }


def test_turn_credentials_follow_the_coturn_rest_scheme() -> None:
    now = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    username, credential = turn_credentials("s3cret", "person-7", now, 3600)
    assert username == f"{int(now.timestamp()) + 3600}:person-7"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected
    servers = ice_servers(
        stun_urls="stun:stun.hue.example:3478",
        turn_urls="turns:turn.hue.example:443?transport=tcp",
        turn_secret="s3cret",
        user="person-7",
        now=now,
        ttl_seconds=3600,
    )
    assert servers[0] == {"urls": ["stun:stun.hue.example:3478"]}
    assert servers[1]["username"] == username and servers[1]["urls"] == [
        "turns:turn.hue.example:443?transport=tcp"
    ]
    assert (
        ice_servers(stun_urls="", turn_urls="turn:x", turn_secret="", user="u", now=now, ttl_seconds=1) == []
    )


def test_offer_sources_are_checked() -> None:
    ok = s.parse('{"type":"offer","sdp":"v=0","sources":{"1":"camera","2":"screen"}}')
    assert isinstance(ok, s.Sdp) and ok.sources == (("1", "camera"), ("2", "screen"))
    with pytest.raises(s.ProtocolError, match="sources"):
        s.parse('{"type":"offer","sdp":"v=0","sources":{"1":"hologram"}}')
    with pytest.raises(s.ProtocolError, match="sources"):
        s.parse('{"type":"offer","sdp":"v=0","sources":["camera"]}')


def test_join_may_carry_the_first_offer_and_an_offer_may_restart() -> None:
    join = s.parse(
        '{"type":"join","occurrence":7,"audio":true,"video":true,'
        '"offer":{"sdp":"v=0\\r\\n","sources":{"0":"microphone","1":"camera"}}}'
    )
    assert isinstance(join, s.Join) and join.offer == s.Sdp(
        "offer", "v=0\r\n", (("0", "microphone"), ("1", "camera"))
    )
    assert s.parse('{"type":"offer","sdp":"v=0\\r\\n","restart":true}') == s.Sdp(
        "offer", "v=0\r\n", restart=True
    )
    for bad in (
        '{"type":"join","occurrence":7,"offer":"v=0"}',
        '{"type":"join","occurrence":7,"offer":{"sdp":"hello"}}',
        '{"type":"join","occurrence":7,"offer":{"sdp":"v=0","sources":{"0":"drone"}}}',
        '{"type":"offer","sdp":"v=0","restart":"yes"}',
    ):
        with pytest.raises(s.ProtocolError):
            s.parse(bad)
