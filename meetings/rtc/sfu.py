"""The selective forwarding unit of one room on a media node.

One ``RTCPeerConnection`` per participant, always answering the participant's offer (so
renegotiation is client-driven and there is no glare). In the offer, every m-section the client
*sends* on is a publication (microphone, camera or screen share) and every m-section it
*receives* on is a slot: a sender that the SFU fills with whichever publication the selection
picks for that receiver (audio top-N, video last-N). ``StreamAssigned`` events tell signaling
"the stream on your mid X is now person Y". Does not import the room layer: rooms call this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from meetings.rtc import audio_codecs, internals, red, simulcast, vp8
from meetings.rtc import forwarder as fwd
from meetings.rtc.allocation import Allocator, LayerChoice, VideoDemand, ladder, wanted_layers
from meetings.rtc.allocation import Layer as AllocLayer
from meetings.rtc.estimate import (
    Estimator,
    PublisherRemb,
    RateMeter,
    UplinkMeter,
    ntp_middle32,
    round_trip,
)
from meetings.rtc.forwarder import (
    DownlinkQueue,
    KeyframeThrottle,
    SlotForwarder,
    SlotTarget,
    codec_key,
    is_keyframe,
)
from meetings.rtc.selection import (
    LevelWindow,
    VideoSource,
    assign_slots,
    audio_top_n,
    dominant_speaker,
    estimated_opus_level,
    loudness,
    note_speaker,
    speaking_order,
    video_last_n,
)

internals.check_internals()
internals.negotiate_stream_ids()

logger = logging.getLogger(__name__)
# The join phase by phase (docs/media.md, bench/join.py): the first time each phase happens for a
# participant, one DEBUG line here with ``participant``, ``phase`` and ``at`` (time.time()).
# Off unless this logger is enabled for DEBUG; nothing is recorded then.
join_log = logging.getLogger("meetings.rtc.join")

Kind = Literal["audio", "video"]
MAX_TILE_PX = 7680  # a tile wider or taller than an 8K screen is clamped
PACKET_OVERHEAD = 60  # bytes a forwarded packet costs beyond its payload (RTP, SRTP, UDP, IP)
AUDIO_DEFAULT_BPS = 50_000  # an audio stream not measured yet (Opus and its packet headers)
RED_PRIMARY_SHARE = 0.55  # what a RED stream costs stripped to its primary blocks (plus headers)
# Below this much room for video after redundant audio, audio goes lean: less than the lowest
# layer at its base frame rate. At 150 kbit/s it stripped RED under 15 % random loss, where RED
# is what keeps the audio (concealment 2 % → 13 % in the shaped-link test).
LEAN_ROOM = 60_000
LOSSY = 0.05  # a receiver losing this share or more keeps RED whatever its budget
LOSSY_MEMORY = 12.0  # seconds of reports that count for LOSSY (audio is reported every 5 s)
PACE_HOLD = 3.0  # a receiver stays paced this long after its link last limited it (s)
# A receiver whose estimate is below this stays paced with every tile on its top layer, at its
# link's own view of what it carries (the REMB) if that is more than the estimate: a 640×360
# keyframe (30-100 KB) sent at once overflows the queue of a link this narrow (a 1 Mbit/s link's
# 200 ms is 25 KB). Unpaced there, the top layer held 3-6 s, then a report said 80-88 % lost and
# the tile fell to 160×90 (bench weaklink, 1 Mbit/s, 2026-12-07 08:15 UTC). Paced at 1.1 × the
# estimate alone, a link with room was held below what its top layers send at their peaks
# (the estimate stops rising once nothing more is wanted), which three browser tests felt.
PACE_BELOW_BPS = 2_500_000
# Dynacast stops a layer only once the allocation has not wanted it for this long (s; LiveKit's
# dynacast pause delay is the same): a receiver stepping between two layers turned the publisher's
# top layer off and on every second, each restart a keyframe and the encoder ramping again (the
# publisher's 640×360 layer encoded at 1.9 fps, bench weaklink).
DYNACAST_HOLD = 5.0
Source = Literal["microphone", "camera", "screen"]
LAYER_TIMEOUT = 1.5  # a simulcast layer with no packet for this long is inactive (s)
BITRATE_WINDOW = 1.0  # each layer's bitrate is measured over this long (s)
# A simulcast layer that (re)started this recently costs what it used to, not what it measures:
# restarted (dynacast resumed it), its first second measured 1.6 Mbit/s (the keyframe) and the
# next 50 kbit/s (the encoder ramping up), and before any measurement it cost the allocation's
# flat default, so a 440 kbit/s probe put a 250 kbit/s link's receiver on 640×360 and off
# again within a second (bench weaklink, the drop profile's return).
LAYER_RAMP = 4.0
# What each simulcast layer costs before it was ever measured steadily: the page's maxBitrate
# per rid (web/static/js/room/call.js, CAMERA_LAYERS), lowest first.
LAYER_NOMINAL_BPS = (100_000, 300_000, 800_000)
TOP_LAYER = simulcast.MAX_LAYERS - 1


@dataclass(frozen=True)
class SfuConfig:
    """Tunables of the media plane (the room layer fills them from settings)."""

    audio_top_n: int = 3
    video_last_n: int = 6
    keyframe_interval: float = 0.5
    tick: float = 0.1
    level_window: float = 1.0
    hysteresis_db: float = 6.0
    speech_dbov: int = 60
    downlink_queue: int = 256
    # A receiver whose link limits what it gets (a slot below its best layer, a paused one, a
    # probe) is paced at this many times its estimate, counting each packet's UDP/IP/SRTP
    # bytes, audio first (``DownlinkQueue``): a keyframe's burst then spreads over the link
    # instead of overflowing its queue and taking audio with it, and what we send stays within
    # what the link carries (at 250 kbit/s, unpaced, the tbf queue dropped 10 % of every
    # packet, audio included). 0: never paced. Receivers with room are not paced (the C path
    # sends directly).
    pace_factor: float = 1.1
    # Each receiver gets the layers its bandwidth estimate and tile sizes allow (simulcast,
    # temporal layers, pause below the lowest; dynacast). False: every slot forwards the top
    # layer whatever the link, as before issue #16 (the benchmarks' baseline).
    adaptive: bool = True
    # A probe (the estimator trying a higher rate before a receiver's tile steps up) is filled
    # with padding, RTX copies of the latest video packets the receiver drops as duplicates but
    # its bandwidth estimator counts, and the tile steps up only once the probe held. False (or
    # a receiver without RTX): the step up itself is the probe, and a failed one flips the
    # picture up and down (bench weaklink: 160/320/640 within seconds after a link returned).
    probe_padding: bool = True
    # How often the allocation runs (s): every tick it took 15 % of a core at 60 endpoints
    # (bench simulcast); estimates step every 0.5 s anyway, and a drop is acted on within it.
    adapt_interval: float = 0.5
    # Where a simulcast publisher's own send estimate starts (kbit/s): enough for all its layers.
    publisher_start_kbps: int = 1000
    # The most a simulcast publisher is told it may send while its uplink shows no congestion.
    publisher_ceiling_bps: int = 1_500_000
    # STUN/TURN server URLs for the SFU's own gathering (plain strings: aiortc stays in rtc/).
    ice_servers: tuple[str, ...] = ()
    # Local addresses to gather host candidates on; None: every non-loopback interface (aioice).
    media_addresses: tuple[str, ...] | None = ("127.0.0.1",)
    # Public address announced in place of the host candidates' (1:1 NAT); "": as gathered.
    announced_address: str = ""
    # Forward in C (meetings/rtc/_fastpath) when it is built; False: the Python reference path.
    native: bool = fwd.NATIVE
    # A paced receiver's packets go straight out while its queue is empty and its pacer has room
    # (checked in C on the C path); False: all of them through the Python queue, as before
    # issue #18 item 4 (bench/sfu.py's "c-today" baseline).
    direct_paced: bool = True
    # What the answer asks of Opus publishers (meetings/rtc/audio_codecs.py, docs/media.md).
    opus_fec: bool = True
    opus_dtx: bool = True
    audio_red: bool = True
    # A receiver's video slots ask their publishers for a keyframe once its connection is up (ICE
    # and DTLS): one asked for earlier reaches the SFU before the receiver can take it and is lost,
    # and the next waits out the keyframe throttle (docs/media.md, the join phase by phase).
    # False: asked the moment the slot is assigned, as before issue #18 (bench/join.py's baseline).
    keyframe_when_connected: bool = True
    # A receiver whose feedback (RTCP: reports, NACK, PLI, REMB) resumes after this long a silence
    # was cut off (its network dropped and came back, its peer connection kept): its video slots
    # ask for keyframes at once. Without them its decoder waited ~1.8 s, NACKing the gap first.
    # 0: never (as before issue #18).
    resume_silence: float = 2.0


@dataclass(frozen=True)
class TrackPublished:
    participant: str
    mid: str
    kind: Kind
    source: Source


@dataclass(frozen=True)
class TrackUnpublished:
    participant: str
    mid: str
    kind: Kind


@dataclass(frozen=True)
class StreamAssigned:
    """Stream ``mid`` on ``subscriber``'s connection now carries ``publisher``'s ``publisher_mid``."""

    subscriber: str
    mid: str
    kind: Kind
    publisher: str | None
    publisher_mid: str | None
    source: Source | None


@dataclass(frozen=True)
class DominantSpeakerChanged:
    participant: str | None


@dataclass(frozen=True)
class ConnectionStateChanged:
    participant: str
    state: str


@dataclass(frozen=True)
class LayerChanged:
    """What ``subscriber``'s video slot ``mid`` now receives of the publication it carries.

    ``spatial`` counts from 0 (the lowest simulcast layer; 0 too for a single-layer stream),
    ``temporal`` is the highest VP8 temporal layer forwarded (None: all of them). ``paused``:
    the subscriber's downlink cannot carry even the lowest layer, so the slot sends nothing
    until it can (audio goes on); the page shows "Đường truyền yếu — tạm dừng hình".
    """

    subscriber: str
    mid: str
    spatial: int | None
    temporal: int | None
    width: int | None
    height: int | None
    paused: bool


@dataclass(frozen=True)
class LayersWanted:
    """The simulcast layers (by rid) of ``participant``'s ``mid`` that some receiver gets.

    The publisher stops encoding the others (dynacast) and starts them again when listed.
    """

    participant: str
    mid: str
    rids: tuple[str, ...]


@dataclass(frozen=True)
class LinkEstimate:
    """The SFU's current view of one participant's connection (sent when it changes noticeably).

    ``downlink_bps``: what the forwarding unit may send it (bandwidth estimate); ``uplink_bps``:
    what its publications currently bring in; ``loss`` in percent of packets (receiver reports);
    ``rtt_ms``: round trip from sender/receiver reports. None: not known yet. The loss is the
    worse of its receiver reports (what we send it) and our own receive statistics (what it
    sends us). Sent at most once a second per participant, when the downlink estimate moves
    by more than 10 % (the uplink by more than 25 %) or the loss crosses 2 % or 10 %.
    """

    participant: str
    downlink_bps: int | None
    uplink_bps: int | None
    loss: float | None
    rtt_ms: int | None


@dataclass(frozen=True)
class ParticipantCounters:
    """Running totals of one connection, for the per-room metrics (they vanish with it).

    ``forwarded``: packets forwarded to its slots; ``sent_bytes``: bytes its downlink sent;
    ``received``: packets its publications brought in; ``received_bytes``: their payload bytes.
    """

    forwarded: int
    sent_bytes: int
    received: int
    received_bytes: int


SfuEvent = (
    TrackPublished
    | TrackUnpublished
    | StreamAssigned
    | DominantSpeakerChanged
    | ConnectionStateChanged
    | LayerChanged
    | LayersWanted
    | LinkEstimate
)


class UnknownParticipant(KeyError):
    """No participant with this id is connected to this SFU."""


class _IdleTrack(MediaStreamTrack):
    """Parks aiortc's sender loop: its recv() never returns, so no encoder is ever created."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> object:  # type: ignore[override]
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


