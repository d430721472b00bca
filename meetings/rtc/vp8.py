"""The VP8 RTP payload descriptor (RFC 7741 §4.2) and the keyframe header (RFC 6386 §9.1).

What the forwarding unit reads to drop temporal layers (TID, layer sync) and rewrites so that a
receiver sees one continuous stream across layer switches (picture id, TL0PICIDX). The C fast
path (``_fastpath.c``, ``vp8_parse``) reads the same fields the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

PICTURE_ID_MOD = 1 << 15
TL0_MOD = 1 << 8
NO_TID = 255  # "forward every temporal layer"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """The fields of one packet's descriptor; ``*_at`` are byte offsets into the payload."""

    size: int  # bytes of descriptor before the VP8 payload
    start: bool  # S=1 and partition 0: the first packet of a frame
    picture_id: int | None
    picture_id_at: int
    long_picture_id: bool  # M=1: 15 bits, else 7
    tl0picidx: int | None
    tl0picidx_at: int
    tid: int | None  # temporal layer (T=1), else None
    layer_sync: bool  # Y: decodable from the base layer alone


def parse_descriptor(payload: bytes) -> Descriptor | None:
    """The descriptor at the start of a VP8 RTP payload; None if the payload is too short for it."""
    n = len(payload)
    if n < 1:
        return None
    first = payload[0]
    start = bool(first & 0x10) and not first & 0x07
    pos = 1
    picture_id: int | None = None
    picture_id_at = -1
    long_id = False
    tl0: int | None = None
    tl0_at = -1
    tid: int | None = None
    sync = False
    if first & 0x80:
        if n < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & 0x80:
            if n <= pos:
                return None
            picture_id_at = pos
            if payload[pos] & 0x80:
                if n <= pos + 1:
                    return None
                long_id = True
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                pos += 2
            else:
                picture_id = payload[pos]
                pos += 1
        if ext & 0x40:
            if n <= pos:
                return None
            tl0_at = pos
            tl0 = payload[pos]
            pos += 1
        if ext & 0x30:
            if n <= pos:
                return None
            if ext & 0x20:
                tid = payload[pos] >> 6
                sync = bool(payload[pos] & 0x20)
            pos += 1
    return Descriptor(pos, start, picture_id, picture_id_at, long_id, tl0, tl0_at, tid, sync)


def rewrite_descriptor(
    payload: bytes, descriptor: Descriptor, picture_id: int | None, tl0picidx: int | None
) -> bytes:
    """The payload with its picture id and TL0PICIDX replaced (same widths, same length)."""
    head = bytearray(payload[: descriptor.size])
    at = descriptor.picture_id_at
    if picture_id is not None and at >= 0:
        if descriptor.long_picture_id:
            head[at] = 0x80 | ((picture_id >> 8) & 0x7F)
            head[at + 1] = picture_id & 0xFF
        else:
            head[at] = picture_id & 0x7F
    if tl0picidx is not None and descriptor.tl0picidx_at >= 0:
        head[descriptor.tl0picidx_at] = tl0picidx & 0xFF
    return bytes(head) + payload[descriptor.size :]


def keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 keyframe (RFC 6386 §9.1), else None."""
    descriptor = parse_descriptor(payload)
    if descriptor is None or not descriptor.start:
        return None
    frame = payload[descriptor.size :]
    # 3-byte frame tag (P=0: keyframe), start code 9d 01 2a, 14-bit width and height (LE).
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = (frame[6] | (frame[7] << 8)) & 0x3FFF
    height = (frame[8] | (frame[9] << 8)) & 0x3FFF
    return (width, height) if width and height else None
