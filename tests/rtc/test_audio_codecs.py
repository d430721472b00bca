"""The SFU's answer for audio: Opus FEC and DTX asked for, RED only where offered and well formed."""

from __future__ import annotations

import logging
import random

import pytest
from aiortc import RTCRtpCodecParameters

from meetings.rtc import audio_codecs
from meetings.rtc.audio_codecs import RedOffer
from meetings.rtc.sfu import Sfu, SfuConfig
from tests.rtc.clients import RED_PT, Client, offer_red

CHROMIUM_AUDIO = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "a=mid:0\r\na=sendonly\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n"
)


def test_chromiums_red_offer_is_recognised() -> None:
    assert audio_codecs.offered_red(CHROMIUM_AUDIO) == {"0": RedOffer(63, 111, "111/111")}
    three = CHROMIUM_AUDIO.replace("a=fmtp:63 111/111", "a=fmtp:63 111/111/111")
    assert audio_codecs.offered_red(three) == {"0": RedOffer(63, 111, "111/111/111")}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("a=fmtp:63 111/111\r\n", ""),  # no fmtp: what the blocks carry is unknown
        ("a=fmtp:63 111/111", "a=fmtp:63 111/9"),  # mixed encodings
        ("a=fmtp:63 111/111", "a=fmtp:63 9/9"),  # G.722, not Opus
        ("a=fmtp:63 111/111", "a=fmtp:63 112/112"),  # no such payload type in the section
        ("a=fmtp:63 111/111", "a=fmtp:63 abc"),
        ("a=fmtp:63 111/111", "a=fmtp:63 111/111;x=1"),
        ("a=fmtp:63 111/111", "a=fmtp:63 " + "/".join(["111"] * 9)),  # more blocks than we take
        ("a=fmtp:63 111/111", "a=fmtp:63 "),
        ("SAVPF 111 63 9", "SAVPF 111 9"),  # RED mapped but not in the m-line
        ("a=rtpmap:63 red/48000/2", "a=rtpmap:63 red/8000"),  # not the 48 kHz RED
    ],
)
def test_a_bad_red_offer_is_ignored_with_a_logged_reason(
    before: str, after: str, caplog: pytest.LogCaptureFixture
) -> None:
    sdp = CHROMIUM_AUDIO.replace(before, after)
    assert sdp != CHROMIUM_AUDIO
    with caplog.at_level(logging.INFO, logger="meetings.rtc.audio_codecs"):
        assert audio_codecs.offered_red(sdp) == {}
    if "red/48000" in sdp and " 63 " in sdp.split("\r\n")[4]:
        assert "RED offered on mid '0' ignored" in caplog.text


def test_answer_codecs_add_fec_dtx_and_put_red_first() -> None:
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
    answered = audio_codecs.answer_codecs([opus, pcmu], RedOffer(63, 111, "111/111"))
    assert [(c.mimeType, c.payloadType) for c in answered] == [
        ("audio/red", 63),
        ("audio/opus", 111),
        ("audio/PCMU", 0),
    ]
    assert answered[0].parameters == {"111/111": None}
    assert answered[1].parameters == {"useinbandfec": 1, "usedtx": 1}
    assert opus.parameters == {}  # aiortc's own list is not changed
    # RED whose primary is not the Opus negotiated here is not answered; FEC/DTX can be turned off.
    assert [c.mimeType for c in audio_codecs.answer_codecs([opus], RedOffer(63, 96, "96/96"))] == [
        "audio/opus"
    ]
    assert audio_codecs.answer_codecs([opus], None, fec=False, dtx=False)[0].parameters == {}


def _audio_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith(("a=rtpmap:", "a=fmtp:", "m=audio"))]


async def test_the_answer_asks_opus_publishers_for_fec_and_dtx() -> None:
    sfu = Sfu()
    client = Client("a", amplitude=0.1, audio_slots=1, video_slots=0)
    try:
        await client.offer()
        answer = await sfu.join("a", client.local_offer().sdp)
        lines = _audio_lines(answer)
        assert lines.count("a=fmtp:96 useinbandfec=1;usedtx=1") == 2  # the microphone and the slot
        assert not any("red/" in line for line in lines)  # not offered, not answered
    finally:
        await client.close()
        await sfu.close()


async def test_red_is_answered_only_when_offered_and_well_formed() -> None:
    sfu = Sfu()
    offered = Client("a", amplitude=0.1, audio_slots=1, video_slots=0, red=True)
    bad = Client("b", amplitude=0.1, audio_slots=1, video_slots=0)
    try:
        await offered.offer()
        answer = await sfu.join("a", offered.local_offer().sdp)
        for section in answer.split("m=audio ")[1:]:
            assert f" UDP/TLS/RTP/SAVPF {RED_PT} 96 " in section.split("\r\n")[0]  # RED first
            assert f"a=rtpmap:{RED_PT} red/48000/2\r\na=fmtp:{RED_PT} 96/96\r\n" in section
        await bad.offer()
        malformed = offer_red(bad.pc.localDescription.sdp, fmtp="96/0")
        assert "red/" not in await sfu.join("b", malformed)
    finally:
        await offered.close()
        await bad.close()
        await sfu.close()
    # The switch in SfuConfig (for measurements): no RED, no FEC, no DTX, as aiortc answers alone.
    off = Sfu(SfuConfig(audio_red=False, opus_fec=False, opus_dtx=False))
    plain = Client("c", amplitude=0.1, audio_slots=1, video_slots=0, red=True)
    try:
        await plain.offer()
        answer = await off.join("c", plain.local_offer().sdp)
        assert "red/" not in answer and "a=fmtp:96" not in answer
    finally:
        await plain.close()
        await off.close()


def test_mangled_offers_never_raise() -> None:
    """Whatever aiortc lets through, reading RED from the offer never raises (a 4xx comes from
    aiortc's own parsing, never a 500 from ours)."""
    rng = random.Random(6716)
    pieces = [
        "63",
        "111",
        "²",
        "١١١",
        "/",
        " ",
        "\r\n",
        "a=rtpmap:",
        "a=fmtp:",
        "red/48000/2",
        "m=audio ",
        ":",
    ]
    for _ in range(2000):
        sdp = list(CHROMIUM_AUDIO)
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(sdp))
            if rng.random() < 0.5:
                del sdp[at : at + rng.randrange(1, 8)]
            else:
                sdp.insert(at, rng.choice(pieces))
        for offer in audio_codecs.offered_red("".join(sdp)).values():
            assert 0 <= offer.payload_type <= 127 and 0 <= offer.primary <= 127
    superscript = CHROMIUM_AUDIO.replace("a=rtpmap:63 red", "a=rtpmap:6³ red").replace("111 63 9", "111 6³ 9")
    assert audio_codecs.offered_red(superscript) == {}
    high = CHROMIUM_AUDIO.replace("63", "200")
    assert audio_codecs.offered_red(high) == {}
