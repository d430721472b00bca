"""Real aiortc peers, with generated audio and video, connected to the SFU in one process."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCSessionDescription

from meetings.rtc import internals, red
from meetings.rtc.sfu import DominantSpeakerChanged, Sfu, SfuConfig, SfuEvent, StreamAssigned
from tests.rtc.clients import RED_PT, Client, wait_for


async def _close(sfu: Sfu, *clients: Client) -> None:
    for client in clients:
        await client.close()
    await sfu.close()


async def test_two_participants_receive_each_other() -> None:
    sfu = Sfu()
    a = Client("a", amplitude=0.3, video=True, audio_slots=1, video_slots=1)
    b = Client("b", amplitude=0.1, video=True, audio_slots=1, video_slots=1)
    try:
        await a.connect(sfu)
        await b.connect(sfu)
        assert await wait_for(
            lambda: all(c.frames("video") > 5 and c.frames("audio") > 20 for c in (a, b)), 15
        )
        assert sfu.assignments("a") == {
            mid: ("b", pub)
            for mid, pub in zip(a.slot_mids("audio") + a.slot_mids("video"), ["0", "1"], strict=True)
        }
        # Forwarded packets bypass aiortc's send path; the transport statistics still count them.
        await asyncio.sleep(0.2)  # one tick
        report = await sfu.peer_connection("a").getStats()
        [transport] = [stat for stat in report.values() if stat.type == "transport"]
        assert transport.packetsSent > 25
        # Incoming media took the direct path (no aiortc queue and task), and is still counted.
        dtls = sfu.peer_connection("a").getTransceivers()[0].receiver.transport
        assert dtls._transport._connection.data_received.__name__ == "data_received"
        assert "direct_rtp_receive" in dtls._transport._connection.data_received.__qualname__
        assert transport.packetsReceived > 25
        # Where the C fast path is built, forwarded media left through it, not the Python queue.
        fast = sfu._participants["a"].downlink.fast
        if fast is not None:
            assert fast.direct and fast.bound and fast.fast_packets > 25
    finally:
        await _close(sfu, a, b)


async def test_three_participants_receive_each_other() -> None:
    sfu = Sfu()
    clients = [Client(n, amplitude=0.2, video=True, audio_slots=2, video_slots=2) for n in "abc"]
    try:
        for c in clients:
            await c.connect(sfu)

        def everyone_gets_everyone() -> bool:
            return all(
                c.received[mid].frames > 3
                for c in clients
                for mid in c.slot_mids("audio") + c.slot_mids("video")
            )

        assert await wait_for(everyone_gets_everyone, 15)
        for c in clients:
            others = {p for p, _ in filter(None, sfu.assignments(c.name).values())}
            assert others == {"a", "b", "c"} - {c.name}
        start = [c.frames("video") for c in clients]
        await asyncio.sleep(1.0)
        assert all(c.frames("video") > s for c, s in zip(clients, start, strict=True))  # frames keep coming
    finally:
        await _close(sfu, *clients)


@pytest.fixture
def codec_instances(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Record who creates decoders (by thread) and encoders (by sender) while the test runs."""
    made: dict[str, list[Any]] = {"decoder_threads": [], "encoder_senders": []}
    get_decoder = vars(aiortc.rtcrtpreceiver)["get_decoder"]
    get_encoder = vars(aiortc.rtcrtpsender)["get_encoder"]

    def counting_decoder(codec: Any) -> Any:
        made["decoder_threads"].append(threading.current_thread())
        return get_decoder(codec)

    def counting_encoder(codec: Any) -> Any:
        made["encoder_senders"].append(sys._getframe(1).f_locals.get("self"))
        return get_encoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_decoder)
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", counting_encoder)
    yield made


async def test_forwarding_creates_no_codec_and_keeps_payload_bytes(
    codec_instances: dict[str, list[Any]],
) -> None:
    sfu = Sfu()
    a = Client("a", amplitude=0.3, video=True, audio_slots=0, video_slots=0)  # publishes only
    b = Client("b", audio_slots=1, video_slots=1)  # receives only
    try:
        await a.connect(sfu)
        await b.connect(sfu)
        assert await wait_for(lambda: b.frames("video") > 10 and b.frames("audio") > 30, 15)
        sfu_pcs = [sfu.peer_connection("a"), sfu.peer_connection("b")]
        sfu_receivers = [t.receiver for pc in sfu_pcs for t in pc.getTransceivers()]
        sfu_senders = [t.sender for pc in sfu_pcs for t in pc.getTransceivers()]
        # The SFU's receivers have no decoder thread, its senders no encoder.
        assert all(internals.decoder_thread(r) is None for r in sfu_receivers)
        assert not any(internals.sender_has_encoder(s) for s in sfu_senders)
        assert not set(map(id, codec_instances["encoder_senders"])) & set(map(id, sfu_senders))
        # The only decoders are b's two (audio, video); the only encoders a's two.
        assert len(codec_instances["decoder_threads"]) == 2
        assert {t.name for t in codec_instances["decoder_threads"]} == {"audio-decoder", "video-decoder"}
        assert set(map(id, codec_instances["encoder_senders"])) == {id(t.sender) for t in a._publish}
        # Bytes in = bytes out.
        sent = set(a.sent_payloads)
        got = [p for r in b.received.values() for p in r.payloads]
        assert len(got) > 40
        assert all(p in sent for p in got)
    finally:
        await _close(sfu, a, b)


