"""Simulcast in SDP: the ``a=rid`` (RFC 8851) and ``a=simulcast`` (RFC 8853) lines.

aiortc ignores both, so the SFU reads them from the browser's offer here and adds the matching
receive lines to aiortc's answer. A browser that offers ``a=simulcast:send q;h;f`` with
``a=rid:q send`` (…) gets ``a=rid:q recv`` (…) and ``a=simulcast:recv q;h;f`` back and then
sends each layer on its own SSRC, tagged with the rtp-stream-id header extension. Layer order
is the order of the rids in ``a=simulcast`` (lowest first, as browsers list them); names mean
nothing to the SFU.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

MAX_LAYERS = 3
_RID = re.compile(r"[A-Za-z0-9]{1,16}")


def _sections(sdp: str) -> list[list[str]]:
    """The SDP's lines split into the session part and one list per m-section."""
    parts: list[list[str]] = [[]]
    for line in sdp.split("\r\n") if "\r\n" in sdp else sdp.split("\n"):
        if line.startswith("m="):
            parts.append([])
        parts[-1].append(line)
    return parts


def _mid(section: list[str]) -> str | None:
    """The ``a=mid`` of one m-section, None if it has none."""
    return next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)


def offered_layers(sdp: str) -> dict[str, tuple[str, ...]]:
    """The simulcast layers (rids, lowest first) each video m-section of an offer sends, by mid.

    Only m-sections with ``a=simulcast:send`` are listed. A rid is kept if it is declared by an
    ``a=rid:<id> send`` line, has RFC 8851's syntax (alphanumeric, at most 16 characters; what
    browsers send) and is among the first ``MAX_LAYERS``; every other one is left out with a
    logged reason (the browser then does not send it). A paused rid (``~h``: its encoding is
    not active now) is a layer all the same: it arrives when the browser activates it.
    Alternatives (``a,b``) keep their first choice.
    """
    result: dict[str, tuple[str, ...]] = {}
    for section in _sections(sdp)[1:]:
        if not section[0].startswith("m=video"):
            continue
        mid = ""
        declared: set[str] = set()
        listed: list[str] = []
        has_simulcast = False
        for line in section:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith("a=rid:"):
                parts = line[6:].split()
                if len(parts) >= 2 and parts[1] == "send":
                    declared.add(parts[0])
            elif line.startswith("a=simulcast:"):
                parts = line[12:].split()
                if len(parts) >= 2 and parts[0] == "send":
                    has_simulcast = True
                    listed = [choice.split(",")[0] for choice in parts[1].split(";") if choice]
        if not has_simulcast:
            continue
        rids: list[str] = []
        for listed_rid in listed:
            # "~q": a layer the browser has paused (encoding not active, e.g. dynacast turned it
            # off before this renegotiation): still a layer, it comes back when set active.
            rid = listed_rid.removeprefix("~")
            if not _RID.fullmatch(rid):
                logger.info("simulcast layer %r of mid %s refused: not a valid rid", rid, mid)
            elif rid not in declared:
                logger.info("simulcast layer %r of mid %s refused: no a=rid send line", rid, mid)
            elif rid in rids:
                logger.info("simulcast layer %r of mid %s refused: listed twice", rid, mid)
            elif len(rids) >= MAX_LAYERS:
                logger.info("simulcast layer %r of mid %s refused: at most %d layers", rid, mid, MAX_LAYERS)
            else:
                rids.append(rid)
        for rid in sorted(declared - {choice.removeprefix("~") for choice in listed}):
            logger.info("rid %r of mid %s ignored: not in a=simulcast", rid, mid)
        if rids:
            result[mid] = tuple(rids)
    return result


def answer_layers(sdp: str, layers: dict[str, tuple[str, ...]]) -> str:
    """The answer with ``a=rid:<id> recv`` and ``a=simulcast:recv`` lines for each mid's layers.

    Any rid/simulcast lines already there are replaced (aiortc writes none).
    """
    if not layers:
        return sdp
    newline = "\r\n" if "\r\n" in sdp else "\n"
    out: list[str] = []
    for section in _sections(sdp):
        mid = _mid(section)
        rids = layers.get(mid) if mid is not None and section[0].startswith("m=video") else None
        if not rids:
            out.extend(section)
            continue
        kept = [line for line in section if not line.startswith(("a=rid:", "a=simulcast:"))]
        tail: list[str] = []
        while kept and kept[-1] == "":  # the SDP's final newline stays final
            tail.append(kept.pop())
        kept += [f"a=rid:{rid} recv" for rid in rids]
        kept.append("a=simulcast:recv " + ";".join(rids))
        out.extend(kept + tail)
    return newline.join(out)


_VIDEO_CODECS = ("VP8", "VP9", "H264", "AV1")


def start_bitrate(sdp: str, mids: set[str], kbps: int) -> str:
    """The answer with ``x-google-start-bitrate=<kbps>`` on the video codecs of ``mids``.

    A simulcast publisher's layers need ~1.2 Mbit/s together, but Chromium starts its send
    estimate at 300 kbit/s and, fed REMB and receiver reports only (no transport-wide feedback
    from aiortc), climbs from there at a few percent a second: it sent only the two lower layers
    for 40 s in the shaped-link tests. Starting higher lets it send all three at once; on a weak
    uplink its loss-based control and our REMB (aiortc's delay-based estimate) bring it down
    within seconds, the lowest layer and the audio first (docs/media.md, Bandwidth estimation).
    Chromium reads the parameter from the negotiated send codec, i.e. from this answer.
    """
    if not mids or kbps <= 0:
        return sdp
    newline = "\r\n" if "\r\n" in sdp else "\n"
    out: list[str] = []
    param = f"x-google-start-bitrate={kbps}"
    for section in _sections(sdp):
        if _mid(section) not in mids or not section[0].startswith("m=video"):
            out.extend(section)
            continue
        types = {
            line.split(" ", 1)[0][9:]
            for line in section
            if line.startswith("a=rtpmap:")
            and " " in line
            and line.split(" ", 1)[1].split("/")[0].upper() in _VIDEO_CODECS
        }
        fmtp = {line for line in section if line.startswith("a=fmtp:") and " " in line}
        with_fmtp = {line.split(" ", 1)[0][7:] for line in fmtp}
        lines: list[str] = []
        for line in section:
            if line in fmtp and line.split(" ", 1)[0][7:] in types and "x-google-start-bitrate=" not in line:
                line = f"{line};{param}"
            lines.append(line)
            if line.startswith("a=rtpmap:") and " " in line:
                pt = line.split(" ", 1)[0][9:]
                if pt in types and pt not in with_fmtp:
                    lines.append(f"a=fmtp:{pt} {param}")
        out.extend(lines)
    return newline.join(out)