def announce_address(sdp: str, address: str) -> str:
    """The SDP with each host candidate's address, and connection lines naming one, set to `address`.

    What Janus's nat_1_1_mapping and mediasoup's announcedAddress do: behind a 1:1 NAT the
    server gathers on its private address and tells the peer the public one (ports unchanged).
    """
    family = "IP6" if ":" in address else "IP4"
    hosts: set[str] = set()
    lines = sdp.split("\r\n")
    for i, line in enumerate(lines):
        parts = line.split(" ")
        if line.startswith("a=candidate:") and len(parts) >= 8 and parts[6:8] == ["typ", "host"]:
            hosts.add(parts[4])
            parts[4] = address
            lines[i] = " ".join(parts)
    for i, line in enumerate(lines):
        parts = line.split(" ")
        if line.startswith("c=IN ") and len(parts) == 3 and parts[2] in hosts:
            lines[i] = f"c=IN {family} {address}"
    return "\r\n".join(lines)


def offered_media(sdp: str) -> list[tuple[str, str, str]]:
    """(mid, kind, direction) of each audio/video m-section of an SDP, in order."""
    result: list[tuple[str, str, str]] = []
    for section in sdp.split("\nm=")[1:]:
        lines = [line.strip() for line in section.splitlines()]
        kind = lines[0].split(" ", 1)[0]
        if kind not in ("audio", "video"):
            continue
        mid, direction = "", "sendrecv"
        for line in lines[1:]:
            if line.startswith("a=mid:"):
                mid = line[6:]
            elif line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive") and line.startswith("a="):
                direction = line[2:]
        result.append((mid, kind, direction))
    return result


def _link_changed(last: LinkEstimate, now: LinkEstimate) -> bool:
    """Whether a participant's link moved enough to tell the room (see ``LinkEstimate``)."""

    def moved(a: int | None, b: int | None, share: float) -> bool:
        if a is None or b is None:
            return a != b
        return abs(b - a) > share * max(a, 1)

    def band(loss: float | None) -> int:
        return -1 if loss is None else (0 if loss < 2 else 1 if loss <= 10 else 2)

    return (
        moved(last.downlink_bps, now.downlink_bps, 0.10)
        or moved(last.uplink_bps, now.uplink_bps, 0.25)
        or band(last.loss) != band(now.loss)
        or (last.rtt_ms is None) != (now.rtt_ms is None)
    )


@dataclass(frozen=True)
class LayerInfo:
    """What the SFU measures of one layer of a publication (for the allocation policy).

    ``spatial``: index, 0 = lowest; ``rid``: None for a single-layer stream; ``bitrate_bps``
    over the last ~1 s (None before the first second); ``width``/``height`` from its latest VP8
    keyframe; ``active``: a packet arrived within ``LAYER_TIMEOUT``.
    """

    spatial: int
    rid: str | None
    ssrc: int | None
    bitrate_bps: int | None
    width: int | None
    height: int | None
    active: bool
    last_keyframe: float | None  # time.monotonic() of the latest keyframe


@dataclass(eq=False)
class Layer:
    """One simulcast layer of a publication (or its only stream), and the slots it feeds."""

    spatial: int
    rid: str | None
    throttle: KeyframeThrottle
    ssrc: int | None = None
    sinks: list[SlotForwarder] = field(default_factory=list)
    pending: list[_Slot] = field(default_factory=list)  # slots that move here at its next keyframe
    window_bytes: int = 0
    window_start: float = 0.0
    bitrate_bps: int | None = None
    last_packet: float | None = None
    last_keyframe: float | None = None
    width: int | None = None
    height: int | None = None
    active: bool = False
    active_since: float = 0.0  # when it last started arriving
    steady_bps: int = 0  # its rate once past LAYER_RAMP (smoothed); kept while it is stopped

    def cost(self, now: float) -> int:
        """What forwarding it costs, for the allocation (0: unknown): its smoothed rate, not the
        last second's. At a few frames a second one keyframe doubles a second's reading (the
        top layer read 470, 1,285, 331 and 748 kbit/s in consecutive seconds, bench weaklink),
        and the allocation, reading each, moved the tile down and up every second."""
        if now - self.active_since < LAYER_RAMP:
            return self.steady_bps or LAYER_NOMINAL_BPS[min(self.spatial, len(LAYER_NOMINAL_BPS) - 1)]
        return self.steady_bps or self.bitrate_bps or 0

    def info(self) -> LayerInfo:
        return LayerInfo(
            self.spatial,
            self.rid,
            self.ssrc,
            self.bitrate_bps,
            self.width,
            self.height,
            self.active,
            self.last_keyframe,
        )


def red_receivers(
    sinks: list[SlotForwarder], opus_pt: int, lean: Container[DownlinkQueue] = ()
) -> tuple[list[SlotForwarder], list[SlotForwarder]]:
    """Split the slots fed a RED packet whose blocks are Opus on ``opus_pt``: those that take it
    as it is (RED negotiated, and Opus on the same payload type, since the blocks name it), and
    those that get its primary block as plain Opus: the others, and the receivers (by their
    downlink queue) in ``lean``, whose budget is too tight to pay for audio twice."""
    whole: list[SlotForwarder] = []
    plain: list[SlotForwarder] = []
    for sink in sinks:
        types = sink.target.payload_types
        redundant = red.RED_KEY in types and types.get("OPUS") == opus_pt and sink.downlink not in lean
        (whole if redundant else plain).append(sink)
    return whole, plain


@dataclass(eq=False)
class Publication:
    """A track a participant sends to the SFU."""

    participant: str
    mid: str
    kind: Kind
    source: Source
    transceiver: RTCRtpTransceiver
    throttle: KeyframeThrottle
    levels: LevelWindow
    active: bool = True
    muted: bool = False
    media_ssrc: int | None = None
    sinks: list[SlotForwarder] = field(default_factory=list)
    received: int = 0
    keys: dict[int, str] = field(default_factory=dict)
    negotiated: frozenset[str] = frozenset()  # codec keys of its transceiver (not RTX)
    sending: str | None = None  # the codec key of the latest packet
    forwarded: int = 0  # packets sent on to subscriber slots (one per slot)
    octets: int = 0  # payload bytes received
    rate: RateMeter = field(default_factory=lambda: RateMeter(2.0))  # bits/s incl. PACKET_OVERHEAD
    layers: list[Layer] = field(default_factory=list)  # lowest first; one for a single-layer stream
    temporal: bool = False  # its VP8 keyframes carry a temporal layer index (L1T3)
    by_ssrc: dict[int, Layer] = field(default_factory=dict)
    wanted_rids: tuple[str, ...] | None = None  # what LayersWanted last said
    wanted_at: dict[str, float] = field(default_factory=dict)  # rid -> the allocation last wanted it
    unknown_ssrcs: set[int] = field(default_factory=set)  # logged once each
    # What the allocation last saw of it (Sfu._publication_demand): the same objects while unchanged.
    seen: tuple[str, tuple[AllocLayer, ...], int, bool, int] | None = None

    @property
    def simulcast(self) -> bool:
        return len(self.layers) > 1 or (bool(self.layers) and self.layers[0].rid is not None)

    red_dropped: dict[str, int] = field(default_factory=dict)  # malformed RED packets, by reason
    opus_payload_types: frozenset[int] = frozenset()  # what a RED primary block may carry

    def decodable_by(self, accepts: frozenset[str]) -> bool:
        """Whether a receiver that negotiated ``accepts`` can take this stream."""
        return self.sending in accepts if self.sending is not None else bool(self.negotiated & accepts)


@dataclass(eq=False)
class _Slot:
    mid: str
    kind: Kind
    transceiver: RTCRtpTransceiver
    forwarder: SlotForwarder
    publication: Publication | None = None
    layer: Layer | None = None  # the layer forwarded now (None: nothing, or paused)
    pending: Layer | None = None  # the layer it switches to at that layer's next keyframe
    want_spatial: int | None = TOP_LAYER  # set_layer's spatial (None: paused)
    want_temporal: int | None = None
    reported: tuple[int | None, int | None, bool] | None = None  # the last LayerChanged sent
    receiver: str = ""  # the participant this slot sends to
    demand: VideoDemand | None = None  # its latest demand (Sfu._slot_demand): kept while unchanged


# A padded probe asks this much more than the step up it is for: the tile steps up only after
# the probe (1.5 s later), by then its layers measure up to ~10 % more or less than when the
# probe was chosen, and a probe that fell short by 2 % took another probe (bench weaklink: five
# probes of 5 % each for one temporal layer).
PAD_MARGIN = 1.15


def _probe_target(target: int, limit: int, padded: bool) -> int:
    """What a probe for ``target`` asks (see PAD_MARGIN), at most ``limit``."""
    return max(target, min(int(target * PAD_MARGIN), limit)) if padded else target


