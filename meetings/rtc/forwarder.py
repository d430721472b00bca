"""Packet-level forwarding: rewrite a publisher's RTP for a subscriber's sender, queue, send.

Nothing here decodes or re-encodes: the payload a subscriber gets is the payload the publisher
sent. Per subscriber *slot* (one sender on the subscriber's connection) a rewriter maps the
SSRC, sequence numbers (continuous across source switches and pauses), timestamps and payload
type; RTP headers and RFC 8285 extensions are written here, not by aiortc.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_U24 = struct.Struct("!HB")  # a 24-bit value as (high 16 bits, low 8 bits)
_SECOND_SEQ_TS = struct.Struct("!BHI")  # marker/payload type, sequence number, timestamp
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
VIDEO_HISTORY = 256  # packets kept per video slot for retransmission (~4 s at 500 kbps)


def seq_newer(a: int, b: int) -> bool:
    """Whether sequence number ``a`` comes after ``b`` (RFC 3550 wrap-around)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def is_keyframe(codec_name: str, payload: bytes) -> bool:
    """Whether this packet starts a keyframe (VP8: RFC 7741; H.264: RFC 6184 IDR or SPS)."""
    if not payload:
        return False
    if codec_name == "VP8":
        first = payload[0]
        if not first & 0x10 or first & 0x07:  # S bit, partition 0
            return False
        pos = 1
        if first & 0x80:  # X: extension byte follows
            if len(payload) < 2:
                return False
            ext = payload[1]
            pos = 2
            if ext & 0x80:  # I: picture id, 7 or 15 bits
                if len(payload) <= pos:
                    return False
                pos += 2 if payload[pos] & 0x80 else 1
            if ext & 0x40:  # L: TL0PICIDX
                pos += 1
            if ext & 0x30:  # T or K: TID/KEYIDX byte
                pos += 1
        return len(payload) > pos and not payload[pos] & 0x01  # P bit 0 = keyframe
    if codec_name == "H264":
        nal = payload[0] & 0x1F
        if nal in (5, 7):
            return True
        if nal == 24:  # STAP-A
            pos = 1
            while pos + 2 < len(payload):
                size = _U16.unpack_from(payload, pos)[0]
                if payload[pos + 2] & 0x1F in (5, 7):
                    return True
                pos += 2 + size
            return False
        if nal == 28 and len(payload) > 1:  # FU-A start fragment
            return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def pack_extensions(elements: list[tuple[int, bytes]]) -> bytes:
    """An RFC 8285 header extension block (profile, length, elements, padding); b"" if none."""
    if not elements:
        return b""
    if all(0 < i < 15 and 0 < len(v) <= 16 for i, v in elements):
        profile, body = 0xBEDE, b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
    else:
        profile, body = 0x1000, b"".join(bytes([i, len(v)]) + v for i, v in elements)
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", profile, len(body) // 4) + body


def build_rtp(
    *, payload_type: int, marker: int, seq: int, timestamp: int, ssrc: int, extensions: bytes, payload: bytes
) -> bytes:
    """Serialise an RTP packet (RFC 3550, no CSRC, no padding)."""
    first = 0x90 if extensions else 0x80
    return _HEADER.pack(first, (marker << 7) | payload_type, seq, timestamp, ssrc) + extensions + payload


@dataclass(slots=True)
class SeqRewriter:
    """Maps one source at a time onto a continuous outgoing sequence/timestamp space."""

    clock_rate: int
    out_seq: int = 0
    out_ts: int = 0
    out_time: float = 0.0
    seq_offset: int = 0
    ts_offset: int = 0
    in_first: int | None = None
    in_max: int = 0
    started: bool = False

    def restart(self) -> None:
        """The next packet starts a new epoch (another source, or the same after a pause)."""
        self.in_first = None

    def rewrite(self, seq: int, ts: int, now: float) -> tuple[int, int] | None:
        """The outgoing (seq, timestamp), or None for a packet older than the epoch."""
        if self.in_first is None:
            if self.started:
                gap = max(1, int((now - self.out_time) * self.clock_rate))
                target_seq, target_ts = (self.out_seq + 1) % SEQ_MOD, (self.out_ts + gap) % TS_MOD
            else:
                target_seq, target_ts = seq, ts
            self.seq_offset = (target_seq - seq) % SEQ_MOD
            self.ts_offset = (target_ts - ts) % TS_MOD
            self.in_first = self.in_max = seq
            self.started = True
        elif seq_newer(seq, self.in_max):
            self.in_max = seq
        elif seq_newer(self.in_first, seq):
            return None
        out_seq = (seq + self.seq_offset) % SEQ_MOD
        out_ts = (ts + self.ts_offset) % TS_MOD
        if seq == self.in_max:
            self.out_seq, self.out_ts, self.out_time = out_seq, out_ts, now
        return out_seq, out_ts


