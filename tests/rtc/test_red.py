"""RED (RFC 2198) payloads: parsing, the primary block, and malformed input (meetings/rtc/red.py)."""

from __future__ import annotations

import random

import pytest

from meetings.rtc import red
from meetings.rtc.red import MalformedRed, RedBlock

OPUS = 111


def test_chromium_style_payload_round_trips() -> None:
    """Two blocks as Chromium sends them: the previous frame (960 ticks older), then the primary."""
    older, newer = b"\x78" + bytes(40), b"\x78" + bytes(60)
    payload = red.build([RedBlock(OPUS, 960, older), RedBlock(OPUS, 0, newer)])
    # F=1|PT, 14-bit offset and 10-bit length in three bytes, then F=0|PT, then the data.
    assert payload[:5] == bytes([0x80 | OPUS, 0x0F, 0x00, 41, OPUS])  # 960 << 10 | 41
    assert red.parse(payload) == [RedBlock(OPUS, 960, older), RedBlock(OPUS, 0, newer)]
    assert red.primary(payload) == RedBlock(OPUS, 0, newer)


def test_primary_only_and_several_redundant_blocks() -> None:
    assert red.parse(bytes([OPUS]) + b"abc") == [RedBlock(OPUS, 0, b"abc")]
    blocks = [RedBlock(OPUS, 1920, b"a" * 1023), RedBlock(OPUS, 960, b""), RedBlock(OPUS, 0, b"zz")]
    assert red.parse(red.build(blocks)) == blocks
    assert red.primary(red.build(blocks)).data == b"zz"
    # A primary of zero bytes parses (the SFU has nothing to send to a receiver without RED).
    assert red.primary(red.build([RedBlock(OPUS, 960, b"x"), RedBlock(OPUS, 0, b"")])).data == b""


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "truncated header"),
        (bytes([0x80 | OPUS]), "truncated header"),  # a redundant header needs 4 bytes
        (bytes([0x80 | OPUS, 0, 0]), "truncated header"),
        (bytes([0x80 | OPUS, 0, 0x3C, 0x05]), "truncated header"),  # no primary header after it
        (bytes([0x80 | OPUS, 0, 0x3C, 0x05, OPUS, 1, 2]), "block longer than payload"),  # says 5, has 2
        (bytes([0x80 | OPUS, 0, 0x03, 0xFF, OPUS]) + bytes(100), "block longer than payload"),
    ],
)
def test_malformed_payloads_raise_only_malformed_red_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedRed) as raised:
        red.parse(payload)
    assert raised.value.reason == reason
    with pytest.raises(MalformedRed):
        red.primary(payload)


def test_random_bytes_never_raise_anything_else() -> None:
    rng = random.Random(2198)
    for _ in range(3000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        try:
            blocks = red.parse(payload)
        except MalformedRed:
            continue
        assert red.primary(payload) == blocks[-1]
        assert sum(len(b.data) for b in blocks) <= len(payload)


def test_build_refuses_what_rfc_2198_cannot_carry() -> None:
    with pytest.raises(ValueError):
        red.build([])
    with pytest.raises(ValueError):
        red.build([RedBlock(OPUS, 1 << 14, b"x"), RedBlock(OPUS, 0, b"y")])
    with pytest.raises(ValueError):
        red.build([RedBlock(OPUS, 960, bytes(1024)), RedBlock(OPUS, 0, b"y")])


def test_a_receiver_on_a_tight_budget_gets_red_as_plain_opus() -> None:
    from types import SimpleNamespace
    from typing import Any

    from meetings.rtc.sfu import red_receivers

    def sink(types: dict[str, int]) -> Any:
        return SimpleNamespace(target=SimpleNamespace(payload_types=types), downlink=object())

    with_red, tight, without = (
        sink({"RED": 63, "OPUS": 111}),
        sink({"RED": 63, "OPUS": 111}),
        sink({"OPUS": 111}),
    )
    whole, plain = red_receivers([with_red, tight, without], 111)
    assert (whole, plain) == ([with_red, tight], [without])
    whole, plain = red_receivers([with_red, tight, without], 111, {tight.downlink})
    assert (whole, plain) == ([with_red], [tight, without]), "a lean receiver gets the primary only"
    assert red_receivers([with_red], 109) == ([], [with_red]), "Opus on another payload type: stripped"


def test_audio_goes_lean_when_redundancy_leaves_too_little_room_for_video() -> None:
    from typing import Any

    from meetings.rtc.forwarder import DownlinkQueue
    from meetings.rtc.sfu import LEAN_ROOM, Sfu, _Participant

    sfu = Sfu()
    pc: Any = None
    entry = _Participant("weak", pc, DownlinkQueue(lambda header, payload: None))
    audio = 150_000  # three voices with RED
    assert not sfu._lean(entry, 2_000_000, audio)
    assert sfu._lean(entry, audio + LEAN_ROOM - 1, audio)
    assert entry.downlink in sfu._lean_audio
    assert sfu._lean(entry, audio + LEAN_ROOM + 10_000, audio), "hysteresis: not back at once"
    assert not sfu._lean(entry, audio + 2 * LEAN_ROOM, audio)
    assert entry.downlink not in sfu._lean_audio
    # A receiver losing 15 %: that is the line's loss, which RED is for; it keeps RED.
    entry.estimator.on_receiver_report(0.0, "video", 38)
    assert not sfu._lean(entry, audio + LEAN_ROOM - 1, audio)
    # And keeps it while the reports since say nothing lost: a low-rate video stream's second
    # often loses none of its few packets, and audio is reported only every 5 s.
    for second in range(1, 12):
        entry.estimator.on_receiver_report(float(second), "video", 0)
        assert not sfu._lean(entry, audio + LEAN_ROOM - 1, audio), second
    entry.estimator.on_receiver_report(13.0, "video", 0)  # no loss reported for 13 s: a narrow link
    assert sfu._lean(entry, audio + LEAN_ROOM - 1, audio)