def publication_layers(pub: Publication, now: float | None = None) -> tuple[AllocLayer, ...]:
    """The layers of a publication as the allocation sees them, lowest first.

    A simulcast publication has one per rid, each with its cost (``Layer.cost``: its measured
    bitrate, or while it ramps up what it cost before) and the size of its latest keyframe; a
    single-layer one, one layer with the rate the publication brings in. A muted or unpublished
    stream has no active layer.
    """
    now = time.monotonic() if now is None else now
    on = pub.active and not pub.muted
    if not pub.simulcast:
        layer = pub.layers[0] if pub.layers else None
        size = (layer.width, layer.height) if layer is not None else (None, None)
        return (AllocLayer(0, None, pub.rate.bps, size[0], size[1], active=on),)
    return tuple(
        AllocLayer(
            layer.spatial,
            layer.rid,
            layer.cost(now),
            layer.width,
            layer.height,
            active=on and layer.active,
        )
        for layer in pub.layers
    )


def publication_temporal_layers(pub: Publication) -> int:
    """How many VP8 temporal layers the publication's stream carries (1: none seen).

    The page encodes L1T3 where Chromium offers it: a keyframe that carries a temporal layer
    index (T bit) tells this publication has three.
    """
    return 3 if pub.temporal else 1


class _SlotFeedback(internals.SenderFeedback):
    def __init__(self, sfu: Sfu, slot: _Slot, entry: _Participant) -> None:
        self._sfu = sfu
        self._slot = slot
        self._entry = entry

    async def on_nack(self, lost: list[int]) -> None:
        self._sfu._heard(self._entry)
        self._slot.forwarder.retransmit(lost, internals.abs_send_time(), self._entry.estimator.rtt)

    async def on_keyframe_request(self) -> None:
        self._sfu._heard(self._entry)
        self._sfu._keyframe_for_slot(self._slot)

    async def on_remb(self, bitrate: int) -> None:
        self._sfu._heard(self._entry)
        self._sfu._remb(self._slot, bitrate)

    async def on_receiver_report(self, fraction_lost: int, jitter: int, lsr: int, dlsr: int) -> None:
        self._sfu._heard(self._entry)
        rtt = round_trip(ntp_middle32(internals.ntp_now()), lsr, dlsr)
        clock_rate = self._slot.forwarder.clock_rate or 90000
        self._entry.estimator.on_receiver_report(
            time.monotonic(), self._slot.mid, fraction_lost, jitter / clock_rate, rtt
        )


@dataclass(eq=False)
class _Participant:
    id: str
    pc: RTCPeerConnection
    downlink: DownlinkQueue
    publications: dict[str, Publication] = field(default_factory=dict)
    slots: dict[str, _Slot] = field(default_factory=dict)
    downlink_estimate: int | None = None
    # Rendered size (CSS px × devicePixelRatio) of the tile showing each video slot, by mid.
    tiles: dict[str, tuple[int, int]] = field(default_factory=dict)
    wire: internals.RtpWire | None = None
    next_report: float = 0.0  # when this connection's next compound sender report is due
    estimator: Estimator = field(default_factory=Estimator)  # its downlink
    uplink: UplinkMeter = field(default_factory=UplinkMeter)  # what its publications bring in
    allocator: Allocator = field(default_factory=Allocator)
    link_reported: LinkEstimate | None = None
    link_reported_at: float = -1e9
    probe_checked: float = -1e9  # when allocations() last looked for a probe target
    padding: bool = False  # its estimator's probe under way is filled with padding (Sfu._pad)
    pad_mark: tuple[float, int] = (0.0, 0)  # (when, downlink bytes sent) as the padded probe began
    limited_at: float = -1e9  # when its link last limited what it gets (see Sfu._pace)
    cuts_seen: int = 0  # its estimator's cuts the allocation has acted on
    lean_audio: bool = False  # its budget is tight: RED publications reach it as plain Opus
    parked: dict[str, _Slot] = field(default_factory=dict)  # slots of m-sections gone inactive
    heard_at: float | None = None  # when its last RTCP feedback about our senders came
    resumes: int = 0  # how often its feedback came back after a silence (Sfu._heard)