async def test_audio_top_n_holds_with_five_speakers() -> None:
    sfu = Sfu(SfuConfig(audio_top_n=3))
    amplitudes = {"s1": 0.5, "s2": 0.25, "s3": 0.12, "s4": 0.06, "s5": 0.03}
    speakers = [Client(n, amplitude=amp, audio_slots=0, video_slots=0) for n, amp in amplitudes.items()]
    listener = Client("listener", audio_slots=3, video_slots=0)
    try:
        for c in [*speakers, listener]:
            await c.connect(sfu)

        def top3() -> bool:
            return {p for p, _ in filter(None, sfu.assignments("listener").values())} == {"s1", "s2", "s3"}

        assert await wait_for(top3, 10)
        for r in listener.received.values():
            r.levels.clear()
        await asyncio.sleep(1.0)
        # Still (or again, after a scheduling hiccup on a loaded machine) the three loudest.
        assert await wait_for(top3, 5)
        heard = {round(sum(r.levels) / len(r.levels)) for r in listener.received.values() if r.levels}
        assert len(heard) == 3
        assert max(heard) < 24  # s4 (about -27 dBov) and s5 (-33) are not forwarded
        assert sfu.dominant_speaker == "s1"
        # s1 speaks to the others but never hears itself
        assert "s1" not in {p for p, _ in filter(None, sfu.assignments("s1").values())}
    finally:
        await _close(sfu, *speakers, listener)


