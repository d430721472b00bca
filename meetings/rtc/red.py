"""RTP payload for redundant audio data (RED, RFC 2198), as Chromium sends it for Opus.

A RED payload is a chain of block headers followed by the blocks' data. Every block but the
last has a 4-byte header (F=1, block payload type, 14-bit timestamp offset, 10-bit length);
the last, the *primary* (the newest audio, what a plain Opus packet would carry), has a 1-byte
header (F=0, payload type) and takes the rest of the payload. Chromium's ``red/48000/2`` with
fmtp ``111/111`` sends the current Opus frame as primary and up to two earlier ones as
redundancy, so a receiver that lost a packet recovers it from the next.

The forwarding unit never re-encodes: receivers that negotiated RED get the packets as they
are, the others the primary block as a plain Opus payload (``primary``). Nothing here raises
anything but ``MalformedRed``, whose ``reason`` the SFU counts.
"""

from __future__ import annotations

from dataclasses import dataclass

RED_KEY = "RED"  # the codec key (forwarder.codec_key) of audio/red
REDUNDANT_HEADER = 4
PRIMARY_HEADER = 1


class MalformedRed(ValueError):
    """A RED payload that cannot be parsed; ``reason`` is short and fixed, for counters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RedBlock:
    """One block of a RED payload: its payload type, how much older than the packet, its data."""

    payload_type: int
    timestamp_offset: int  # 0 for the primary block
    data: bytes


def _headers(payload: bytes) -> tuple[list[tuple[int, int, int]], int, int]:
    """The redundant blocks' (payload type, timestamp offset, length), the primary's payload
    type, and where the blocks' data starts."""
    redundant: list[tuple[int, int, int]] = []
    at = 0
    size = len(payload)
    while True:
        if at >= size:
            raise MalformedRed("truncated header")
        first = payload[at]
        if not first & 0x80:
            return redundant, first & 0x7F, at + PRIMARY_HEADER
        if at + REDUNDANT_HEADER > size:
            raise MalformedRed("truncated header")
        word = int.from_bytes(payload[at + 1 : at + 4], "big")
        redundant.append((first & 0x7F, word >> 10, word & 0x3FF))
        at += REDUNDANT_HEADER


def parse(payload: bytes) -> list[RedBlock]:
    """Every block of a RED payload, oldest first, the primary last; ``MalformedRed`` if the
    headers run past the payload or the redundant blocks' lengths add up to more than it holds."""
    redundant, primary_type, at = _headers(payload)
    blocks: list[RedBlock] = []
    for payload_type, offset, length in redundant:
        if at + length > len(payload):
            raise MalformedRed("block longer than payload")
        blocks.append(RedBlock(payload_type, offset, bytes(payload[at : at + length])))
        at += length
    blocks.append(RedBlock(primary_type, 0, bytes(payload[at:])))
    return blocks


def primary(payload: bytes) -> RedBlock:
    """The primary (last) block alone, without copying the redundant ones (see ``parse``)."""
    redundant, primary_type, at = _headers(payload)
    at += sum(length for _, _, length in redundant)
    if at > len(payload):
        raise MalformedRed("block longer than payload")
    return RedBlock(primary_type, 0, bytes(payload[at:]))


def build(blocks: list[RedBlock]) -> bytes:
    """A RED payload of these blocks (the last is the primary): the inverse of ``parse``.

    For tests and test clients; ``ValueError`` for an offset or length RFC 2198 cannot carry.
    """
    if not blocks:
        raise ValueError("a RED payload has at least its primary block")
    header = bytearray()
    for block in blocks[:-1]:
        if not 0 <= block.timestamp_offset < 1 << 14 or len(block.data) >= 1 << 10:
            raise ValueError("timestamp offset or block length out of range")
        word = (block.timestamp_offset << 10) | len(block.data)
        header += bytes([0x80 | (block.payload_type & 0x7F)]) + word.to_bytes(3, "big")
    header.append(blocks[-1].payload_type & 0x7F)
    return bytes(header) + b"".join(block.data for block in blocks)