class Sfu:
    """Forwards media between the participants of one room, without decoding any of it."""

    def __init__(
        self, config: SfuConfig | None = None, on_event: Callable[[SfuEvent], None] | None = None
    ) -> None:
        self.config = config or SfuConfig()
        self._on_event = on_event
        self._participants: dict[str, _Participant] = {}
        self._dominant: str | None = None
        self._recent: list[str] = []
        self._pinned: set[str] = set()
        # The selection is recomputed when one of its inputs changes, not every tick (_select):
        # a join, leave, mute, pin, publication or slot (_reselect), the dominant speaker, the
        # sets of loudest speakers receivers' audio depends on, or a video's codec.
        self._selection_stale = True
        self._selecting = False
        self._mics: list[tuple[str, Publication]] = []  # active unmuted microphones, scored each tick
        self._microphones: dict[str, Publication] = {}  # each participant's first of them
        self._cameras: list[VideoSource] = []  # active unmuted videos, in publication order
        self._videos: dict[str, Publication] = {}  # by VideoSource.key
        self._audio_sizes: tuple[int, ...] = ()  # the audio top-N sizes receivers use
        self._speaking: tuple[frozenset[str], ...] = ()  # speaking_order at the last recomputation
        self._sending: tuple[str | None, ...] = ()  # each video's codec then
        self.selection_checks = 0  # ticks' checks for a changed input
        self.selections = 0  # recomputations of who gets what
        self._tick_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._native = self.config.native and fwd.NATIVE_AVAILABLE
        self._slot_class, self._fanout = fwd.implementation(self._native)
        self.keyframe_requests = 0
        self._keyframe_sweep = 0.0
        self._demands: dict[str, list[VideoDemand]] = {}  # per receiver, from allocations()
        self._lean_audio: set[DownlinkQueue] = set()  # receivers sent RED as plain Opus
        self._adapted_at = -1e9  # when _adapt last ran the allocation
        # Benchmarks set this to sample the time from a packet's arrival to its send, per sink.
        self.delay_probe: Callable[[bool, float], None] | None = None
        self._phases: dict[str, set[str]] = {}  # join phases logged so far, by participant

    # --- API for the signaling layer ----------------------------------------------------

    async def join(self, participant: str, offer: str, sources: Mapping[str, Source] | None = None) -> str:
        """Connect a participant from its SDP offer; returns the SFU's SDP answer."""
        if self._closed:
            raise RuntimeError("the SFU is closed")
        if participant in self._participants:
            await self.leave(participant)
        pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[RTCIceServer(urls=url) for url in self.config.ice_servers],
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        entry = _Participant(
            participant,
            pc,
            DownlinkQueue(
                self._no_transport,
                limit=self.config.downlink_queue,
                native=self._native,
                direct_paced=self.config.direct_paced,
            ),
        )
        entry.estimator.name = participant
        self._participants[participant] = entry
        self._phases[participant] = set()
        self._phase(participant, "offer")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self._phase(participant, "dtls-connected")
                if self.config.keyframe_when_connected and self._participants.get(participant) is entry:
                    for slot in entry.slots.values():
                        if slot.kind == "video" and (
                            slot.forwarder.waiting_keyframe or slot.pending is not None
                        ):
                            self._keyframe_for_slot(slot)
            self._emit(ConnectionStateChanged(participant, pc.connectionState))

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            if pc.iceConnectionState in ("connected", "completed"):
                self._phase(participant, "ice-connected")

        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._tick_loop())
        answer = await self._negotiate(entry, RTCSessionDescription(sdp=offer, type="offer"), sources or {})
        self._phase(participant, "answer")
        return answer.sdp

    async def renegotiate(
        self, participant: str, offer: str, sources: Mapping[str, Source] | None = None
    ) -> str:
        """Apply a new SDP offer (track added or removed, screen share); returns the SDP answer."""
        offered = RTCSessionDescription(sdp=offer, type="offer")
        return (await self._negotiate(self._get(participant), offered, sources or {})).sdp

    async def add_ice_candidate(
        self, participant: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """A trickled remote candidate line, "candidate:…" as the browser sends it; "" ends the
        trickle (the SFU's own candidates are all in its answer)."""
        parsed: RTCIceCandidate | None = None
        if candidate:
            parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
            parsed.sdpMid = sdp_mid
            parsed.sdpMLineIndex = sdp_mline_index
        await self._get(participant).pc.addIceCandidate(parsed)

    def set_muted(self, participant: str, kind: Kind, muted: bool) -> None:
        """Stop (or resume) forwarding a participant's audio or video; takes effect at once."""
        for pub in self._get(participant).publications.values():
            if pub.kind == kind and (kind == "audio" or pub.source != "screen"):
                pub.muted = muted
                if muted:
                    pub.levels.samples.clear()
        self._reselect()

    def set_screen_muted(self, participant: str, muted: bool) -> None:
        for pub in self._get(participant).publications.values():
            if pub.source == "screen":
                pub.muted = muted
        self._reselect()

    def set_pinned(self, participants: set[str]) -> None:
        """Participants whose video every receiver gets first (the chair)."""
        self._pinned = set(participants)
        self._reselect()

    def set_tile_sizes(self, participant: str, sizes: Mapping[str, tuple[int, int]]) -> None:
        """How large ``participant``'s page shows each of its video slots (by mid), in pixels.

        Unknown mids are ignored and sizes clamped to 0..MAX_TILE_PX (each refusal logged): the
        allocation never gives a tile a layer larger than it shows.
        """
        entry = self._get(participant)
        tiles: dict[str, tuple[int, int]] = {}
        for mid, (width, height) in sizes.items():
            slot = entry.slots.get(mid)
            if slot is None or slot.kind != "video":
                logger.info("tile size for %s ignored: %r is not one of its video slots", participant, mid)
                continue
            clamped = (min(max(width, 0), MAX_TILE_PX), min(max(height, 0), MAX_TILE_PX))
            if clamped != (width, height):
                logger.info("tile %sx%s of %s/%s clamped to %s", width, height, participant, mid, clamped)
            tiles[mid] = clamped
        entry.tiles = tiles

    def set_layer(self, subscriber: str, mid: str, spatial: int | None, temporal: int | None = None) -> None:
        """Which layer of its publication ``subscriber``'s video slot ``mid`` should forward.

        ``spatial``: simulcast layer index, 0 = lowest (clamped to the layers the publication
        has; a layer that stopped arriving is replaced by the nearest active one, lower first);
        None pauses the slot (no video at all; its LayerChanged says ``paused``). ``temporal``:
        the highest VP8 temporal layer to forward (0 = base only), None = all. Holds for the
        slot whatever publication it carries later. A spatial change takes effect at the target
        layer's next keyframe (asked for at once, throttled per layer), a temporal one at the
        next frame (down) or layer-sync frame (up); ``LayerChanged`` follows the spatial switch.
        Unknown or non-video mids are ignored (logged); ``UnknownParticipant`` for a subscriber
        not connected.
        """
        entry = self._get(subscriber)
        slot = entry.slots.get(mid)
        if slot is None or slot.kind != "video":
            logger.info("layer for %s ignored: %r is not one of its video slots", subscriber, mid)
            return
        if spatial is not None and not 0 <= spatial <= TOP_LAYER:
            logger.info("spatial layer %s for %s/%s clamped", spatial, subscriber, mid)
            spatial = min(max(spatial, 0), TOP_LAYER)
        if temporal is not None and not 0 <= temporal <= 2:
            logger.info("temporal layer %s for %s/%s clamped", temporal, subscriber, mid)
            temporal = min(max(temporal, 0), 2)
        temporal_changed = temporal != slot.want_temporal
        slot.want_spatial, slot.want_temporal = spatial, temporal
        slot.forwarder.set_temporal(temporal)
        self._retarget(entry, slot)
        if temporal_changed and slot.layer is not None and slot.pending is None:
            self._report_layer(entry, slot)
        self._update_wanted(slot.publication)

    def layers(self, participant: str) -> dict[str, tuple[LayerInfo, ...]]:
        """The layers of each of ``participant``'s video publications (by mid), lowest first."""
        return {
            mid: tuple(layer.info() for layer in pub.layers)
            for mid, pub in self._get(participant).publications.items()
            if pub.kind == "video" and pub.active
        }

    def forwarded_layer(self, subscriber: str, mid: str) -> int | None:
        """The spatial layer ``subscriber``'s slot ``mid`` forwards now (None: none or paused)."""
        slot = self._get(subscriber).slots.get(mid)
        return slot.layer.spatial if slot is not None and slot.layer is not None else None

    def forwarded(self) -> dict[str, int]:
        """Packets forwarded so far per publication (``"participant/mid"``), one per receiving slot."""
        return {
            f"{p.id}/{pub.mid}": pub.forwarded
            for p in self._participants.values()
            for pub in p.publications.values()
        }

    def streams(self) -> dict[str, tuple[str, Kind, Source]]:
        """Every publication as ``"participant/mid" -> (participant, kind, source)``."""
        return {
            f"{p.id}/{pub.mid}": (p.id, pub.kind, pub.source)
            for p in self._participants.values()
            for pub in p.publications.values()
            if pub.active
        }

    def assignments(self, participant: str) -> dict[str, tuple[str, str] | None]:
        """What each slot (by mid) of ``participant``'s connection carries: (publisher, mid)."""
        return {
            mid: (slot.publication.participant, slot.publication.mid) if slot.publication else None
            for mid, slot in self._get(participant).slots.items()
        }

    @property
    def dominant_speaker(self) -> str | None:
        return self._dominant

    def participants(self) -> list[str]:
        """Ids of the connected participants."""
        return list(self._participants)

    def peer_connection(self, participant: str) -> RTCPeerConnection:
        return self._get(participant).pc

    def stats(self) -> dict[str, int]:
        """Counters for metrics: forwarded, retransmitted, dropped packets, keyframe requests."""
        totals = {"forwarded": 0, "retransmitted": 0, "dropped_video": 0, "received": 0}
        totals["sent"] = 0
        totals["dropped_red"] = 0
        for p in self._participants.values():
            totals["sent"] += p.downlink.sent_packets
            totals["dropped_video"] += p.downlink.dropped_video
            for slot in p.slots.values():
                totals["forwarded"] += slot.forwarder.forwarded
                totals["retransmitted"] += slot.forwarder.retransmitted
            for pub in p.publications.values():
                totals["received"] += pub.received
                totals["dropped_red"] += sum(pub.red_dropped.values())
        totals["keyframe_requests"] = self.keyframe_requests
        return totals

    def counters(self) -> dict[str, ParticipantCounters]:
        """Each connection's running totals (the monitoring's metrics take their increments)."""
        return {
            p.id: ParticipantCounters(
                forwarded=sum(slot.forwarder.forwarded for slot in p.slots.values()),
                sent_bytes=p.downlink.sent_bytes,
                received=sum(pub.received for pub in p.publications.values()),
                received_bytes=sum(pub.octets for pub in p.publications.values()),
            )
            for p in self._participants.values()
        }

    def below_wanted(self, participant: str) -> bool:
        """Whether its link keeps one of its video slots below the best layer its tiles ask for."""
        entry = self._participants.get(participant)
        if entry is None:
            return False
        choices = entry.allocator.choices
        for video in self._demands.get(participant, ()):
            rungs = ladder(video)
            choice = choices.get(video.mid)
            if rungs and choice is not None and choice != rungs[-1]:
                return True
        return False

    async def leave(self, participant: str) -> None:
        """Disconnect a participant and release everything it held (safe if already gone)."""
        entry = self._participants.pop(participant, None)
        self._demands.pop(participant, None)
        self._phases.pop(participant, None)
        if entry is None:
            return
        entry.downlink.close()
        self._lean_audio.discard(entry.downlink)
        for slot in entry.slots.values():
            self._assign(entry, slot, None, emit=False)
        for pub in entry.publications.values():
            for sink in list(pub.sinks):
                for other in self._participants.values():
                    for slot in other.slots.values():
                        if slot.forwarder is sink:
                            self._assign(other, slot, None)
            if pub.active:
                self._emit(TrackUnpublished(participant, pub.mid, pub.kind))
        self._recent = [p for p in self._recent if p != participant]
        self._pinned.discard(participant)
        if self._dominant == participant:
            self._dominant = None
            self._emit(DominantSpeakerChanged(None))
        # Before the connection's close, which awaits: the slots emptied above are filled now,
        # not after it (a tick meanwhile saw no change and left them empty; a full recomputation
        # would have filled them, as the selection-on-change test found under load in CI).
        self._reselect()
        await entry.pc.close()

    async def close(self) -> None:
        """Disconnect everybody and stop; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        for participant in list(self._participants):
            await self.leave(participant)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- negotiation ----------------------------------------------------------------------

    async def _negotiate(
        self, entry: _Participant, offer: RTCSessionDescription, sources: Mapping[str, Source]
    ) -> RTCSessionDescription:
        pc = entry.pc
        # Recomputed at the end; should the negotiation fail half-way, at the next tick.
        self._selection_stale = True
        await pc.setRemoteDescription(offer)
        offered = {mid: (kind, direction) for mid, kind, direction in offered_media(offer.sdp)}
        layered = simulcast.offered_layers(offer.sdp)
        red_offers = audio_codecs.offered_red(offer.sdp) if self.config.audio_red else {}
        for transceiver in pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid not in offered:
                continue
            kind_name, direction = offered[mid]
            kind: Kind = "audio" if kind_name == "audio" else "video"
            if kind == "audio":  # FEC and DTX asked of Opus senders, RED where offered
                codecs = audio_codecs.answer_codecs(
                    internals.transceiver_codecs(transceiver),
                    red_offers.get(mid),
                    fec=self.config.opus_fec,
                    dtx=self.config.opus_dtx,
                )
                internals.set_transceiver_codecs(transceiver, codecs)
            sends = direction in ("sendrecv", "sendonly")
            receives = direction in ("sendrecv", "recvonly")
            rids = layered.get(mid, ()) if kind == "video" and sends else ()
            self._update_publication(entry, transceiver, mid, kind, sends, sources.get(mid), rids)
            self._update_slot(entry, transceiver, mid, kind, receives)
            transceiver.direction = {
                (True, True): "sendrecv",
                (True, False): "sendonly",
                (False, True): "recvonly",
                (False, False): "inactive",
            }[(receives, sends)]
        if self.config.media_addresses is not None:
            internals.gather_host_candidates_on(pc, self.config.media_addresses)
        await pc.setLocalDescription(await pc.createAnswer())
        transceivers = pc.getTransceivers()
        if transceivers:  # max-bundle: every transceiver shares the first one's transport
            transport = transceivers[0].sender.transport
            if entry.wire is None or entry.wire.transport is not transport:
                entry.wire = internals.rtp_wire(transport, entry.downlink.fast)
                internals.direct_rtp_receive(transport)  # media in without aiortc's queue and task
                entry.downlink.set_send(entry.wire.send)
        self._reselect()
        answer = pc.localDescription
        sdp = answer.sdp
        accepted = {
            mid: tuple(layer.rid for layer in pub.layers if layer.rid is not None)
            for mid, pub in entry.publications.items()
            if pub.active and pub.simulcast
        }
        if accepted:
            sdp = simulcast.answer_layers(sdp, accepted)
            sdp = simulcast.start_bitrate(sdp, set(accepted), self.config.publisher_start_kbps)
        if self.config.announced_address:
            sdp = announce_address(sdp, self.config.announced_address)
        if sdp is answer.sdp:
            return answer
        return RTCSessionDescription(sdp=sdp, type=answer.type)

    @staticmethod
    def _no_transport(header: bytes | bytearray, payload: bytes) -> None:
        raise ConnectionError("no transport yet")

    def _update_publication(
        self,
        entry: _Participant,
        transceiver: RTCRtpTransceiver,
        mid: str,
        kind: Kind,
        sends: bool,
        source: Source | None,
        rids: tuple[str, ...] = (),
    ) -> None:
        pub = entry.publications.get(mid)
        if sends and pub is None:
            pub = Publication(
                participant=entry.id,
                mid=mid,
                kind=kind,
                source=source or ("microphone" if kind == "audio" else "camera"),
                transceiver=transceiver,
                throttle=KeyframeThrottle(self.config.keyframe_interval),
                levels=LevelWindow(self.config.level_window),
            )
            entry.publications[mid] = pub
            self._set_layers(pub, rids)
            internals.tap_receiver(
                transceiver.receiver,
                self._packet_handler(pub),
                lambda rid: self._layer_ssrc(pub, rid),
                self._publisher_remb(pub) if kind == "video" else None,
            )
            self._emit(TrackPublished(entry.id, mid, kind, pub.source))
        elif pub is not None and sends != pub.active:
            pub.active = sends
            if sends:
                self._emit(TrackPublished(entry.id, mid, kind, pub.source))
            else:
                pub.levels.samples.clear()
                self._emit(TrackUnpublished(entry.id, mid, kind))
        elif pub is not None and sends and rids != tuple(x.rid for x in pub.layers if x.rid is not None):
            logger.info("%s/%s now sends layers %r", entry.id, mid, rids)
            self._set_layers(pub, rids)
        if pub is not None and source is not None:
            pub.source = source
        if pub is not None:
            pub.negotiated = frozenset(
                codec_key(c.name, dict(c.parameters))
                for c in internals.send_target(transceiver).codecs
                if c.name.lower() != "rtx"
            )
            pub.opus_payload_types = frozenset(
                c.payloadType
                for c in internals.send_target(transceiver).codecs
                if c.name.lower() == "opus" and c.payloadType is not None
            )

    def _update_slot(
        self, entry: _Participant, transceiver: RTCRtpTransceiver, mid: str, kind: Kind, receives: bool
    ) -> None:
        slot = entry.slots.get(mid)
        parked = entry.parked.pop(mid, None) if receives and slot is None else None
        if parked is not None and parked.transceiver is transceiver:
            # The same sender again (audio-only turned off): its forwarder goes on where it
            # stopped. A new one would restart the sequence numbers and picture ids from the
            # source's, behind what this receiver already had on that SSRC after a layer switch
            # (rewritten), and Chromium drops such "old" packets: the video never came back.
            entry.slots[mid] = parked
            parked.want_spatial, parked.want_temporal, parked.reported = TOP_LAYER, None, None
            parked.forwarder.set_temporal(None)
        elif receives and slot is None:
            transceiver.sender.replaceTrack(_IdleTrack(kind))
            target = internals.send_target(transceiver)
            payload_types: dict[str, int] = {}
            rtx: dict[int, int] = {}
            for codec in target.codecs:
                if codec.name.lower() == "rtx":
                    apt = codec.parameters.get("apt")
                    if isinstance(apt, int) and codec.payloadType is not None:
                        rtx[apt] = codec.payloadType
                elif codec.payloadType is not None:
                    payload_types.setdefault(codec_key(codec.name, dict(codec.parameters)), codec.payloadType)
            clock_rate = target.codecs[0].clockRate if target.codecs else 90000
            forwarder = self._slot_class(
                SlotTarget(
                    kind=kind,
                    mid=mid,
                    ssrc=target.ssrc,
                    rtx_ssrc=target.rtx_ssrc,
                    payload_types=payload_types,
                    rtx_payload_types=rtx,
                    mid_ext_id=target.mid_ext_id,
                    audio_level_ext_id=target.audio_level_ext_id,
                    abs_send_time_ext_id=target.abs_send_time_ext_id,
                ),
                clock_rate,
                entry.downlink,
                on_keyframe_needed=lambda f: self._keyframe_for_slot(created),
            )
            slot = created = entry.slots[mid] = _Slot(mid, kind, transceiver, forwarder, receiver=entry.id)
            internals.quiet_sender_rtcp(transceiver.sender)  # reports go out compound, from _maintain
            internals.tap_sender_rtcp(transceiver.sender, _SlotFeedback(self, slot, entry))
        elif not receives and slot is not None:
            self._assign(entry, slot, None)
            entry.parked[mid] = entry.slots.pop(mid)

    # --- forwarding ---------------------------------------------------------------------------

    def _packet_handler(self, pub: Publication) -> internals.RtpHandler:
        video = pub.kind == "video"
        by_ssrc = pub.by_ssrc

        def on_packet(packet: internals.RtpPacket, codec: RTCRtpCodecParameters) -> None:
            pub.received += 1
            pub.octets += len(packet.payload)
            ssrc = packet.ssrc
            layer = by_ssrc.get(ssrc)
            if layer is None:
                layer = self._new_ssrc(pub, packet)
                if layer is None:
                    return
            pub.media_ssrc = ssrc
            now = time.monotonic()
            payload = packet.payload
            layer.last_packet = now
            layer.window_bytes += len(payload) + PACKET_OVERHEAD  # what it costs a receiver's link
            if pub.muted or not pub.active:
                return
            if not video and codec.name.lower() == "red":
                self._forward_red(pub, layer, packet)
                return
            level = None
            if not video:
                level = internals.packet_audio_level(packet)
                if level is None and codec.name == "opus":
                    level = estimated_opus_level(payload)  # no RFC 6464 extension
                if level is not None:
                    pub.levels.add(now, level)
            key = pub.keys.get(packet.payload_type)
            if key is None:
                key = pub.keys[packet.payload_type] = codec_key(codec.name, dict(codec.parameters))
            pub.sending = key
            keyframe = video and is_keyframe(codec.name, payload)
            if keyframe:
                layer.last_keyframe = now
                if codec.name == "VP8":
                    size = vp8.keyframe_size(payload)
                    if size is not None:
                        layer.width, layer.height = size
                    if not pub.temporal:
                        descriptor = vp8.parse_descriptor(payload)
                        pub.temporal = descriptor is not None and descriptor.tid is not None
                if layer.pending:
                    self._complete_switches(layer)
            sinks = layer.sinks
            if not sinks:
                return
            send_time = internals.abs_send_time() if video else None
            seq, timestamp, marker = packet.sequence_number, packet.timestamp, packet.marker
            # One synchronous fan-out: rewrite, SRTP-protect and sendto per sink, no awaits
            # (in C when meetings/rtc/_fastpath is built).
            pub.forwarded += self._fanout(
                sinks, key, seq, timestamp, marker, payload, keyframe, level, send_time, now, self.delay_probe
            )

        return on_packet

    def _forward_red(self, pub: Publication, layer: Layer, packet: internals.RtpPacket) -> None:
        """A RED (RFC 2198) packet: as it is to the slots that negotiated RED with the same Opus
        payload type, its primary block as plain Opus to the others; the level from the RFC 6464
        extension or, without it, estimated from the primary (the Opus packet itself)."""
        primary = self._red_primary(pub, packet.payload)
        if primary is None:
            return
        now = time.monotonic()
        level = internals.packet_audio_level(packet)
        if level is None:
            level = estimated_opus_level(primary.data)  # no RFC 6464 extension
        pub.levels.add(now, level)
        pub.sending = red.RED_KEY
        if not layer.sinks:
            return
        whole, plain = red_receivers(layer.sinks, primary.payload_type, self._lean_audio)
        seq, timestamp, marker = packet.sequence_number, packet.timestamp, packet.marker
        if whole:
            args = (seq, timestamp, marker, packet.payload, False, level, None, now, self.delay_probe)
            pub.forwarded += self._fanout(whole, red.RED_KEY, *args)
        if plain and primary.data:
            args = (seq, timestamp, marker, primary.data, False, level, None, now, self.delay_probe)
            pub.forwarded += self._fanout(plain, "OPUS", *args)

    @staticmethod
    def _red_primary(pub: Publication, payload: bytes) -> red.RedBlock | None:
        """The primary (Opus) block of a RED packet; None (counted, logged once) if malformed."""
        try:
            block = red.primary(payload)
        except red.MalformedRed as error:
            reason = error.reason
        else:
            if block.payload_type in pub.opus_payload_types:
                return block
            reason = "primary block is not Opus"
        if reason not in pub.red_dropped:
            logger.info("RED packets of %s/%s dropped: %s", pub.participant, pub.mid, reason)
        pub.red_dropped[reason] = pub.red_dropped.get(reason, 0) + 1
        return None

    def _publisher_remb(self, pub: Publication) -> Callable[[int], int] | None:
        """What the REMB to a video publisher says (see ``estimate.PublisherRemb``); only for
        simulcast publications, when adaptation is on (single-layer ones: aiortc's estimate)."""
        if not self.config.adaptive:
            return None
        policy = PublisherRemb(self.config.publisher_ceiling_bps)

        def adjust(estimated: int) -> int:
            if not pub.simulcast:
                return estimated
            # aiortc counts payload bytes only; pub.rate adds PACKET_OVERHEAD per packet.
            payload_share = pub.octets / max(1, pub.octets + PACKET_OVERHEAD * pub.received)
            return policy.adjust(time.monotonic(), estimated, int(pub.rate.bps * payload_share))

        return adjust

    # --- layers -------------------------------------------------------------------------------

    def _set_layers(self, pub: Publication, rids: tuple[str, ...]) -> None:
        """(Re)build a publication's layers: one per rid, or a single one without rids."""
        carried = [slot for entry in self._participants.values() for slot in entry.slots.values()]
        carried = [slot for slot in carried if slot.publication is pub]
        for slot in carried:
            self._detach(slot)
        # A rid that stays keeps its layer (its SSRC above all: Chromium stops tagging a
        # stream's packets with its rid once it had a receiver report, so a rebuilt layer could
        # never learn its SSRC again and the camera stopped at the first renegotiation).
        kept = {layer.rid: layer for layer in pub.layers}
        layers: list[Layer] = []
        for i, rid in enumerate(rids or (None,)):
            layer = kept.get(rid) or Layer(i, rid, KeyframeThrottle(self.config.keyframe_interval))
            layer.spatial = i
            layer.sinks.clear()
            layer.pending.clear()
            layers.append(layer)
        pub.layers = layers
        pub.by_ssrc.clear()
        pub.by_ssrc.update({layer.ssrc: layer for layer in layers if layer.ssrc is not None})
        pub.wanted_rids = tuple(rids) or None
        for slot in carried:
            self._place(slot)

    def _new_ssrc(self, pub: Publication, packet: internals.RtpPacket) -> Layer | None:
        """The layer of a packet on an SSRC not seen yet: by its rid if simulcast, else the only one."""
        layer = pub.layers[0]
        if pub.simulcast:
            rid = packet.extensions.rtp_stream_id
            found = next((x for x in pub.layers if rid is not None and x.rid == rid), None)
            if found is None:
                if packet.ssrc not in pub.unknown_ssrcs and len(pub.unknown_ssrcs) < 64:
                    pub.unknown_ssrcs.add(packet.ssrc)
                    logger.info(
                        "%s/%s: packets of SSRC %d ignored: rid %r was not negotiated",
                        pub.participant,
                        pub.mid,
                        packet.ssrc,
                        rid,
                    )
                return None
            layer = found
            if layer.ssrc is not None:
                pub.by_ssrc.pop(layer.ssrc, None)
        layer.ssrc = packet.ssrc
        pub.by_ssrc[packet.ssrc] = layer
        return layer

    @staticmethod
    def _layer_ssrc(pub: Publication, rid: str) -> int | None:
        """The media SSRC of the layer named ``rid`` (its retransmissions name it)."""
        return next((x.ssrc for x in pub.layers if x.rid == rid), None)

    @staticmethod
    def _choose_layer(pub: Publication, want: int | None) -> Layer | None:
        """The layer to forward for a wanted index: the highest active one at or below it,
        else the lowest active one above it, else the wanted one (nothing measured yet)."""
        if want is None or not pub.layers:
            return None
        i = min(want, len(pub.layers) - 1)
        for layer in reversed(pub.layers[: i + 1]):
            if layer.active:
                return layer
        for layer in pub.layers[i + 1 :]:
            if layer.active:
                return layer
        return pub.layers[i]

    def _detach(self, slot: _Slot) -> None:
        """Take a slot out of every layer (it forwards nothing until placed again)."""
        if slot.layer is not None:
            with contextlib.suppress(ValueError):
                slot.layer.sinks.remove(slot.forwarder)
        if slot.pending is not None:
            with contextlib.suppress(ValueError):
                slot.pending.pending.remove(slot)
        slot.layer = slot.pending = None

    def _place(self, slot: _Slot) -> None:
        """Put a slot that just got its publication into the layer it wants: audio at once, video
        from that layer's next keyframe (its LayerChanged then)."""
        pub = slot.publication
        layer = self._choose_layer(pub, slot.want_spatial if slot.kind == "video" else 0) if pub else None
        if layer is None:
            return
        if slot.kind == "video":
            layer.pending.append(slot)
            slot.pending = layer
        else:
            layer.sinks.append(slot.forwarder)
            slot.layer = layer

    def _retarget(self, entry: _Participant, slot: _Slot) -> None:
        """Aim a slot at the layer it should forward now; the switch waits for that layer's keyframe."""
        pub = slot.publication
        if pub is None:
            return
        target = self._choose_layer(pub, slot.want_spatial)
        if target is None:  # paused: at once
            if slot.layer is not None or slot.pending is not None:
                self._detach(slot)
                slot.forwarder.switch_layer()
            self._report_layer(entry, slot)
            return
        if target is slot.layer:
            if slot.pending is not None:
                with contextlib.suppress(ValueError):
                    slot.pending.pending.remove(slot)
                slot.pending = None
            return
        if slot.pending is target:
            return
        if slot.pending is not None:
            with contextlib.suppress(ValueError):
                slot.pending.pending.remove(slot)
        target.pending.append(slot)
        slot.pending = target
        if self.config.keyframe_when_connected and not self._connected(entry):
            return  # asked once it is connected (a keyframe before then is lost)
        self._request_layer_keyframe(pub, target)

    def _complete_switches(self, layer: Layer) -> None:
        """A keyframe arrived on ``layer``: the slots waiting for it forward it from this packet."""
        waiting, layer.pending = layer.pending, []
        for slot in waiting:
            if slot.layer is not None:  # from another layer (a new source already waits for this)
                with contextlib.suppress(ValueError):
                    slot.layer.sinks.remove(slot.forwarder)
                receiver = self._participants.get(slot.receiver)
                if receiver is not None:  # the old layer's queued packets would delay this keyframe
                    receiver.downlink.supersede(slot.forwarder)
                slot.forwarder.switch_layer()
            layer.sinks.append(slot.forwarder)
            slot.layer, slot.pending = layer, None
            for entry in self._participants.values():
                if entry.slots.get(slot.mid) is slot:
                    self._report_layer(entry, slot)
                    break
            if slot.receiver in self._phases:
                connected = self._connected(self._participants.get(slot.receiver))
                self._phase(slot.receiver, "keyframe-forwarded" if connected else "keyframe-unconnected")

    def _report_layer(self, entry: _Participant, slot: _Slot) -> None:
        """Emit LayerChanged if what the slot forwards differs from what was last said."""
        layer = slot.layer
        paused = slot.want_spatial is None and slot.publication is not None
        state = (layer.spatial if layer else None, slot.want_temporal, paused)
        if state == slot.reported:
            return
        if slot.reported is not None and slot.reported[2] and not paused:
            entry.estimator.resumed(time.monotonic(), slot.mid)
        slot.reported = state
        self._emit(
            LayerChanged(
                entry.id,
                slot.mid,
                state[0],
                slot.want_temporal,
                layer.width if layer else None,
                layer.height if layer else None,
                paused,
            )
        )

    def _adapt(self, now: float | None = None) -> None:
        """Apply the allocation: each receiver's slots to the layer its estimate allows, and each
        simulcast publisher told which layers someone gets or may step up to (dynacast)."""
        if not self.config.adaptive or self._closed:
            return
        now = time.monotonic() if now is None else now
        # Every adapt_interval, and at once when an estimate was cut: the link will not wait
        # (at a fall to 250 kbit/s, the half second lost here was half the audio lost).
        cut = any(p.estimator.cuts != p.cuts_seen for p in self._participants.values())
        if now - self._adapted_at < self.config.adapt_interval and not cut:
            return
        self._adapted_at = now
        allocations = self.allocations(now)
        for receiver, choices in allocations.items():
            entry = self._participants[receiver]
            entry.cuts_seen = entry.estimator.cuts
            for mid, choice in choices.items():
                slot = entry.slots.get(mid)
                if slot is not None and (slot.want_spatial, slot.want_temporal) != (
                    choice.spatial,
                    choice.temporal,
                ):
                    if logger.isEnabledFor(logging.DEBUG):
                        self._log_choice(entry, mid, choice)
                    self.set_layer(receiver, mid, choice.spatial, choice.temporal)
            self._pace(entry, choices, now)
        for key, rids in self.wanted_layers(allocations).items():
            participant, _, mid = key.partition("/")
            publisher = self._participants.get(participant)
            pub = publisher.publications.get(mid) if publisher is not None else None
            if pub is not None:
                self._tell_wanted(pub, self._held_wanted(pub, rids, now))

    def _log_choice(self, entry: _Participant, mid: str, choice: LayerChoice) -> None:
        """Why a slot changes layer: the receiver's estimate and what each layer costs now."""
        demand = next((d for d in self._demands.get(entry.id, ()) if d.mid == mid), None)
        costs = [layer.bitrate for layer in demand.layers] if demand is not None else []
        logger.debug(
            "%s/%s -> %s/%s: estimate %d, costs %s",
            entry.id,
            mid,
            choice.spatial,
            choice.temporal,
            entry.estimator.estimate,
            costs,
        )

    def _pace(self, entry: _Participant, choices: Mapping[str, LayerChoice], now: float) -> None:
        """Pace ``entry``'s downlink at ``pace_factor`` × its estimate while its link limits what
        it gets (and until what waits has left); on a narrow link (``PACE_BELOW_BPS``) at
        ``pace_factor`` × the larger of its estimate and its REMB; unpaced otherwise."""
        factor = self.config.pace_factor
        estimator = entry.estimator
        demands = {video.mid: video for video in self._demands.get(entry.id, ())}
        if estimator.probing or any(
            (rungs := ladder(demands[mid])) and choice != rungs[-1]
            for mid, choice in choices.items()
            if mid in demands
        ):
            entry.limited_at = now
        # Still paced a while after the last step up: its keyframe (the largest burst: 640×360)
        # comes after the allocation chose the layer; unpaced, it read as overuse to Chromium.
        limited = now - entry.limited_at < PACE_HOLD
        # Unpacing sends what waits at once: it first drains at the paced rate. Flushed in one go,
        # a queue of ~30 KB (a 640×360 keyframe's stretch) overflowed a 1 Mbit/s link's queue the
        # moment PACE_HOLD ran out: 87 % of the next second lost, the tile back to 160×90.
        draining = entry.downlink.rate_bps is not None and len(entry.downlink) > 0
        narrow = estimator.known and estimator.estimate < PACE_BELOW_BPS
        rate: float | None = None
        if factor > 0 and (limited or draining):
            rate = self._pace_rate(entry)
        elif factor > 0 and narrow:
            rate = max(estimator.estimate, estimator.remb or 0) * factor
        if rate != entry.downlink.rate_bps:
            entry.downlink.set_rate(rate)

    def _pace_rate(self, entry: _Participant) -> float:
        """The rate a paced receiver's downlink leaves at: ``pace_factor`` × its estimate."""
        return entry.estimator.estimate * self.config.pace_factor

    def _update_wanted(self, pub: Publication | None) -> None:
        """Emit LayersWanted when the union of the layers the slots carrying ``pub`` target changes
        (without adaptation; with it, ``_adapt`` says what the allocation keeps)."""
        if pub is None or not pub.simulcast or self.config.adaptive:
            return
        wanted: set[int] = set()
        for entry in self._participants.values():
            for slot in entry.slots.values():
                if slot.publication is pub and slot.want_spatial is not None:
                    wanted.add(min(slot.want_spatial, len(pub.layers) - 1))
        self._tell_wanted(
            pub, tuple(layer.rid for layer in pub.layers if layer.spatial in wanted and layer.rid is not None)
        )

    @staticmethod
    def _held_wanted(pub: Publication, rids: tuple[str, ...], now: float) -> tuple[str, ...]:
        """``rids`` and the layers the allocation wanted within the last ``DYNACAST_HOLD`` s."""
        for rid in rids:
            pub.wanted_at[rid] = now
        return tuple(
            layer.rid
            for layer in pub.layers
            if layer.rid is not None
            and (layer.rid in rids or now - pub.wanted_at.get(layer.rid, -DYNACAST_HOLD) < DYNACAST_HOLD)
        )

    def _tell_wanted(self, pub: Publication, rids: tuple[str, ...]) -> None:
        """Emit LayersWanted when the layers a simulcast publication must keep encoding change
        (the one place both ways of deciding them, with and without adaptation, say it)."""
        if pub.simulcast and rids != pub.wanted_rids:
            pub.wanted_rids = rids
            self._emit(LayersWanted(pub.participant, pub.mid, rids))

    def _update_layers(self, now: float) -> None:
        """Measure each layer (bitrate, activity); retarget the slots of publications whose
        layers started or stopped arriving."""
        changed: list[Publication] = []
        for entry in self._participants.values():
            for pub in entry.publications.values():
                if pub.kind != "video":
                    continue
                moved = False
                for layer in pub.layers:
                    elapsed = now - layer.window_start
                    if elapsed >= BITRATE_WINDOW:
                        if layer.window_start:
                            layer.bitrate_bps = int(layer.window_bytes * 8 / elapsed)
                            if layer.active and now - layer.active_since >= LAYER_RAMP:
                                old = layer.steady_bps
                                layer.steady_bps = (
                                    int(0.7 * old + 0.3 * layer.bitrate_bps) if old else layer.bitrate_bps
                                )
                        layer.window_bytes, layer.window_start = 0, now
                    active = layer.last_packet is not None and now - layer.last_packet <= LAYER_TIMEOUT
                    if active != layer.active:
                        layer.active = active
                        if active:
                            layer.active_since = now
                        if not active:
                            layer.bitrate_bps = 0
                            logger.info(
                                "%s/%s: layer %s (%s) stopped arriving",
                                pub.participant,
                                pub.mid,
                                layer.spatial,
                                layer.rid,
                            )
                        moved = True
                if moved and len(pub.layers) > 1:
                    changed.append(pub)
        for pub in changed:
            for entry in self._participants.values():
                for slot in entry.slots.values():
                    if slot.publication is pub:
                        self._retarget(entry, slot)

    def _heard(self, entry: _Participant) -> None:
        """Feedback from a receiver: after a silence (its network was away) its video slots ask
        for keyframes, so that its decoder starts again at once instead of NACKing the gap."""
        now = time.monotonic()
        last, entry.heard_at = entry.heard_at, now
        silence = self.config.resume_silence
        if last is None or silence <= 0 or now - last < silence:
            return
        entry.resumes += 1
        join_log.debug(
            "receiver back after %.1f s",
            now - last,
            extra={"participant": entry.id, "phase": "resumed", "at": time.time()},
        )
        for slot in entry.slots.values():
            if slot.kind == "video":
                self._keyframe_for_slot(slot)

    def _keyframe_for_slot(self, slot: _Slot) -> None:
        pub = slot.publication
        layer = slot.pending or slot.layer
        if pub is None or layer is None or pub.kind != "video":
            return
        connected = self._connected(self._participants.get(slot.receiver))
        if not connected and self.config.keyframe_when_connected:
            return  # it would arrive before the receiver can take it: asked once it is connected
        if self._request_layer_keyframe(pub, layer) and slot.receiver in self._phases:
            self._phase(slot.receiver, "keyframe-request-connected" if connected else "keyframe-request")

    @staticmethod
    def _connected(entry: _Participant | None) -> bool:
        """Whether a receiver can take media now (ICE and DTLS up); unknown: as if it could."""
        pc: RTCPeerConnection | None = entry.pc if entry is not None else None
        return pc is None or pc.connectionState == "connected"

    def _request_layer_keyframe(self, pub: Publication, layer: Layer) -> bool:
        """Ask the publisher for a keyframe on ``layer`` (throttled); whether it was asked."""
        if pub.kind != "video" or layer.ssrc is None or not layer.throttle.allow(time.monotonic()):
            return False
        self.keyframe_requests += 1
        task = asyncio.get_running_loop().create_task(
            internals.request_keyframe(pub.transceiver.receiver, layer.ssrc)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _remb(self, slot: _Slot, bitrate: int) -> None:
        for entry in self._participants.values():
            if entry.slots.get(slot.mid) is slot:
                entry.downlink_estimate = bitrate
                # Chromium's REMB measures the streams with abs-send-time: video, not audio.
                cuts = entry.estimator.cuts
                entry.estimator.on_remb(time.monotonic(), bitrate, self._audio_cost(entry))
                if entry.estimator.cuts != cuts and entry.downlink.rate_bps is not None:
                    entry.downlink.set_rate(self._pace_rate(entry))  # paced: follow the cut at once

    # --- estimates and allocation ---------------------------------------------------------

    def _measure(self, entry: _Participant, now: float) -> None:
        """Feed the participant's estimators (every tick) and say when its link changed."""
        entry.estimator.on_sent(now, entry.downlink.sent_bytes)
        entry.estimator.update(now)
        expected = received = 0
        for pub in entry.publications.values():
            pub.rate.add(now, pub.octets + PACKET_OVERHEAD * pub.received)
            counted = internals.received_counts(pub.transceiver.receiver)
            expected, received = expected + counted[0], received + counted[1]
        if entry.wire is not None and entry.publications:
            entry.uplink.add(now, internals.received_bytes(entry.wire.transport), expected, received)
        self._report_link(entry, now)

    def _report_link(self, entry: _Participant, now: float) -> None:
        if now - entry.link_reported_at < 1.0:
            return
        estimator = entry.estimator
        losses = [x for x in (estimator.loss, entry.uplink.loss) if x is not None]
        current = LinkEstimate(
            entry.id,
            estimator.estimate if estimator.known else None,
            entry.uplink.bps or None if entry.publications else None,
            round(max(losses) * 100, 1) if losses else None,
            round(estimator.rtt * 1000) if estimator.rtt is not None else None,
        )
        last = entry.link_reported
        if last is None and current == LinkEstimate(entry.id, None, None, None, None):
            return  # nothing known yet
        if last is not None and not _link_changed(last, current):
            return
        entry.link_reported, entry.link_reported_at = current, now
        self._emit(current)

    @staticmethod
    def _audio_cost(entry: _Participant, lean: bool = False) -> int:
        """What the receiver's audio slots cost (bits per second, measured at the source); with
        ``lean``, RED publications count as their primary blocks only (about half)."""
        total = 0
        for slot in entry.slots.values():
            pub = slot.publication
            if slot.kind != "audio" or pub is None:
                continue
            rate = pub.rate.bps or AUDIO_DEFAULT_BPS
            total += int(rate * RED_PRIMARY_SHARE) if lean and pub.sending == red.RED_KEY else rate
        return total

    def _lean(self, entry: _Participant, budget: int, audio: int) -> bool:
        """Whether ``entry`` gets RED audio as plain Opus: when its budget leaves less than
        ``LEAN_ROOM`` for video after redundant audio (back above ``LEAN_ROOM`` × 1.5). RED
        doubles each voice (~25 kbit/s more); on a 250 kbit/s link three voices with RED leave
        no room for any video, and the loss such a link shows is congestion, which redundancy
        makes worse. Not while the receiver loses ``LOSSY`` or more in any stream's latest
        report of the last ``LOSSY_MEMORY`` s: paced below its estimate, a narrow link loses
        little, so that much loss is the line's own, which RED is for (at 15 % random loss a
        REMB dip stripped it and 7.4 % of the audio was concealed; judged on the last 2.5 s of
        reports, it flapped with them and 9.8 % was)."""
        room = budget - audio
        loss = entry.estimator.loss_within(LOSSY_MEMORY)
        lean = room < LEAN_ROOM * 1.5 if entry.lean_audio else room < LEAN_ROOM
        lean = lean and (loss is None or loss < LOSSY)
        if lean != entry.lean_audio:
            logger.debug(
                "%s audio %s (budget %d, audio %d, loss %s)",
                entry.id,
                "lean" if lean else "with RED",
                budget,
                audio,
                loss,
            )
            entry.lean_audio = lean
            if lean:
                self._lean_audio.add(entry.downlink)
            else:
                self._lean_audio.discard(entry.downlink)
        return lean

    def allocations(self, now: float | None = None) -> dict[str, dict[str, LayerChoice]]:
        """Per receiver, per video slot (mid), the layer its downlink estimate allows now.

        Audio is reserved first; pinned participants and the dominant speaker come first, at
        the highest layer that fits; tiles are capped by the sizes the page reported. Call it
        once per tick: it advances each receiver's allocator (hysteresis) and may start a probe
        of its estimator. Slots without a publication are left out.
        """
        now = time.monotonic() if now is None else now
        result: dict[str, dict[str, LayerChoice]] = {}
        # What a publication's demands share, computed once per call, not once per receiver, and
        # the same objects from call to call while it does not change (see _slot_demand).
        shared: dict[int, tuple[str, tuple[AllocLayer, ...], int, bool, int]] = {}
        for entry in self._participants.values():
            audio = self._audio_cost(entry)
            if self._lean(entry, entry.estimator.estimate, audio):
                audio = self._audio_cost(entry, lean=True)
            videos: list[VideoDemand] = []
            for slot in entry.slots.values():
                pub = slot.publication
                if pub is None or slot.kind == "audio":
                    continue
                of_pub = shared.get(id(pub))
                if of_pub is None:
                    of_pub = shared[id(pub)] = self._publication_demand(pub, now)
                videos.append(self._slot_demand(slot, of_pub, entry.tiles.get(slot.mid)))
            estimator, allocator = entry.estimator, entry.allocator
            budget = estimator.update(now)
            if entry.padding:  # a padded probe: the picture stays as it was until the probe held
                base = estimator.probe_base
                entry.padding = base is not None
                budget = base if base is not None else budget
            if videos and now - entry.probe_checked >= 0.5 and estimator.can_probe(now):
                entry.probe_checked = now
                padded = self._can_pad(entry)
                limit = estimator.probe_limit()
                target = allocator.next_budget(budget, audio, videos, limit=limit)
                if target is not None and estimator.probe(now, _probe_target(target, limit, padded)):
                    budget = self._probing(entry, budget, now, padded)
                elif target is None and (reach := estimator.reach_limit(padded=padded)):
                    target = allocator.next_rung(budget, audio, videos, limit=reach)
                    if target is not None and estimator.probe(
                        now, _probe_target(target, reach, padded), reach=True, padded=padded
                    ):
                        budget = self._probing(entry, budget, now, padded)
            result[entry.id] = allocator.update(now, budget, audio, videos)
            self._demands[entry.id] = videos
        return result

    def _publication_demand(
        self, pub: Publication, now: float
    ) -> tuple[str, tuple[AllocLayer, ...], int, bool, int]:
        """What every demand on ``pub`` shares: its key, layers, temporal layers, screen or not,
        and priority; the very tuple of the last call while they are equal (so the demands built
        on it, and the allocation's cache lookups, compare by identity)."""
        top = pub.participant in self._pinned or pub.participant == self._dominant
        current = (
            f"{pub.participant}/{pub.mid}",
            publication_layers(pub, now),
            publication_temporal_layers(pub),
            pub.source == "screen",
            0 if top else 1,
        )
        if pub.seen != current:
            pub.seen = current
        return pub.seen

    @staticmethod
    def _slot_demand(
        slot: _Slot, of_pub: tuple[str, tuple[AllocLayer, ...], int, bool, int], tile: tuple[int, int] | None
    ) -> VideoDemand:
        """``slot``'s demand; the one it had while nothing in it changed."""
        key, layers, temporal, screen, priority = of_pub
        demand = slot.demand
        if (
            demand is None
            or demand.layers is not layers
            or demand.publication != key
            or demand.priority != priority
            or demand.tile != tile
            or demand.temporal_layers != temporal
            or demand.screen != screen
        ):
            demand = slot.demand = VideoDemand(
                slot.mid, key, layers, priority=priority, tile=tile, temporal_layers=temporal, screen=screen
            )
        return demand

    def _can_pad(self, entry: _Participant) -> bool:
        """Whether a probe for ``entry`` can be padded: RTX negotiated on a video slot that sends."""
        return self.config.probe_padding and any(
            slot.kind == "video" and slot.forwarder.target.rtx_payload_types and slot.forwarder.started
            for slot in entry.slots.values()
        )

    def _probing(self, entry: _Participant, before: int, now: float, padded: bool) -> int:
        """A probe started for ``entry``: the budget its allocation gets meanwhile. Padded (see
        ``SfuConfig.probe_padding``), the one it had; otherwise the probe's, the step up itself."""
        if padded:
            entry.padding = True
            entry.pad_mark = (now, entry.downlink.sent_bytes)
            return before
        return entry.estimator.estimate

    def _pad(self, entry: _Participant, now: float) -> None:
        """Fill ``entry``'s padded probe up to the probe's rate (each tick; the pacer spreads it).

        What is due counts from the probe's start (``pad_mark``), less what was sent and what
        waits in the pacer, at most a tick's worth at a time: skipping a tick whose pacer still
        held packets, and forgetting that tick's share, left probes at 68-81 % of their rate."""
        estimator, downlink = entry.estimator, entry.downlink
        if estimator.probe_base is None:
            entry.padding = False
            return
        if not estimator.padding_due(now):  # waiting for the reports that judge it
            return
        then, sent_then = entry.pad_mark
        rate = estimator.estimate / 8  # bytes per second
        due = int(rate * (now - then)) - (downlink.sent_bytes - sent_then) - downlink.queued_bytes
        want = min(due, int(rate * self.config.tick))
        if want <= 0:  # sending at the probe's rate already
            return
        send_time = internals.abs_send_time()
        for slot in entry.slots.values():
            if slot.kind == "video" and slot.publication is not None:
                want -= slot.forwarder.pad(want, send_time)
                if want <= 0:
                    break

    def wanted_layers(
        self, allocations: Mapping[str, Mapping[str, LayerChoice]]
    ) -> dict[str, tuple[str, ...]]:
        """Per publication ("participant/mid"), the rids some receiver gets or may step up to
        (see ``allocation.wanted_layers``), for ``LayersWanted`` (dynacast)."""
        publications = {
            f"{p.id}/{pub.mid}": publication_layers(pub)
            for p in self._participants.values()
            for pub in p.publications.values()
            if pub.kind == "video" and pub.active
        }
        demands = {p: d for p, d in self._demands.items() if p in self._participants}
        return wanted_layers(demands, allocations, publications)

    # --- selection ----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick)
            try:
                self._select()
                self._adapt()
                self._maintain()
            except Exception:  # one bad tick must not stop the room's media
                logger.exception("SFU tick failed")

    def _maintain(self) -> None:
        now = time.monotonic()
        self._update_layers(now)
        ntp: int | None = None
        rekey = now - self._keyframe_sweep >= self.config.keyframe_interval
        if rekey:
            self._keyframe_sweep = now
        for entry in self._participants.values():
            downlink = entry.downlink
            if entry.padding:
                self._pad(entry, now)
            if len(downlink) or downlink.rate_bps is not None:
                downlink.flush()  # paced queues drain between packets too
            # One compound sender report per connection, every 0.5-1.5 s (RFC 3550's spread),
            # instead of aiortc's loop per sender.
            wire = entry.wire
            if wire is not None:
                wire.sync_counters()  # getStats() counts what the C path sent
            self._measure(entry, now)
            report = wire is not None and now >= entry.next_report
            if not (report or rekey):
                continue
            rows: list[tuple[RTCRtpSender, int, int, int]] = []
            for slot in entry.slots.values():
                forwarder = slot.forwarder
                if rekey and (forwarder.waiting_keyframe or slot.pending is not None):
                    self._keyframe_for_slot(slot)  # a lost PLI costs one interval at most
                if report and forwarder.forwarded and forwarder.started:
                    elapsed = int((now - forwarder.out_time) * forwarder.clock_rate)
                    rtp_timestamp = (forwarder.out_ts + elapsed) % (1 << 32)
                    rows.append(
                        (slot.transceiver.sender, rtp_timestamp, forwarder.forwarded, downlink.sent_bytes)
                    )
            if report and wire is not None:
                entry.next_report = now + 0.5 + random.random()
                if rows:
                    ntp = ntp if ntp is not None else internals.ntp_now()
                    with contextlib.suppress(ConnectionError):
                        wire.send_rtcp(internals.sender_reports(rows, ntp))

    def _reselect(self) -> None:
        """An input of the selection changed (a join, a leave, a mute, a pin, a publication or
        a slot added or removed): recompute who gets what now."""
        self._selection_stale = True
        if not self._selecting:  # from a listener of the recomputation's events: the next tick
            self._select()

    def _collect(self) -> None:
        """The streams the selection chooses from; changed only where ``_reselect`` follows."""
        self._mics, self._microphones, self._cameras, self._videos = [], {}, [], {}
        for entry in self._participants.values():
            for pub in entry.publications.values():
                if not pub.active or pub.muted:
                    continue
                if pub.kind == "audio":
                    self._mics.append((entry.id, pub))
                    self._microphones.setdefault(entry.id, pub)
                else:
                    key = f"{entry.id}/{pub.mid}"
                    self._cameras.append(VideoSource(entry.id, key, pub.source == "screen"))
                    self._videos[key] = pub

    def _select(self) -> None:
        """The dominant speaker, and each receiver's audio top-N and video last-N in its slots.

        Every tick scores the microphones (cheap: a few speakers' level windows) and recomputes
        the rest only when an input changed: ``_reselect`` was called, the dominant speaker
        changed (the video order follows it), ``speaking_order`` changed (which the audio of
        every receiver depends on), or a video's codec did (what a receiver can decode). With
        none of these, a full recomputation would assign the same streams to the same slots.
        """
        if self._closed:
            return
        self.selection_checks += 1
        now = time.monotonic()
        if self._selection_stale:
            self._collect()
        scores: dict[str, float] = {}
        speech = self.config.speech_dbov
        for participant, pub in self._mics:
            score = loudness(pub.levels, now, speech_dbov=speech)
            scores[participant] = max(score, scores.get(participant, 0.0))
        dominant = dominant_speaker(scores, self._dominant, hysteresis=self.config.hysteresis_db)
        if dominant not in self._participants:
            dominant = None
        if dominant != self._dominant:
            self._dominant = dominant
            self._recent = note_speaker(self._recent, dominant)
            self._emit(DominantSpeakerChanged(dominant))
            self._selection_stale = True
        sending = tuple(pub.sending for pub in self._videos.values())
        if (
            not self._selection_stale
            and sending == self._sending
            and speaking_order(scores, self._audio_sizes) == self._speaking
        ):
            return
        self.selections += 1
        self._selection_stale, self._selecting = False, True
        try:
            self._recompute(scores, sending)
        except Exception:
            self._selection_stale = True  # tried again at the next tick
            raise
        finally:
            self._selecting = False

    def _recompute(self, scores: Mapping[str, float], sending: tuple[str | None, ...]) -> None:
        """Each receiver's audio top-N and video last-N, assigned to its slots."""
        microphones, cameras, video_by_key = self._microphones, self._cameras, self._videos
        # Most receivers publish nothing: their choice is the same, computed once.
        video_publishers = {source.participant for source in cameras}
        top_cache: dict[tuple[str, int], list[Publication]] = {}
        last_n_cache: dict[tuple[str, int, frozenset[str]], list[Publication]] = {}
        sizes: set[int] = set()
        for entry in self._participants.values():
            audio_slots = {m: s.publication for m, s in entry.slots.items() if s.kind == "audio"}
            if audio_slots:
                # Never more than the receiver has room for: the loudest (or latest) first.
                n = min(self.config.audio_top_n, len(audio_slots))
                sizes.add(n)
                choice = (entry.id if entry.id in scores else "", n)
                wanted = top_cache.get(choice)
                if wanted is None:
                    top = audio_top_n(scores, receiver=entry.id, n=n)
                    wanted = top_cache[choice] = [microphones[p] for p in top if p in microphones]
                for mid, chosen_audio in assign_slots(audio_slots, wanted).items():
                    self._assign(entry, entry.slots[mid], chosen_audio)
            video_slots = {m: s.publication for m, s in entry.slots.items() if s.kind == "video"}
            if video_slots:
                n = min(self.config.video_last_n, len(video_slots))
                # Only streams in a codec this receiver negotiated (a VP8-only browser never
                # gets an H.264 stream it cannot decode in place of a VP8 one it can).
                accepts = frozenset.intersection(
                    *(
                        frozenset(s.forwarder.target.payload_types)
                        for s in entry.slots.values()
                        if s.kind == "video"
                    )
                )
                video_choice = (entry.id if entry.id in video_publishers else "", n, accepts)
                wanted_video = last_n_cache.get(video_choice)
                if wanted_video is None:
                    usable = [c for c in cameras if video_by_key[c.key].decodable_by(accepts)]
                    chosen = video_last_n(
                        usable, receiver=entry.id, recent_speakers=self._recent, pinned=self._pinned, n=n
                    )
                    wanted_video = last_n_cache[video_choice] = [video_by_key[s.key] for s in chosen]
                for mid, chosen_video in assign_slots(video_slots, wanted_video).items():
                    self._assign(entry, entry.slots[mid], chosen_video)
        self._audio_sizes = tuple(sorted(sizes))
        self._speaking = speaking_order(scores, self._audio_sizes)
        self._sending = sending

    def _assign(
        self, entry: _Participant, slot: _Slot, pub: Publication | None, *, emit: bool = True
    ) -> None:
        if slot.publication is pub:
            return
        previous = slot.publication
        if previous is not None:
            with contextlib.suppress(ValueError):
                previous.sinks.remove(slot.forwarder)
            self._detach(slot)
        slot.publication = pub
        slot.reported = None
        if pub is not None:
            pub.sinks.append(slot.forwarder)
            self._place(slot)  # before switch(): its keyframe request goes to that layer
        slot.forwarder.switch(pub)
        self._update_wanted(previous)
        self._update_wanted(pub)
        if emit:
            self._emit(
                StreamAssigned(
                    entry.id,
                    slot.mid,
                    slot.kind,
                    pub.participant if pub else None,
                    pub.mid if pub else None,
                    pub.source if pub else None,
                )
            )

    # --- helpers ------------------------------------------------------------------------------

    def _get(self, participant: str) -> _Participant:
        try:
            return self._participants[participant]
        except KeyError:
            raise UnknownParticipant(participant) from None

    def _phase(self, participant: str, phase: str) -> None:
        """Log a join phase the first time it happens for ``participant`` (see ``join_log``)."""
        seen = self._phases.get(participant)
        if seen is None or phase in seen or not join_log.isEnabledFor(logging.DEBUG):
            return
        seen.add(phase)
        join_log.debug(
            "join %s: %s",
            participant,
            phase,
            extra={"participant": participant, "phase": phase, "at": time.time()},
        )

    def _emit(self, event: SfuEvent) -> None:
        if isinstance(event, LayerChanged | LayersWanted):
            logger.debug("%r", event)
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a listener's bug must not break forwarding
            logger.exception("SFU event listener failed on %r", event)