async def test_last_n_follows_the_loudest_and_muting_stops_forwarding() -> None:
    events: list[SfuEvent] = []
    sfu = Sfu(SfuConfig(video_last_n=1, tick=0.05), on_event=events.append)
    loud = Client("loud", amplitude=0.5, video=True, audio_slots=0, video_slots=0)
    quiet = Client("quiet", amplitude=0.05, video=True, audio_slots=0, video_slots=0)
    watcher = Client("watcher", audio_slots=2, video_slots=1)
    try:
        for c in (quiet, loud, watcher):
            await c.connect(sfu)
        [video_mid] = watcher.slot_mids("video")

        def showing(who: str) -> bool:
            carried = sfu.assignments("watcher")[video_mid]
            return carried is not None and carried[0] == who

        assert await wait_for(lambda: showing("loud") and watcher.received[video_mid].frames > 3, 10)
        assert DominantSpeakerChanged("loud") in events
        # The loud speaker mutes: its audio stops reaching the others, and the floor moves.
        before = {mid: watcher.received[mid].packets for mid in watcher.slot_mids("audio")}
        sfu.set_muted("loud", "audio", True)
        loud_mids = {mid for mid, a in sfu.assignments("watcher").items() if a and a[0] == "loud"}
        assert not loud_mids
        assert await wait_for(lambda: showing("quiet"), 5)
        await asyncio.sleep(0.3)
        levels = [
            lvl for mid in watcher.slot_mids("audio") for lvl in watcher.received[mid].levels[before[mid] :]
        ]
        late = levels[len(levels) // 2 :]
        assert late and all(lvl > 20 for lvl in late)  # only the quiet speaker (about -29 dBov) now
        # At the server: the muted microphone's forwarded count stands still, the other's grows.
        mics = {key for key, (who, kind, _) in sfu.streams().items() if kind == "audio"}
        first = sfu.forwarded()
        await asyncio.sleep(0.5)
        second = sfu.forwarded()
        [loud_mic] = [k for k in mics if k.startswith("loud/")]
        [quiet_mic] = [k for k in mics if k.startswith("quiet/")]
        assert second[loud_mic] == first[loud_mic] and second[quiet_mic] > first[quiet_mic]
        assert any(
            isinstance(e, StreamAssigned) and e.publisher == "quiet" and e.kind == "video" for e in events
        )
    finally:
        await _close(sfu, loud, quiet, watcher)


async def test_new_receivers_get_a_keyframe_within_a_second_with_throttled_plis() -> None:
    sfu = Sfu(SfuConfig(keyframe_interval=0.5))
    publisher = Client("pub", video=True, audio_slots=0, video_slots=0)
    await publisher.connect(sfu)
    viewers = [Client(f"v{i}", audio_slots=0, video_slots=1) for i in range(4)]
    connected: dict[str, float] = {}
    try:
        await asyncio.sleep(1.0)  # the publisher's first keyframe is long gone
        for v in viewers:

            def on_state(v: Client = v) -> None:
                if v.pc.connectionState == "connected":
                    connected.setdefault(v.name, time.monotonic())

            v.pc.on("connectionstatechange", on_state)
        requests_before = sfu.keyframe_requests
        started = time.monotonic()
        await asyncio.gather(*(v.connect(sfu) for v in viewers))

        def all_keyframes() -> bool:
            return all(v.received[v.slot_mids("video")[0]].first_keyframe_at is not None for v in viewers)

        assert await wait_for(all_keyframes, 10)
        elapsed = time.monotonic() - started
        for v in viewers:
            got = v.received[v.slot_mids("video")[0]].first_keyframe_at
            assert got is not None and got - connected[v.name] < 1.0
        # Four viewers asked; the publisher got at most one request per 0.5 s.
        assert sfu.keyframe_requests - requests_before <= elapsed / 0.5 + 1
        assert await wait_for(lambda: all(v.frames("video") > 3 for v in viewers), 5)
    finally:
        await _close(sfu, publisher, *viewers)


@pytest.mark.parametrize("when_connected", [True, False])
async def test_join_phases_are_logged_only_when_their_logger_is_on(
    caplog: pytest.LogCaptureFixture, when_connected: bool
) -> None:
    """``meetings.rtc.join`` (bench/join.py's server side): each phase once, off by default. A new
    receiver's slot asks for its first keyframe once the receiver is connected (one asked for
    before would be lost on the way); ``keyframe_when_connected=False``: at once, as before."""
    sfu = Sfu(SfuConfig(keyframe_interval=0.5, keyframe_when_connected=when_connected))
    publisher = Client("pub", video=True, audio_slots=0, video_slots=0)
    viewer = Client("viewer", audio_slots=0, video_slots=1)
    try:
        with caplog.at_level(logging.INFO, logger="meetings.rtc.join"):
            await publisher.connect(sfu)
            assert await wait_for(lambda: sfu.peer_connection("pub").connectionState == "connected", 10)
        assert not [r for r in caplog.records if r.name == "meetings.rtc.join"]
        with caplog.at_level(logging.DEBUG, logger="meetings.rtc.join"):
            await viewer.connect(sfu)
            assert await wait_for(lambda: viewer.frames("video") > 3, 10)
        rows = [(r.participant, r.phase, r.at) for r in caplog.records if r.name == "meetings.rtc.join"]  # type: ignore[attr-defined]
        assert {participant for participant, _, _ in rows} == {"viewer"}
        at = {phase: when for _, phase, when in rows}
        assert len(at) == len(rows)  # each phase once
        assert at["offer"] <= at["answer"] <= at["ice-connected"] <= at["dtls-connected"]
        if when_connected:
            assert "keyframe-request" not in at
            assert at["dtls-connected"] <= at["keyframe-request-connected"]
            assert "keyframe-unconnected" not in at
        else:
            assert at["keyframe-request"] <= at["answer"]  # its slot got the camera in the answer
    finally:
        await _close(sfu, publisher, viewer)


async def test_leave_and_close_clean_up() -> None:
    before = asyncio.all_tasks()
    sfu = Sfu()
    a = Client("a", amplitude=0.2, video=True, audio_slots=1, video_slots=1)
    b = Client("b", amplitude=0.2, video=True, audio_slots=1, video_slots=1)
    await a.connect(sfu)
    await b.connect(sfu)
    assert await wait_for(lambda: a.frames("video") > 2 and b.frames("video") > 2, 15)
    await b.close()
    await sfu.leave("b")
    await sfu.leave("b")  # twice is fine
    assert sfu.participants() == ["a"]
    assert set(sfu.assignments("a").values()) == {None}
    assert sfu.streams() == {"a/0": ("a", "audio", "microphone"), "a/1": ("a", "video", "camera")}
    await a.close()
    await sfu.close()
    await sfu.close()  # twice is fine
    for _ in range(40):
        left = asyncio.all_tasks() - before - {asyncio.current_task()}
        if not left:
            break
        await asyncio.sleep(0.05)
    assert not left, left


async def test_one_compound_sender_report_per_connection_describes_every_slot() -> None:
    """The SFU's senders report in one compound RTCP packet per connection (not aiortc's loop
    per sender): the subscriber learns each stream's send counters, the SFU its round trip."""
    sfu = Sfu()
    a = Client("a", amplitude=0.3, video=True, audio_slots=1, video_slots=1)
    b = Client("b", amplitude=0.1, video=True, audio_slots=1, video_slots=1)
    try:
        await a.connect(sfu)
        await b.connect(sfu)
        assert await wait_for(lambda: a.frames("video") > 5 and a.frames("audio") > 20, 15)

        async def reports() -> dict[str, Any]:
            stats = await a.pc.getStats()
            return {s.kind: s for s in stats.values() if s.type == "remote-outbound-rtp"}

        seen: dict[str, Any] = {}

        async def both_kinds_reported() -> bool:
            seen.update(await reports())
            return {"audio", "video"} <= seen.keys() and all(s.packetsSent > 0 for s in seen.values())

        deadline = time.monotonic() + 10
        while not await both_kinds_reported():
            assert time.monotonic() < deadline, f"no sender reports from the SFU: {seen}"
            await asyncio.sleep(0.2)
        # The counters the reports carry are what was forwarded on that slot.
        forwarded = {slot.kind: slot.forwarder.forwarded for slot in sfu._participants["a"].slots.values()}
        assert 0 < seen["video"].packetsSent <= forwarded["video"]

        async def round_trip_known() -> bool:
            stats = await sfu.peer_connection("a").getStats()
            return any(s.type == "remote-inbound-rtp" and s.roundTripTime is not None for s in stats.values())

        deadline = time.monotonic() + 10
        while not await round_trip_known():  # the subscriber's receiver reports echo our LSR
            assert time.monotonic() < deadline, "no round-trip time from the subscriber's reports"
            await asyncio.sleep(0.2)
    finally:
        await _close(sfu, a, b)


async def test_a_speaker_without_the_level_extension_is_heard() -> None:
    """Issue #16: no RFC 6464 header extension (an aiortc client, a future gateway) must not mean mute.

    The SFU estimates a level from the Opus packets themselves (size per 20 ms, DTX), so the
    unmuted publisher is selected and its audio forwarded, as with the extension.
    """
    sfu = Sfu()
    bare = Client("bare", amplitude=0.3, audio_slots=0, video_slots=0, level_extension=False)
    listener = Client("listener", audio_slots=1, video_slots=0)
    try:
        await bare.connect(sfu)
        await listener.connect(sfu)
        assert await wait_for(lambda: len(bare.sent_payloads) > 25, 15)
        # The extension really is absent from what the publisher sends.
        assert internals.AUDIO_LEVEL_URI not in sfu.peer_connection("bare").remoteDescription.sdp
        [mid] = listener.slot_mids("audio")
        assert await wait_for(lambda: listener.received[mid].packets > 25, 15)
        assert sfu.assignments("listener") == {mid: ("bare", "0")}
        # What arrives is the publisher's Opus, byte for byte.
        sent = set(bare.sent_payloads)
        assert all(payload in sent for payload in listener.received[mid].payloads[:20])
    finally:
        await _close(sfu, bare, listener)


@pytest.mark.parametrize("level_extension", [True, False], ids=["with-level", "without-level"])
async def test_a_red_publication_reaches_red_receivers_as_red_and_the_others_as_opus(
    level_extension: bool,
) -> None:
    """Issue #16: a publisher that sends RED (RFC 2198); a receiver that negotiated RED gets the
    packets as they are, one that did not gets each packet's primary block as plain Opus.

    aiortc knows no RED: these clients offer it as Chromium does and the publisher's packets
    are rewritten into RED on the wire (tests/rtc/clients.py, ``RedEncoder``). Without the
    RFC 6464 extension the level is estimated from the primary block, so the publisher is
    still selected. Malformed RED packets are dropped and counted; forwarding goes on.
    """
    sfu = Sfu()
    speaker = Client(
        "speaker", amplitude=0.3, audio_slots=0, video_slots=0, red=True, level_extension=level_extension
    )
    speaker.red_malformed_every = 25
    with_red = Client("with-red", audio_slots=1, video_slots=0, red=True)
    plain = Client("plain", audio_slots=1, video_slots=0)
    other_pt = OpusOn111("other-pt", audio_slots=1, video_slots=0, red=True)
    try:
        for client in (speaker, with_red, plain, other_pt):
            await client.connect(sfu)
        [red_mid], [plain_mid] = with_red.slot_mids("audio"), plain.slot_mids("audio")
        [other_mid] = other_pt.slot_mids("audio")
        assert await wait_for(
            lambda: all(
                c.received[m].packets > 40
                for c, m in ((with_red, red_mid), (plain, plain_mid), (other_pt, other_mid))
            ),
            15,
        )
        assert sfu.assignments("plain") == {plain_mid: ("speaker", "0")}
        sent = [p for p in speaker.sent_payloads if p and p[0] & 0x7F == 96 and not red_malformed(p)]
        sent_set = set(sent)
        # The RED receiver: RED payload type, the publisher's RED payloads byte for byte.
        got = with_red.received[red_mid]
        assert set(got.payload_types) == {RED_PT}
        assert all(payload in sent_set for payload in got.payloads[:40])
        assert any(len(red.parse(payload)) == 2 for payload in got.payloads[:40])
        # The plain receiver: Opus payload type, each payload a primary block of what was sent.
        primaries = {red.primary(payload).data for payload in sent}
        got = plain.received[plain_mid]
        assert set(got.payload_types) == {96}
        assert all(payload in primaries for payload in got.payloads[:40])
        # RED negotiated, but Opus on 111: the blocks name 96, so it gets the primary on 111.
        got = other_pt.received[other_mid]
        assert set(got.payload_types) == {111}
        assert all(payload in primaries for payload in got.payloads[:40])
        # Malformed packets were dropped with a counted reason, not forwarded.
        assert sfu.stats()["dropped_red"] > 0
        [pub] = sfu._participants["speaker"].publications.values()
        assert set(pub.red_dropped) == {"block longer than payload"}
    finally:
        await _close(sfu, speaker, with_red, plain, other_pt)


class OpusOn111(Client):
    """A client whose offer puts Opus on payload type 111 (Chromium's), not aiortc's 96."""

    def local_offer(self) -> RTCSessionDescription:
        offer = super().local_offer()
        sdp = offer.sdp.replace("SAVPF 96 ", "SAVPF 111 ").replace("a=rtpmap:96 ", "a=rtpmap:111 ")
        sdp = sdp.replace(f"a=fmtp:{RED_PT} 96/96", f"a=fmtp:{RED_PT} 111/111")
        return RTCSessionDescription(sdp=sdp, type=offer.type)


def red_malformed(payload: bytes) -> bool:
    try:
        red.parse(payload)
    except red.MalformedRed:
        return True
    return False


def _mute_outgoing(client: Client, muted: dict[str, bool]) -> None:
    """Drop every datagram the client sends while ``muted["on"]`` (its uplink cut, the peer
    connection kept): nothing reaches the SFU, as when a network drops."""
    dtls = client.pc.getTransceivers()[0].receiver.transport
    for protocol in dtls.transport._connection._protocols:
        transport = protocol.transport
        send = transport.sendto

        def sendto(data: Any, addr: Any = None, send: Any = send) -> None:
            if not muted["on"]:
                send(data, addr)

        transport.sendto = sendto  # type: ignore[method-assign]


@pytest.mark.parametrize("silence", [2.0, 0.0])
async def test_a_receiver_heard_again_after_a_silence_gets_keyframes_at_once(silence: float) -> None:
    """Issue #18, reconnection: a receiver whose RTCP stops for longer than ``resume_silence`` (its
    network dropped, its peer connection kept) asks its publishers for keyframes the moment its
    feedback comes back, rather than NACKing the gap for a second or more; 0: never."""
    sfu = Sfu(SfuConfig(keyframe_interval=0.5, resume_silence=silence))
    publisher = Client("pub", video=True, audio_slots=0, video_slots=0)
    viewer = Client("viewer", audio_slots=0, video_slots=1)
    try:
        await publisher.connect(sfu)
        await viewer.connect(sfu)
        assert await wait_for(lambda: viewer.frames("video") > 3, 10)
        entry = sfu._participants["viewer"]
        assert await wait_for(lambda: entry.heard_at is not None, 5)  # its first receiver report
        muted = {"on": True}
        _mute_outgoing(viewer, muted)
        await asyncio.sleep(2.5)
        before = sfu.keyframe_requests
        muted["on"] = False
        heard = entry.heard_at
        assert await wait_for(lambda: entry.heard_at != heard, 5)  # its next report
        if silence:
            assert entry.resumes == 1 and sfu.keyframe_requests > before
        else:
            assert entry.resumes == 0
    finally:
        await _close(sfu, publisher, viewer)