class KeyframeThrottle:
    """At most one keyframe request per publisher stream per ``interval`` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.last = -1e9
        self.sent = 0

    def allow(self, now: float) -> bool:
        if now - self.last < self.interval:
            return False
        self.last = now
        self.sent += 1
        return True


Send = Callable[[bytes | bytearray, bytes], None]
"""Protect and send ``header + payload`` now (``header`` is only valid during the call).

Raises ``ConnectionError`` when the subscriber is not connected (yet, or any more)."""


@dataclass(slots=True)
class _Queued:
    video: bool
    slot: SlotForwarder | None
    header: bytes
    payload: bytes


class DownlinkQueue:
    """A subscriber's bounded send queue: video is dropped before audio when it backs up.

    While nothing waits and no rate is set, a packet is sent at once (no copy, no coroutine);
    otherwise packets wait for the (optional) token bucket and the oldest video packet is
    dropped first once ``limit`` packets are queued, and its slot waits for the next keyframe.
    Audio is dropped only when the queue holds nothing but audio.
    """

    def __init__(self, send: Send, *, limit: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self.limit = limit
        self._queue: deque[_Queued] = deque()
        self._clock = clock
        self.rate_bps: float | None = None
        self._tokens = 0.0
        self._refilled = clock()
        self.sent_packets = 0
        self.sent_bytes = 0
        self.dropped_video = 0
        self.dropped_audio = 0
        self.closed = False
        self.not_connected = 0

    def __len__(self) -> int:
        return len(self._queue)

    def set_send(self, send: Send) -> None:
        """Where packets go (the subscriber's DTLS transport, once negotiated)."""
        self._send = send

    def set_rate(self, bps: float | None) -> None:
        """Pace to ``bps`` (from REMB or settings); None sends as fast as packets come."""
        self.rate_bps = bps

    def push(
        self, header: bytes | bytearray, payload: bytes, video: bool, slot: SlotForwarder | None = None
    ) -> None:
        """Send (or queue) one packet: ``header`` (RTP header and extensions) + ``payload``."""
        if self.closed:
            return
        if not self._queue and self.rate_bps is None:  # the common case: straight to the wire
            try:
                self._send(header, payload)
            except ConnectionError:  # not connected (yet, or any more): nothing to keep
                self.not_connected += 1
                if video and slot is not None:
                    slot.lost_video()
                return
            self.sent_packets += 1
            self.sent_bytes += len(header) + len(payload)
            return
        if len(self._queue) >= self.limit:
            self._drop_one(incoming_video=video)
            if video and len(self._queue) >= self.limit:
                self.dropped_video += 1
                if slot is not None:
                    slot.lost_video()
                return
        self._queue.append(_Queued(video, slot, bytes(header), payload))
        self.flush()

    def _drop_one(self, *, incoming_video: bool) -> None:
        for i, item in enumerate(self._queue):
            if item.video:
                del self._queue[i]
                self.dropped_video += 1
                if item.slot is not None:
                    item.slot.lost_video()
                return
        if not incoming_video:
            self._queue.popleft()
            self.dropped_audio += 1

    def _budget(self, size: int) -> bool:
        if self.rate_bps is None:
            return True
        now = self._clock()
        burst = self.rate_bps / 8 * 0.05  # 50 ms of data
        self._tokens = min(burst, self._tokens + (now - self._refilled) * self.rate_bps / 8)
        self._refilled = now
        if self._tokens >= size or self._tokens >= burst:
            self._tokens -= size
            return True
        return False

    def flush(self) -> None:
        """Send what the budget allows; the rest waits for the next push or flush."""
        queue = self._queue
        while queue and not self.closed:
            item = queue[0]
            size = len(item.header) + len(item.payload)
            if not self._budget(size):
                break
            queue.popleft()
            try:
                self._send(item.header, item.payload)
            except ConnectionError:  # not connected (yet, or any more): nothing to keep
                self.not_connected += 1
                for lost in (item, *queue):
                    if lost.video and lost.slot is not None:
                        lost.slot.lost_video()
                queue.clear()
                return
            self.sent_packets += 1
            self.sent_bytes += size

    def close(self) -> None:
        self.closed = True
        self._queue.clear()


@dataclass(frozen=True, slots=True)
class SlotTarget:
    """The subscriber-side sender a slot writes to (from the negotiated SDP)."""

    kind: str
    mid: str
    ssrc: int
    rtx_ssrc: int
    payload_types: dict[str, int]  # codec key (see codec_key) -> negotiated payload type
    rtx_payload_types: dict[int, int]  # media payload type -> its RTX payload type
    mid_ext_id: int | None
    audio_level_ext_id: int | None
    abs_send_time_ext_id: int | None


def codec_key(name: str, parameters: dict[str, object] | None = None) -> str:
    """How codecs are matched across connections: name, plus packetization mode for H.264."""
    if name.upper() == "H264" and parameters is not None:
        return f"H264/{parameters.get('packetization-mode', 0)}"
    return name.upper()


@dataclass(slots=True)
class ForwardStats:
    forwarded: int = 0
    retransmitted: int = 0
    skipped_waiting_keyframe: int = 0


class SlotForwarder:
    """One subscriber sender fed by one publisher stream at a time."""

    __slots__ = (
        "_headers",
        "_history",
        "_mid_element",
        "_payload_types",
        "_rtx_seq",
        "clock_rate",
        "downlink",
        "on_keyframe_needed",
        "rewriter",
        "source",
        "stats",
        "target",
        "video",
        "waiting_keyframe",
    )

    def __init__(
        self,
        target: SlotTarget,
        clock_rate: int,
        downlink: DownlinkQueue,
        on_keyframe_needed: Callable[[SlotForwarder], None] = lambda slot: None,
    ) -> None:
        self.target = target
        self.clock_rate = clock_rate
        self.downlink = downlink
        self.on_keyframe_needed = on_keyframe_needed
        self.source: object | None = None
        self.video = target.kind == "video"
        self.waiting_keyframe = self.video
        self.stats = ForwardStats()
        self.rewriter = SeqRewriter(clock_rate)
        self._history: list[tuple[int, int, int, bytes] | None] = [None] * VIDEO_HISTORY if self.video else []
        self._rtx_seq = 0
        self._payload_types = dict(target.payload_types)
        mid = target.mid.encode()
        ext_id = target.mid_ext_id
        self._mid_element = (
            bytes([(ext_id << 4) | (len(mid) - 1)]) + mid if ext_id and 0 < len(mid) <= 16 else b""
        )
        # Header templates by (has audio level, has send time): (bytes, level offset, time offset).
        self._headers = [self._template(bool(i & 1), bool(i & 2)) for i in range(4)]

    def _template(self, level: bool, send_time: bool) -> tuple[bytearray, int, int]:
        """A 12-byte RTP header (our SSRC) and extension block whose variable bytes are patched."""
        body = bytearray(self._mid_element)
        t = self.target
        level_at = time_at = -1
        if level and t.audio_level_ext_id and t.audio_level_ext_id < 15:
            body += bytes([t.audio_level_ext_id << 4])
            level_at = len(body)
            body += b"\x00"
        if send_time and t.abs_send_time_ext_id and t.abs_send_time_ext_id < 15:
            body += bytes([(t.abs_send_time_ext_id << 4) | 2])
            time_at = len(body)
            body += b"\x00\x00\x00"
        ext = b""
        if body:
            body += b"\x00" * (-len(body) % 4)
            ext = b"\xbe\xde" + _U16.pack(len(body) // 4) + bytes(body)
        header = bytearray(_HEADER.pack(0x90 if ext else 0x80, 0, 0, 0, t.ssrc)) + ext
        offset = 12 + 4  # fixed header + extension profile/length
        return header, level_at + offset if level_at >= 0 else -1, time_at + offset if time_at >= 0 else -1

    def switch(self, source: object | None) -> None:
        """Carry another source (or nothing); video waits for that source's next keyframe."""
        if source is self.source:
            return
        self.source = source
        self.rewriter.restart()
        self.waiting_keyframe = self.video
        if source is not None and self.video:
            self.on_keyframe_needed(self)

    def lost_video(self) -> None:
        """A queued packet was dropped: resume at the next keyframe so the decoder recovers."""
        if not self.waiting_keyframe:
            self.waiting_keyframe = True
            self.rewriter.restart()
            self.on_keyframe_needed(self)

    def _extensions(self, audio_level: int | None, send_time: int | None) -> bytes:
        header, level_at, time_at = self._headers[(audio_level is not None) | (send_time is not None) << 1]
        if level_at >= 0 and audio_level is not None:
            header[level_at] = audio_level & 0x7F
        if time_at >= 0 and send_time is not None:
            _U24.pack_into(header, time_at, send_time >> 8, send_time & 0xFF)
        return bytes(header[12:])

    def forward(
        self,
        codec: str,
        seq: int,
        timestamp: int,
        marker: int,
        payload: bytes,
        keyframe: bool,
        audio_level: int | None,
        send_time: int | None,
        now: float,
    ) -> bool:
        """Rewrite and send (or queue) one packet; False if it was not forwarded."""
        if self.waiting_keyframe:
            if not keyframe:
                self.stats.skipped_waiting_keyframe += 1
                return False
            self.waiting_keyframe = False
        pt = self._payload_types.get(codec)
        if pt is None:
            return False
        mapped = self.rewriter.rewrite(seq, timestamp, now)
        if mapped is None:
            return False
        out_seq, out_ts = mapped
        second = (marker << 7) | pt
        header, level_at, time_at = self._headers[(audio_level is not None) | (send_time is not None) << 1]
        _SECOND_SEQ_TS.pack_into(header, 1, second, out_seq, out_ts)
        if level_at >= 0:
            header[level_at] = audio_level & 0x7F  # type: ignore[operator]
        if time_at >= 0:
            _U24.pack_into(header, time_at, send_time >> 8, send_time & 0xFF)  # type: ignore[operator]
        if self.video:
            self._history[out_seq % VIDEO_HISTORY] = (out_seq, out_ts, second, payload)
        self.downlink.push(header, payload, self.video, self)
        self.stats.forwarded += 1
        return True

    def retransmit(self, lost: list[int], send_time: int | None) -> int:
        """Queue the packets a subscriber NACKed that are still in the history (RTX if negotiated)."""
        count = 0
        for seq in lost:
            entry = self._history[seq % VIDEO_HISTORY] if self._history else None
            if entry is None or entry[0] != seq:
                continue
            out_seq, out_ts, second, payload = entry
            rtx_pt = self.target.rtx_payload_types.get(second & 0x7F)
            ext = self._extensions(None, send_time)
            first = 0x90 if ext else 0x80
            if rtx_pt is not None:
                self._rtx_seq = (self._rtx_seq + 1) % SEQ_MOD
                rtx_second = (second & 0x80) | rtx_pt
                header = _HEADER.pack(first, rtx_second, self._rtx_seq, out_ts, self.target.rtx_ssrc) + ext
                self.downlink.push(header, _U16.pack(out_seq) + payload, True)
            else:
                header = _HEADER.pack(first, second, out_seq, out_ts, self.target.ssrc) + ext
                self.downlink.push(header, payload, True)
            count += 1
        self.stats.retransmitted += count
        return count
