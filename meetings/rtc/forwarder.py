"""Packet-level forwarding: rewrite a publisher's RTP for a subscriber's sender, queue, send.

Nothing here decodes or re-encodes: the payload a subscriber gets is the payload the publisher
sent. Per subscriber *slot* (one sender on the subscriber's connection) a rewriter maps the
SSRC, sequence numbers (continuous across source switches and pauses), timestamps and payload
type; RTP headers and RFC 8285 extensions are written here, not by aiortc.

The per-packet part has two implementations with one behaviour: ``PySlotCore`` and
``fanout_py`` here, and ``_fastpath.Slot``/``_fastpath.fanout`` in C (``_fastpath.c``), which
also SRTP-protects and sends without returning to Python. ``SlotForwarder`` is built on the C
core when it is available, ``PySlotForwarder`` always on the Python one; the tests run on both.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from meetings.rtc import vp8

try:  # the C fan-out (setup.py builds it where a compiler is available)
    from meetings.rtc import _fastpath
except ImportError:  # pragma: no cover - depends on the machine
    _fastpath = None  # type: ignore[assignment]

NATIVE_AVAILABLE = _fastpath is not None
NATIVE = NATIVE_AVAILABLE and not os.environ.get("GIAOBAN_SFU_PURE_PYTHON")
"""Whether the SFU forwards with ``_fastpath`` (set GIAOBAN_SFU_PURE_PYTHON=1 to compare)."""

_HEADER = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_U24 = struct.Struct("!HB")  # a 24-bit value as (high 16 bits, low 8 bits)
_SECOND_SEQ_TS = struct.Struct("!BHI")  # marker/payload type, sequence number, timestamp
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
WIRE_OVERHEAD = 38  # bytes a packet takes on the link beyond RTP: IPv4 20, UDP 8, SRTP tag 10
VIDEO_HISTORY = 256  # packets kept per video slot for retransmission (~4 s at 500 kbps)
PAD_DEPTH = 32  # probe padding copies at most this many of the latest packets per call
# A NACKed packet is sent again only if it is at most this old (its RTP time behind the newest
# sent), or 3 round trips if that is more: libwebrtc's packet history keeps max(1 s, 3 × RTT).
# Older, the receiver's decoder has moved on (or waits for a keyframe): back from a network cut
# of ~10 s, Chromium NACKed the whole gap and the history's 256 packets a slot went out again,
# 2.5 Mbit/s for 2 s to a receiver whose REMB said 770 kbit/s.
NACK_MAX_AGE = 1.0


def abs_send_time() -> int:
    """The 24-bit abs-send-time value for now (6.18 fixed point seconds of the NTP clock).

    The NTP epoch is a whole number of 64 s before the Unix epoch, so the low 6 bits of the
    seconds (all abs-send-time keeps) are the same as Unix time's: no datetime per packet.
    """
    return int(time.time() * 262144) & 0x00FFFFFF


def restamp_send_time(header: bytes, ext_id: int, value: int) -> bytes:
    """``header`` with its abs-send-time extension (one-byte form, id ``ext_id``) set to ``value``;
    unchanged when it has none."""
    if not header or not header[0] & 0x10:
        return header
    pos = 12 + 4 * (header[0] & 0x0F)
    if len(header) < pos + 4 or header[pos : pos + 2] != b"\xbe\xde":
        return header
    end = min(pos + 4 + 4 * ((header[pos + 2] << 8) | header[pos + 3]), len(header))
    i = pos + 4
    while i < end:
        element = header[i]
        if element == 0:  # padding
            i += 1
            continue
        element_id, length = element >> 4, (element & 0x0F) + 1
        if element_id == 15:
            break
        if element_id == ext_id and length == 3 and i + 4 <= end:
            stamped = bytearray(header)
            stamped[i + 1 : i + 4] = value.to_bytes(3, "big")
            return bytes(stamped)
        i += 1 + length
    return header


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
    dropped: bool = False  # a packet of this epoch was dropped (temporal layer): see drop()
    last_drop: int = 0

    def restart(self) -> None:
        """The next packet starts a new epoch (another source, or the same after a pause)."""
        self.in_first = None
        self.dropped = False

    def drop(self, seq: int) -> None:
        """Leave out incoming ``seq`` without a gap: the packets after it move down by one.

        A packet older than a dropped one arriving later (reordered, retransmitted) is then not
        forwarded: its outgoing number may already be taken.
        """
        if self.in_first is not None and seq_newer(seq, self.in_max):
            self.in_max = seq
            self.seq_offset = (self.seq_offset - 1) % SEQ_MOD
            self.dropped, self.last_drop = True, seq

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
        elif seq_newer(self.in_first, seq) or (self.dropped and seq_newer(self.last_drop, seq)):
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
    slot: SlotForwarder | None
    header: bytes
    payload: bytes
    at: float  # when it was queued


class DownlinkQueue:
    """A subscriber's bounded send queue for video, paced once a rate is set; audio never waits.

    While nothing waits and no rate is set, a packet is sent at once (no copy, no coroutine).
    With a rate (the receiver's bandwidth estimate: ``Sfu`` sets it for receivers whose link
    limits what they get), video leaves through a token bucket: a keyframe's burst is spread
    over the link instead of overflowing its queue. Audio is not paced, as libwebrtc's pacer
    does not pace it: it leaves at once and its bytes come out of the bucket (down to a second's
    debt), so video waits for it. Paced too, audio waited whenever the estimate fell below what
    audio itself needs (measured at 15 % loss: the estimate cut to its floor, the receiver's
    jitter buffer at 350 ms and 8.7 % of its audio concealed). Video that waited
    ``max_video_delay`` is dropped (too late to show), and once ``limit`` packets are queued the
    oldest goes first; its slot waits for the next keyframe.

    ``direct_paced`` (the default): a paced queue with nothing waiting sends a packet the bucket
    has room for at once, as an unpaced one does, and on the C path the slots check the bucket
    themselves (it lives in the ``_fastpath.Wire``), so a paced receiver's packets no longer go
    through Python. False: every packet of a paced receiver goes through the queue (and is
    restamped as it leaves), the path before issue #18 item 4, kept for ``bench/sfu.py``.
    """

    def __init__(
        self,
        send: Send,
        *,
        limit: int = 256,
        max_video_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        native: bool | None = None,
        direct_paced: bool = True,
    ) -> None:
        self._send = send
        # The C send path the slots use while this queue is empty and unpaced (``direct``);
        # internals.RtpWire binds it to the connection. None: everything goes through push().
        self.fast: Any = _fastpath.Wire() if (NATIVE if native is None else native) and _fastpath else None
        self.direct_paced = direct_paced
        # The token bucket is the C wire's when the slots send on their own while paced.
        self._c_bucket = self.fast is not None and direct_paced
        self.limit = limit
        self.max_video_delay = max_video_delay
        self._video: deque[_Queued] = deque()
        self._clock = clock
        self.rate_bps: float | None = None
        self._tokens = 0.0
        self._refilled = clock()
        self._wake: Any = None  # the timer that drains the queue between packets
        self._sent_packets = 0
        self._sent_bytes = 0
        self.dropped_video = 0
        self.late_video = 0  # of dropped_video: waited too long
        self.superseded_video = 0  # of dropped_video: of a layer its slot switched away from
        self.closed = False
        self.not_connected = 0
        self._update_direct()

    def __len__(self) -> int:
        return len(self._video)

    @property
    def queued_bytes(self) -> int:
        """The bytes of the video packets waiting (RTP, as ``sent_bytes`` counts them)."""
        return sum(len(q.header) + len(q.payload) for q in self._video)

    @property
    def sent_packets(self) -> int:
        return self._sent_packets + (self.fast.fast_packets if self.fast is not None else 0)

    @property
    def sent_bytes(self) -> int:
        return self._sent_bytes + (self.fast.fast_bytes if self.fast is not None else 0)

    def _update_direct(self) -> None:
        """Slots may send on their own (C path) only while nothing waits here and no rate is set."""
        if self.fast is not None:
            paced_ok = self.rate_bps is None or self._c_bucket
            self.fast.direct = int(not len(self) and paced_ok and not self.closed)

    def set_send(self, send: Send) -> None:
        """Where packets go (the subscriber's DTLS transport, once negotiated)."""
        self._send = send

    def set_rate(self, bps: float | None) -> None:
        """Pace to ``bps`` (the receiver's estimate); None sends as fast as packets come."""
        if bps is not None and self.rate_bps is None:
            self._tokens, self._refilled = 0.0, self._clock()
        self.rate_bps = bps
        if self._c_bucket:
            self.fast.set_rate(bps, self._refilled)
        self._update_direct()
        if bps is None:
            self.flush()

    def push(
        self, header: bytes | bytearray, payload: bytes, video: bool, slot: SlotForwarder | None = None
    ) -> None:
        """Send (or queue) one packet: ``header`` (RTP header and extensions) + ``payload``."""
        if self.closed:
            return
        size = len(header) + len(payload)
        if not video or (  # audio, or the common case: straight to the wire
            not len(self)
            and (self.rate_bps is None or (self.direct_paced and self._budget(size + WIRE_OVERHEAD)))
        ):
            try:
                self._send(header, payload)
            except ConnectionError:  # not connected (yet, or any more): nothing to keep
                self.not_connected += 1
                if video and slot is not None:
                    slot.lost_video()
                return
            self._sent_packets += 1
            self._sent_bytes += size
            if not video:
                self._debit(size + WIRE_OVERHEAD)
            return
        if len(self) >= self.limit:
            oldest = self._video.popleft()
            self._lose(oldest.slot, oldest.header)
            # Of the stretch just lost (its slot waits for a keyframe) or still no room: goes too.
            if (slot is not None and oldest.slot is slot) or len(self) >= self.limit:
                self._lose(slot, header)
                return
        self._video.append(_Queued(slot, bytes(header), payload, self._clock()))
        self.flush()

    def _lose(self, slot: SlotForwarder | None, header: bytes | bytearray | None = None) -> None:
        """One video packet dropped: with it go the slot's later queued packets (useless until its
        next keyframe), and the slot continues from the dropped packet's sequence number."""
        self.dropped_video += 1
        if slot is None:
            return
        self.dropped_video += len(self._take_video(slot))
        slot.lost_video(_U16.unpack_from(header, 2)[0] if header is not None else None)

    def _take_video(self, slot: SlotForwarder) -> list[_Queued]:
        """Remove ``slot``'s queued video packets; the removed ones, oldest first."""
        mine = [item for item in self._video if item.slot is slot]
        if mine:
            self._video = deque(item for item in self._video if item.slot is not slot)
        return mine

    def supersede(self, slot: SlotForwarder) -> int:
        """The slot switches layer at a keyframe: its queued video, of the layer it leaves, goes.

        On a fall the queue holds up to ``max_video_delay`` of the old, larger layer, paced at
        the new, lower estimate: the new layer's keyframe would wait behind it (measured: the
        receiver decoded the lower layer 1 to 1.4 s after the switch). The slot's next epoch
        continues from the first dropped sequence number, so the receiver sees no gap.
        Returns how many packets were dropped.
        """
        mine = self._take_video(slot)
        if not mine:
            return 0
        self.dropped_video += len(mine)
        self.superseded_video += len(mine)
        core: _SlotCore = slot  # type: ignore[assignment]
        core.out_seq = (_U16.unpack_from(mine[0].header, 2)[0] - 1) % SEQ_MOD
        self._update_direct()
        return len(mine)

    def _budget(self, size: int) -> bool:
        if self.rate_bps is None:
            return True
        now = self._clock()
        if self._c_bucket:
            return bool(self.fast.budget(size, now))
        burst = self._refill(self.rate_bps, now)
        if self._tokens >= size or self._tokens >= burst:
            self._tokens -= size
            return True
        return False

    def _debit(self, size: int) -> None:
        """Take an audio packet's ``size`` bytes from the bucket (sent regardless): at most a
        second's debt, so a rate that rises is not held back by audio long gone."""
        if self.rate_bps is None:
            return
        now = self._clock()
        if self._c_bucket:
            self.fast.debit(size, now)
            return
        self._refill(self.rate_bps, now)
        self._tokens = max(self._tokens - size, -self.rate_bps / 8)

    def _refill(self, rate_bps: float, now: float) -> float:
        """Fill the bucket for the time since the last refill, up to its burst (50 ms of data,
        returned); the same arithmetic as ``_fastpath``'s ``wire_budget`` and ``wire_debit``."""
        burst = rate_bps / 8 * 0.05
        self._tokens = min(burst, self._tokens + (now - self._refilled) * rate_bps / 8)
        self._refilled = now
        return burst

    def flush(self) -> None:
        """Send the queued video the budget allows; the rest waits for a push or the timer."""
        video = self._video
        while video and not self.closed:
            if self._clock() - video[0].at > self.max_video_delay:
                self.late_video += 1
                late = video.popleft()
                self._lose(late.slot, late.header)  # too late to be shown
                video = self._video
                continue
            item = video[0]
            size = len(item.header) + len(item.payload)
            if not self._budget(size + WIRE_OVERHEAD):
                self._schedule(size + WIRE_OVERHEAD)
                break
            video.popleft()
            header = item.header
            if item.slot is not None and (ext_id := item.slot.target.abs_send_time_ext_id):
                # Stamped as it leaves, as a sender's pacer does: the receiver's delay-based
                # estimate must see the network's queueing, not ours (stamped when queued, the
                # wait here read as congestion and the REMB fell, and the pacer with it).
                header = restamp_send_time(header, ext_id, abs_send_time())
            try:
                self._send(header, item.payload)
            except ConnectionError:  # not connected (yet, or any more): nothing to keep
                self.not_connected += 1
                for lost in (item, *video):
                    if lost.slot is not None:
                        lost.slot.lost_video()
                video.clear()
                break
            self._sent_packets += 1
            self._sent_bytes += size
        self._update_direct()

    def _schedule(self, size: int) -> None:
        """Wake when the bucket holds ``size`` bytes (a queue that waits for the next packet
        or tick would send in bursts)."""
        if self._wake is not None or not self.rate_bps:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next push or tick flushes
            return
        tokens = self.fast.tokens if self._c_bucket else self._tokens  # as the failed _budget left it
        delay = max((min(size, self.rate_bps / 8 * 0.05) - tokens) * 8 / self.rate_bps, 0.001)
        self._wake = loop.call_later(delay, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self.flush()

    def close(self) -> None:
        self.closed = True
        self._video.clear()
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._update_direct()


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
    skipped_temporal: int = 0


Push = Callable[[bytes | bytearray, bytes, bool, Any], None]
"""The slow path: ``DownlinkQueue.push(header, payload, video, slot)``."""

Template = tuple[bytearray, int, int]
"""A slot's RTP header + extension block and the offsets of its audio level and send time."""


class PySlotCore:
    """A slot's per-packet state and ``forward`` in Python: the reference for ``_fastpath.Slot``.

    Keep the two in step: the same attributes, the same decisions, the same bytes
    (tests/rtc/test_forwarder.py runs on both).

    VP8 (the slot's VP8 payload type): packets of temporal layers above ``tid_max`` are dropped
    without leaving a sequence gap; ``tid_max`` follows ``tid_want`` down at the next frame and
    up at a keyframe or a layer-sync frame. Picture ids and TL0PICIDX are rewritten to continue
    from the last ones sent when the slot moves to another layer (``rebase``) and across dropped
    frames, so the receiver's reference finder sees no gap. Another source, or the same stream
    after a loss, starts at a keyframe and keeps its numbers (offset unchanged).
    """

    __slots__ = (
        "_core_history",
        "_core_payload_types",
        "_core_push",
        "_core_templates",
        "_core_vp8_pt",
        "forwarded",
        "pic_last_drop",
        "pic_last_out",
        "pic_offset",
        "pic_reset",
        "pic_started",
        "rewriter",
        "skipped_temporal",
        "skipped_waiting_keyframe",
        "tid_max",
        "tid_want",
        "tl0_last_out",
        "tl0_offset",
        "tl0_reset",
        "tl0_started",
        "video",
        "waiting_keyframe",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.video = False
        self.waiting_keyframe = False
        self.forwarded = 0
        self.skipped_waiting_keyframe = 0
        self.skipped_temporal = 0
        self.rewriter = SeqRewriter(90000)
        self._core_history: list[tuple[int, int, int, bytes] | None] = []
        self._core_payload_types: dict[str, int] = {}
        self._core_templates: list[Template] = []
        self._core_push: Push | None = None
        self._core_vp8_pt = -1
        self.tid_want = self.tid_max = vp8.NO_TID
        self.pic_offset = self.pic_last_out = 0
        self.pic_last_drop = -1
        self.pic_started = self.pic_reset = False
        self.tl0_offset = self.tl0_last_out = 0
        self.tl0_started = self.tl0_reset = False

    def _core_setup(
        self, video: bool, clock_rate: float, payload_types: dict[str, int], templates: list[Any]
    ) -> None:
        self.video = video
        self.waiting_keyframe = video
        self.rewriter = SeqRewriter(int(clock_rate))
        self._core_payload_types = payload_types
        self._core_templates = [(bytearray(h), level_at, time_at) for h, level_at, time_at in templates]
        self._core_history = [None] * VIDEO_HISTORY if video else []
        self._core_vp8_pt = payload_types.get("VP8", -1) if video else -1

    def _core_connect(self, wire: object, push: Push) -> None:
        self._core_push = push  # the Python path always goes through the queue

    @property
    def started(self) -> bool:
        return self.rewriter.started

    @property
    def out_seq(self) -> int:
        return self.rewriter.out_seq

    @out_seq.setter
    def out_seq(self, value: int) -> None:
        self.rewriter.out_seq = value

    @property
    def out_ts(self) -> int:
        return self.rewriter.out_ts

    @property
    def out_time(self) -> float:
        return self.rewriter.out_time

    def restart(self) -> None:
        self.rewriter.restart()
        self.pic_last_drop = -1

    def rebase(self) -> None:
        """The next picture id and TL0PICIDX continue from the last ones sent (another layer)."""
        self.pic_reset = self.tl0_reset = True

    def history_get(self, seq: int) -> tuple[int, int, int, bytes] | None:
        entry = self._core_history[seq % VIDEO_HISTORY] if self._core_history else None
        return entry if entry is not None and entry[0] == seq else None

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
        pt = self._core_payload_types.get(codec)
        if pt is None:  # a codec this subscriber did not negotiate: nothing to send, still waiting
            return False
        if self.waiting_keyframe:
            if not keyframe:
                self.skipped_waiting_keyframe += 1
                return False
            self.waiting_keyframe = False
        descriptor = vp8.parse_descriptor(payload) if pt == self._core_vp8_pt else None
        if descriptor is not None and descriptor.tid is not None:
            tid = descriptor.tid
            if keyframe:
                self.tid_max = self.tid_want
            elif descriptor.start:
                if self.tid_want < self.tid_max:
                    self.tid_max = self.tid_want
                elif descriptor.layer_sync and self.tid_max < tid <= self.tid_want:
                    self.tid_max = tid
            if tid > self.tid_max:
                self.rewriter.drop(seq)
                pic = descriptor.picture_id
                if pic is not None and pic != self.pic_last_drop:
                    self.pic_offset = (self.pic_offset - 1) % vp8.PICTURE_ID_MOD
                    self.pic_last_drop = pic
                self.skipped_temporal += 1
                return False
        mapped = self.rewriter.rewrite(seq, timestamp, now)
        if mapped is None:
            return False
        out_seq, out_ts = mapped
        if descriptor is not None:
            payload = self._rewrite_vp8(payload, descriptor)
        second = (marker << 7) | pt
        header, level_at, time_at = self._core_templates[
            (audio_level is not None) | (send_time is not None) << 1
        ]
        _SECOND_SEQ_TS.pack_into(header, 1, second, out_seq, out_ts)
        if level_at >= 0:
            header[level_at] = audio_level & 0x7F  # type: ignore[operator]
        if time_at >= 0:
            _U24.pack_into(header, time_at, (send_time >> 8) & 0xFFFF, send_time & 0xFF)  # type: ignore[operator]
        if self._core_history:
            self._core_history[out_seq % VIDEO_HISTORY] = (out_seq, out_ts, second, payload)
        if self._core_push is None:
            return False
        self._core_push(header, payload, self.video, self)
        self.forwarded += 1
        return True

    def _rewrite_vp8(self, payload: bytes, descriptor: vp8.Descriptor) -> bytes:
        """The payload with its picture id and TL0PICIDX on this slot's continuous numbering."""
        pic_in, tl0_in = descriptor.picture_id, descriptor.tl0picidx
        pic_out = tl0_out = None
        if pic_in is not None:
            fresh = self.pic_reset or not self.pic_started
            if fresh:
                start = (self.pic_last_out + 1) if self.pic_started else pic_in
                self.pic_offset = (start - pic_in) % vp8.PICTURE_ID_MOD
                self.pic_reset, self.pic_started = False, True
            pic_out = (pic_in + self.pic_offset) % vp8.PICTURE_ID_MOD
            if fresh or (pic_out - self.pic_last_out) % vp8.PICTURE_ID_MOD < vp8.PICTURE_ID_MOD // 2:
                self.pic_last_out = pic_out
            if not descriptor.long_picture_id:
                pic_out &= 0x7F
        if tl0_in is not None:
            fresh = self.tl0_reset or not self.tl0_started
            if fresh:
                start = (self.tl0_last_out + 1) if self.tl0_started else tl0_in
                self.tl0_offset = (start - tl0_in) % vp8.TL0_MOD
                self.tl0_reset, self.tl0_started = False, True
            tl0_out = (tl0_in + self.tl0_offset) % vp8.TL0_MOD
            if fresh or (tl0_out - self.tl0_last_out) % vp8.TL0_MOD < vp8.TL0_MOD // 2:
                self.tl0_last_out = tl0_out
        if pic_out == pic_in and tl0_out == tl0_in:
            return payload
        return vp8.rewrite_descriptor(payload, descriptor, pic_out, tl0_out)


def fanout_py(
    sinks: list[Any],
    codec: str,
    seq: int,
    timestamp: int,
    marker: int,
    payload: bytes,
    keyframe: bool,
    audio_level: int | None,
    send_time: int | None,
    now: float,
    probe: Callable[[bool, float], None] | None,
) -> int:
    """Forward one incoming packet to every slot in ``sinks`` (the reference for ``_fastpath.fanout``)."""
    count = 0
    for sink in sinks:
        if sink.forward(codec, seq, timestamp, marker, payload, keyframe, audio_level, send_time, now):
            count += 1
            if probe is not None:
                probe(sink.video, time.monotonic() - now)
    return count


class _SlotCore(Protocol):
    """What SlotForwarder needs from its core (PySlotCore or _fastpath.Slot)."""

    video: int | bool
    waiting_keyframe: bool
    forwarded: int
    skipped_waiting_keyframe: int
    skipped_temporal: int
    tid_want: int
    tid_max: int
    out_seq: int
    out_ts: int
    started: bool

    def _core_setup(
        self, video: bool, clock_rate: float, payload_types: dict[str, int], templates: list[Any]
    ) -> None: ...
    def _core_connect(self, wire: object, push: Push) -> None: ...
    def restart(self) -> None: ...
    def rebase(self) -> None: ...
    def history_get(self, seq: int) -> tuple[int, int, int, bytes] | None: ...


class _SlotLogic:
    """One subscriber sender fed by one publisher stream at a time (everything but the per-packet path).

    A mixin: its attributes live in the concrete classes' ``__slots__`` (``_LOGIC_SLOTS``).
    """

    target: SlotTarget
    clock_rate: int
    downlink: DownlinkQueue
    on_keyframe_needed: Callable[[Any], None]
    source: object | None
    retransmitted: int
    stale_nacks: int
    padded: int
    _rtx_seq: int
    _templates: list[Template]

    def __init__(
        self,
        target: SlotTarget,
        clock_rate: int,
        downlink: DownlinkQueue,
        on_keyframe_needed: Callable[[Any], None] = lambda slot: None,
    ) -> None:
        super().__init__()  # the core's own state (PySlotCore; the C core set its own in tp_new)
        core: _SlotCore = self  # type: ignore[assignment]
        self.target = target
        self.clock_rate = clock_rate
        self.downlink = downlink
        self.on_keyframe_needed = on_keyframe_needed
        self.source = None
        self.retransmitted = 0
        self.stale_nacks = 0  # NACKed packets too old to send again (NACK_MAX_AGE)
        self.padded = 0  # bytes of probe padding queued (pad)
        self._rtx_seq = 0
        mid = target.mid.encode()
        ext_id = target.mid_ext_id
        mid_element = bytes([(ext_id << 4) | (len(mid) - 1)]) + mid if ext_id and 0 < len(mid) <= 16 else b""
        # Header templates by (has audio level) | (has send time) << 1.
        self._templates = [self._template(mid_element, bool(i & 1), bool(i & 2)) for i in range(4)]
        core._core_setup(
            target.kind == "video", clock_rate, dict(target.payload_types), list(self._templates)
        )
        core._core_connect(downlink.fast, downlink.push)

    def _template(self, mid_element: bytes, level: bool, send_time: bool) -> Template:
        """A 12-byte RTP header (our SSRC) and extension block whose variable bytes are patched."""
        body = bytearray(mid_element)
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

    @property
    def stats(self) -> ForwardStats:
        core: _SlotCore = self  # type: ignore[assignment]
        return ForwardStats(
            core.forwarded, self.retransmitted, core.skipped_waiting_keyframe, core.skipped_temporal
        )

    def switch(self, source: object | None) -> None:
        """Carry another source (or nothing); video waits for that source's next keyframe."""
        core: _SlotCore = self  # type: ignore[assignment]
        if source is self.source:
            return
        self.source = source
        core.restart()
        core.waiting_keyframe = bool(core.video)
        if source is not None and core.video:
            self.on_keyframe_needed(self)

    def switch_layer(self) -> None:
        """Carry another layer of the same source from its next keyframe (the caller asks for one)."""
        core: _SlotCore = self  # type: ignore[assignment]
        core.restart()
        core.rebase()
        core.waiting_keyframe = bool(core.video)

    def set_temporal(self, tid: int | None) -> None:
        """Forward VP8 temporal layers up to ``tid`` (None: all); see ``PySlotCore``."""
        core: _SlotCore = self  # type: ignore[assignment]
        core.tid_want = vp8.NO_TID if tid is None else max(0, min(tid, vp8.NO_TID))

    def lost_video(self, seq: int | None = None) -> None:
        """A queued packet was dropped: resume at the next keyframe so the decoder recovers.

        ``seq``: the outgoing sequence number of the dropped packet, when none after it went
        out (the queue drops the rest of this slot's packets with it): the next epoch then
        continues from it, so the receiver sees no gap. A gap the receiver never fills reads
        as loss in its next report, which after a pause failed the probe that resumed the tile.
        """
        core: _SlotCore = self  # type: ignore[assignment]
        if not core.waiting_keyframe:
            core.waiting_keyframe = True
            core.restart()
            if seq is not None:
                core.out_seq = (seq - 1) % SEQ_MOD
            self.on_keyframe_needed(self)

    def _extensions(self, send_time: int | None) -> bytes:
        header, _level_at, time_at = self._templates[(send_time is not None) << 1]
        header = bytearray(header)
        if time_at >= 0 and send_time is not None:
            _U24.pack_into(header, time_at, (send_time >> 8) & 0xFFFF, send_time & 0xFF)
        return bytes(header[12:])

    def retransmit(self, lost: list[int], send_time: int | None, rtt: float | None = None) -> int:
        """Queue the packets a subscriber NACKed that are still in the history (RTX if negotiated)
        and recent enough to be of use (``NACK_MAX_AGE``, or 3 × ``rtt`` if more)."""
        core: _SlotCore = self  # type: ignore[assignment]
        count = 0
        newest = core.out_ts
        horizon = max(NACK_MAX_AGE, 3 * rtt if rtt is not None else 0.0) * (self.clock_rate or 90000)
        ext = self._extensions(send_time)
        for seq in lost:
            entry = core.history_get(seq)
            if entry is None:
                continue
            out_seq, out_ts, second, payload = entry
            age = (newest - out_ts) % TS_MOD
            if horizon < age < TS_MOD // 2:  # too old (a later timestamp is a reordered newest)
                self.stale_nacks += 1
                continue
            rtx_pt = self.target.rtx_payload_types.get(second & 0x7F)
            if rtx_pt is not None:
                self._push_rtx(entry, rtx_pt, ext)
            else:
                header = _HEADER.pack(0x90 if ext else 0x80, second, out_seq, out_ts, self.target.ssrc) + ext
                self.downlink.push(header, payload, True)
            count += 1
        self.retransmitted += count
        return count

    def pad(self, size: int, send_time: int | None) -> int:
        """Probe padding: RTX copies of the latest packets sent, newest first, until ``size``
        bytes are queued (each at most once per call). The receiver drops them as duplicates,
        but its bandwidth estimator counts them: a probe raises what the link carries without
        switching the picture to a layer the link may not hold. 0 without RTX (or video)."""
        core: _SlotCore = self  # type: ignore[assignment]
        if not self.target.rtx_payload_types or not core.video or not core.started:
            return 0
        queued = 0
        newest = core.out_seq
        ext = self._extensions(send_time)
        for back in range(PAD_DEPTH):
            if queued >= size:
                break
            entry = core.history_get((newest - back) % SEQ_MOD)
            if entry is None:
                break
            rtx_pt = self.target.rtx_payload_types.get(entry[2] & 0x7F)
            if rtx_pt is None:
                break
            queued += self._push_rtx(entry, rtx_pt, ext)
        self.padded += queued
        return queued

    def _push_rtx(self, entry: tuple[int, int, int, bytes], rtx_pt: int, ext: bytes) -> int:
        """Queue a history entry again on the RTX stream (RFC 4588: its own sequence, the original
        sequence number before the payload); the bytes queued."""
        out_seq, out_ts, second, payload = entry
        self._rtx_seq = (self._rtx_seq + 1) % SEQ_MOD
        header = _HEADER.pack(
            0x90 if ext else 0x80, (second & 0x80) | rtx_pt, self._rtx_seq, out_ts, self.target.rtx_ssrc
        )
        self.downlink.push(header + ext, _U16.pack(out_seq) + payload, True)
        return len(header) + len(ext) + 2 + len(payload)


_LOGIC_SLOTS = (
    "target",
    "clock_rate",
    "downlink",
    "on_keyframe_needed",
    "source",
    "retransmitted",
    "stale_nacks",
    "padded",
    "_rtx_seq",
    "_templates",
)


class PySlotForwarder(_SlotLogic, PySlotCore):
    """A slot forwarder on the Python core (the fallback, and the reference in tests)."""

    __slots__ = _LOGIC_SLOTS


if _fastpath is not None:

    class NativeSlotForwarder(_SlotLogic, _fastpath.Slot):
        """A slot forwarder on the C core (``_fastpath.Slot``)."""

        __slots__ = _LOGIC_SLOTS


def implementation(native: bool) -> tuple[type[PySlotForwarder], Callable[..., int]]:
    """The slot class and fan-out to use: the C ones if asked for and built, else Python's."""
    if native and _fastpath is not None:
        return cast(type[PySlotForwarder], NativeSlotForwarder), _fastpath.fanout
    return PySlotForwarder, fanout_py


if TYPE_CHECKING:
    SlotForwarder = PySlotForwarder  # the same interface, whichever core
else:
    SlotForwarder = implementation(NATIVE)[0]
    """The forwarder class by default (an ``Sfu`` picks its own with ``implementation``)."""
