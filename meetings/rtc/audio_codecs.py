"""What the SFU's answer asks of Opus senders: in-band FEC, DTX, and RED where offered.

aiortc answers Opus without any fmtp, so a browser publisher would send neither in-band FEC
(RFC 7587 ``useinbandfec``: each packet carries a low-rate copy of the previous frame) nor DTX
(``usedtx``: in silence, a packet every 400 ms instead of every 20 ms). ``answer_codecs`` gives
every audio m-section of the answer ``useinbandfec=1;usedtx=1``, and adds RED (RFC 2198,
``audio/red``, see ``meetings.rtc.red``) where the offer has it in the form Chromium offers:
``red/48000/2`` with fmtp ``P/P`` (``P`` an Opus payload type of the same m-section). aiortc
knows no RED, so it never answers it by itself; a malformed RED offer is ignored (logged),
the m-section goes on with plain Opus.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import RTCRtpCodecParameters

logger = logging.getLogger(__name__)

OPUS_FEC = {"useinbandfec": 1}
OPUS_DTX = {"usedtx": 1}
RED_CLOCK_RATE = 48000
MAX_RED_BLOCKS = 8  # primary + redundant encodings named in an fmtp we accept (Chromium: 2)
_PT = re.compile(r"[0-9]{1,3}")  # ASCII digits only: str.isdigit and \d take "²" and "١"
_FMTP = re.compile(rf"[0-9]{{1,3}}(?:/[0-9]{{1,3}}){{0,{MAX_RED_BLOCKS - 1}}}")


@dataclass(frozen=True)
class RedOffer:
    """An offered ``red/48000/2`` whose blocks are all the Opus payload type ``primary``."""

    payload_type: int
    primary: int
    fmtp: str  # as offered, e.g. "111/111"


def _sections(sdp: str) -> list[list[str]]:
    return [[line.strip() for line in section.splitlines()] for section in sdp.split("\nm=")[1:]]


def offered_red(sdp: str) -> dict[str, RedOffer]:
    """By mid, the audio m-sections of an offer with a RED encoding the SFU can take.

    Accepted: an ``a=rtpmap:R red/48000[/2]`` whose R is in the m-line's formats, with an
    ``a=fmtp:R P/P[/P…]`` (1 to ``MAX_RED_BLOCKS`` entries) where every P is the same payload
    type, one of the m-line's formats mapped to ``opus/48000/2``. Anything else is ignored, with
    the reason logged: that m-section is answered without RED.
    """
    result: dict[str, RedOffer] = {}
    for lines in _sections(sdp):
        m_line = lines[0].split(" ")
        if m_line[0] != "audio":
            continue
        formats = set(m_line[3:])
        mid = ""
        rtpmap: dict[str, str] = {}
        fmtp: dict[str, str] = {}
        for line in lines[1:]:
            if line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=rtpmap:") and " " in line:
                pt, encoding = line[9:].split(" ", 1)
                rtpmap[pt] = encoding.strip().lower()
            elif line.startswith("a=fmtp:") and " " in line:
                pt, value = line[7:].split(" ", 1)
                fmtp[pt] = value.strip()
        for pt, encoding in rtpmap.items():
            if encoding not in ("red/48000", "red/48000/2") or pt not in formats:
                continue
            red = _red_offer(pt, fmtp.get(pt), rtpmap, formats)
            if isinstance(red, str):
                logger.info("RED offered on mid %r ignored: %s", mid, red)
                continue
            result[mid] = red
            break
    return result


def _red_offer(pt: str, value: str | None, rtpmap: dict[str, str], formats: set[str]) -> RedOffer | str:
    """The RED encoding at ``pt``, or why it cannot be answered."""
    if _PT.fullmatch(pt) is None or int(pt) > 127:
        return f"payload type {pt!r}"
    if value is None:
        return "no fmtp (which encodings its blocks carry is unknown)"
    if _FMTP.fullmatch(value) is None:
        return f"fmtp {value[:40]!r} is not P/P"
    blocks = set(value.split("/"))
    if len(blocks) != 1:
        return f"fmtp {value!r} mixes encodings"
    [primary] = blocks
    if primary not in formats or rtpmap.get(primary) != "opus/48000/2" or int(primary) > 127:
        return f"fmtp {value!r} does not name an Opus payload type of this m-section"
    return RedOffer(int(pt), int(primary), value)


def answer_codecs(
    codecs: Sequence[RTCRtpCodecParameters],
    red: RedOffer | None,
    *,
    fec: bool = True,
    dtx: bool = True,
) -> list[RTCRtpCodecParameters]:
    """The audio codecs to answer with: Opus with FEC and DTX asked for, RED first if offered.

    ``codecs``: what aiortc negotiated for the m-section (not changed). RED goes first because
    Chromium sends RED only when the answer prefers it to Opus (measured with Chromium 156, see
    docs/media.md), and only when its fmtp names the Opus payload type negotiated here.
    """
    wanted = {**(OPUS_FEC if fec else {}), **(OPUS_DTX if dtx else {})}
    result: list[RTCRtpCodecParameters] = []
    opus_types: set[int] = set()
    for codec in codecs:
        codec = copy.deepcopy(codec)
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters = {**codec.parameters, **wanted}
            if codec.payloadType is not None:
                opus_types.add(codec.payloadType)
        result.append(codec)
    if red is not None and red.primary in opus_types:
        result.insert(
            0,
            RTCRtpCodecParameters(
                mimeType="audio/red",
                clockRate=RED_CLOCK_RATE,
                channels=2,
                payloadType=red.payload_type,
                parameters={red.fmtp: None},
            ),
        )
    return result
