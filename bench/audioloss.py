"""``python -m bench audioloss [--sizes 10] [--quick]``: what Opus FEC, DTX and RED cost and save.

Issue #16 item 5. Debian's headless Chromium publishes its fake microphone, fed from a WAV file
made here (``--use-file-for-fake-audio-capture``): "speech" is a synthetic voiced signal
(a 120 Hz pulse train with formant-like harmonics, in syllables of ~200 ms at 4 a second with
pauses: enough to keep Opus' voice activity detection on, no real voice); "silence" is
digital zero. A second Chromium page receives it. Both talk straight to an in-process ``Sfu``
(tests/rtc/chromium_peer.py: no app, no network namespace), on the Python forwarding path so
that a seeded random loss can be put on one hop:

- uplink loss: the SFU drops that share of the publisher's incoming RTP datagrams before it
  sees them (its receiver reports then tell the publisher, whose Opus encoder raises FEC);
- downlink loss: the SFU drops that share of what it sends to the receiver (the publisher
  hears nothing of it: the SFU does not pass receivers' reports on); some cases also delay
  what it sends by 75 ms ± 10 ms (uniform jitter, so packets may be reordered), as the
  weak-link benchmark's lossy profile does, to see whether the receiver's jitter buffer then
  makes better use of RED's late copies.

Per case: the publisher's audio kbit/s (``outbound-rtp`` bytesSent, RTP payload only) and
packets per second, and the receiver's concealment % (concealedSamples /
totalSamplesReceived) over a window of ``--sizes`` seconds (10 by default, 6 with ``--quick``)
after 4 s of warm-up. The modes are the SFU's answer: ``plain`` (no fmtp: what aiortc answered
before), ``fec``, ``dtx``, ``fec+dtx`` and ``fec+dtx+red`` (the default now). A table, not a
timed test; every run is bounded.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromium
from meetings.rtc import internals
from meetings.rtc.sfu import Sfu, SfuConfig
from tests.rtc.chromium_peer import FLAGS, ChromiumPeer, page_server

NAME = "audioloss"
DEFAULT_SIZES = [10]
QUICK_SIZES = [6]
WARMUP_S = 4.0
CASE_TIMEOUT_S = 60.0
RATE = 48000
SEED = 16

# The SFU's answer per mode; the Python forwarding path, where the loss is put.
MODES: dict[str, SfuConfig] = {
    "plain": SfuConfig(native=False, opus_fec=False, opus_dtx=False, audio_red=False),
    "fec": SfuConfig(native=False, opus_fec=True, opus_dtx=False, audio_red=False),
    "dtx": SfuConfig(native=False, opus_fec=False, opus_dtx=True, audio_red=False),
    "fec+dtx": SfuConfig(native=False, opus_fec=True, opus_dtx=True, audio_red=False),
    "fec+dtx+red": SfuConfig(native=False, opus_fec=True, opus_dtx=True, audio_red=True),
}


@dataclass(frozen=True)
class Case:
    mode: str
    sound: str  # "speech" or "silence"
    loss: float = 0.0
    hop: str = "uplink"  # where the loss is: "uplink" (publisher -> SFU) or "downlink"
    receiver_red: bool = True  # False: the receiver does not offer RED (gets the primary Opus)
    delay_ms: float = 0.0  # downlink only: one-way delay, and uniform jitter of ± jitter_ms
    jitter_ms: float = 0.0


@dataclass
class Result:
    kbps: float = 0.0
    pps: float = 0.0
    concealed_pct: float | None = None
    sent_codec: str = ""
    red_seen: bool = False
    error: str = ""


def write_wav(path: Path, sound: str, seconds: float = 30.0) -> None:
    """16-bit mono 48 kHz: synthetic voiced syllables ("speech") or digital zero ("silence")."""
    count = int(RATE * seconds)
    samples = array.array("h", bytes(2 * count))
    if sound == "speech":
        rng = random.Random(SEED)
        for i in range(count):
            t = i / RATE
            syllable = t % 0.25
            envelope = math.sin(math.pi * syllable / 0.2) if syllable < 0.2 else 0.0
            if int(t) % 4 == 3:  # a pause of one second in four, as speakers breathe
                envelope = 0.0
            voiced = sum(
                math.sin(2 * math.pi * 120 * k * t) * w for k, w in ((1, 1.0), (4, 0.6), (9, 0.4), (20, 0.2))
            )
            value = envelope * (0.25 * voiced + 0.02 * (rng.random() - 0.5))
            samples[i] = max(-32767, min(32767, int(value * 32767 / 2.2)))
    header = b"RIFF" + (36 + 2 * count).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += RATE.to_bytes(4, "little") + (2 * RATE).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + (2 * count).to_bytes(4, "little")
    path.write_bytes(header + samples.tobytes())


def _impaired_send(send: Callable[[bytes | bytearray, bytes], None], case: Case, rng: random.Random) -> Any:
    """``send`` with the case's downlink loss, delay and jitter (one timer per delayed packet)."""
    loop = asyncio.get_running_loop()

    def later(header: bytes, payload: bytes) -> None:
        with contextlib.suppress(ConnectionError, ValueError):  # the receiver may be gone by then
            send(header, payload)

    def impaired(header: bytes | bytearray, payload: bytes) -> None:
        if rng.random() < case.loss:
            return
        delay = case.delay_ms + rng.uniform(-case.jitter_ms, case.jitter_ms)
        if delay <= 0:
            send(header, payload)
        else:  # the header is the slot's template, patched per packet: send a copy later
            loop.call_later(delay / 1000, later, bytes(header), payload)

    return impaired


async def _case(case: Case, wav: Path, window: float) -> Result:
    from playwright.async_api import async_playwright

    sfu = Sfu(MODES[case.mode])
    rng = random.Random(SEED)
    result = Result()
    async with page_server() as url, async_playwright() as pw:
        path = chromium.executable()
        assert path is not None
        browser = await chromium.launch(pw, path, [*FLAGS, f"--use-file-for-fake-audio-capture={wav}"])
        try:
            publisher = await ChromiumPeer.join(browser, url, sfu, "publisher", microphone=True, slots=0)
            receiver = await ChromiumPeer.join(
                browser, url, sfu, "receiver", microphone=False, slots=1, red=case.receiver_red
            )
            if case.sound == "speech":  # a silent publisher is never selected: nothing to receive
                await receiver.until(lambda s: s["samples"] > RATE, 20, "audio decoded")
            if case.loss or case.delay_ms:
                if case.hop == "uplink":
                    transport = sfu.peer_connection("publisher").getTransceivers()[0].receiver.transport
                    internals.divert_received_rtp(transport, lambda _size: rng.random() >= case.loss)
                else:
                    entry = sfu._participants["receiver"]
                    assert entry.wire is not None
                    entry.downlink.set_send(_impaired_send(entry.wire.send, case, rng))
            await asyncio.sleep(WARMUP_S)
            sent0, got0, t0 = await publisher.stats(), await receiver.stats(), time.monotonic()
            await asyncio.sleep(window)
            sent1, got1, t1 = await publisher.stats(), await receiver.stats(), time.monotonic()
            elapsed = t1 - t0
            result.kbps = (sent1["sent_bytes"] - sent0["sent_bytes"]) * 8 / elapsed / 1000
            result.pps = (sent1["sent_packets"] - sent0["sent_packets"]) / elapsed
            samples = got1["samples"] - got0["samples"]
            concealed = got1["concealed"] - got0["concealed"]
            result.concealed_pct = 100.0 * concealed / samples if samples else None
            result.sent_codec = sent1["sent_codec"]
            result.red_seen = sfu._participants["publisher"].publications["0"].sending == "RED"
            await publisher.close()
            await receiver.close()
        finally:
            await browser.close()
            await sfu.close()
    return result


def cases() -> list[Case]:
    overhead = [Case(mode, sound) for sound in ("speech", "silence") for mode in MODES]
    lossy = [
        Case(mode, "speech", loss, hop)
        for hop in ("uplink", "downlink")
        for loss in (0.05, 0.15)
        for mode in ("plain", "fec+dtx", "fec+dtx+red")
    ]
    stripped = [Case("fec+dtx+red", "speech", loss, "downlink", False) for loss in (0.05, 0.15)]
    delayed = [
        Case(mode, "speech", loss, "downlink", delay_ms=75, jitter_ms=10)
        for loss in (0.05, 0.15)
        for mode in ("plain", "fec+dtx+red")
    ]
    return overhead + lossy + stripped + delayed


def run(sizes: Sequence[int]) -> int:
    """Every case once, ``sizes[0]`` seconds measured each."""
    if chromium.executable() is None:
        print(f"audioloss: not run (Chromium is not installed: {chromium.INSTALL_HINT})")
        return 1
    chromium.isolate_playwright()
    window = float(sizes[0])
    print(
        f"Audio under loss: Chromium publisher -> in-process SFU -> Chromium receiver, {window:.0f} s per "
        f"case after {WARMUP_S:.0f} s warm-up, seed {SEED}; {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        flush=True,
    )
    print("| mode | sound | loss | publisher kbit/s | packets/s | RED sent | receiver concealed % |")
    print("| --- | --- | --- | ---: | ---: | --- | ---: |")
    status = 0
    with tempfile.TemporaryDirectory(prefix="bench-audioloss-") as folder:
        wavs = {sound: Path(folder) / f"{sound}.wav" for sound in ("speech", "silence")}
        for sound, wav in wavs.items():
            write_wav(wav, sound)
        for case in cases():
            try:
                result = asyncio.run(asyncio.wait_for(_case(case, wavs[case.sound], window), CASE_TIMEOUT_S))
            except Exception as error:  # one failed case is a row, not the end of the table
                result = Result(error=f"{type(error).__name__}: {error}"[:120])
                status = 1
            loss = f"{case.loss * 100:.0f} % {case.hop}" if case.loss else "none"
            if case.delay_ms:
                loss += f", {case.delay_ms:.0f} ± {case.jitter_ms:.0f} ms"
            if not case.receiver_red:
                loss += " (receiver without RED)"
            concealed = "–" if result.concealed_pct is None else f"{result.concealed_pct:.2f}"
            if result.error:
                print(f"| {case.mode} | {case.sound} | {loss} | error: {result.error} |||", flush=True)
                continue
            print(
                f"| {case.mode} | {case.sound} | {loss} | {result.kbps:.1f} | {result.pps:.1f} | "
                f"{'yes' if result.red_seen else 'no'} | {concealed} |",
                flush=True,
            )
    return status
