"""``python -m bench simulcast [--sizes 60] [--quick]``: simulcast publishers' cost per forwarded packet.

Issue #16 asks that ``bench/sfu.py`` with simulcast publishers cost no more SFU CPU per
forwarded packet at 60 endpoints than today's forwarding, measured in the same run. This runs
bench/sfu.py's load (4 video publishers, 3 speakers, every endpoint receiving 3 audio + 4 video
slots; the SFU in its own process, on the C path) in three modes, alternating, ``ROUNDS`` times:

- ``single``: single-layer publishers (bench/sfu.py's 320×240 loop, ~500 kbit/s), adaptation
  off: the forwarding before issue #16;
- ``simulcast``: each video publisher sends three layers (160×90, 320×180, 640×360 at ~100,
  300, 800 kbit/s, pre-encoded VP8 loops on their own SSRCs, rtp-stream-id tagged, offered with
  ``a=rid``/``a=simulcast``: ``bench.sfu.SimulcastCamera``); each receiver gets what the
  allocation gives it (SfuConfig's default), half of them (odd endpoints) reporting 160×90 tiles,
  the others 640×360;
- ``sc-top``: the same simulcast publishers, adaptation off (every slot forwards the top layer).

The simulcast publishers honour dynacast as Chromium does: the SFU's ``LayersWanted`` event goes
from the server process to the publisher's load generator (as ``MeetingSession`` posts
``layers_wanted`` to the page only), and the publisher stops sending the layers it does not list
(``encodings[i].active = false``: no packets on that SSRC) and resumes them, from a keyframe,
when they are listed again. With the allocation that is the layers some receiver gets or may
step up to (and always the lowest); without it (``sc-top``) the layers the slots forward.

Each run measures ``MEASURE_S`` from ``SETTLED_WARMUP_S`` (15 s) after every endpoint joined:
the cost of forwarding in a meeting. The 60 endpoints join within seconds, and for the ~10 s
after that every receiver's estimate ramps to the top layer (probes, padding, switches,
keyframes: once per join). ``BENCH_SIMULCAST_RAMP=1`` measures from 3 s instead, that ramp.

Columns: the server's CPU (100 = one core), packets in from the publishers, packets the SFU
sent and the endpoints got per second, loss (1 − got/sent), µs of server CPU per packet sent
and per packet got, packets the SFU's downlink queues dropped, the video slots per forwarded
layer at the end of the window (0 = lowest, "-" = none: paused or waiting for a keyframe), the
share of the server's CPU spent in the SFU's tick (selection, allocation, upkeep every 100 ms)
and in the allocation alone, the server-side video delay p99 (ms), the busiest load
generator (100 = one core: the load is capped by the machine), the keyframes the SFU asked
publishers for (``kf``) and the ``LayersWanted`` it told them (``dyn``) in the window.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from bench.sfu import (
    GENERATORS,
    SETTLED_WARMUP_S,
    SIMULCAST_LAYERS,
    SPEAKERS,
    VIDEO_PUBLISHERS,
    Row,
    loopback_only,
    preencode_simulcast,
    preencode_vp8,
    vp8_payloads,
)
from bench.sfu import _scenario as scenario

NAME = "simulcast"
DEFAULT_SIZES = [60]
QUICK_SIZES = [20]
MODES = ("single", "simulcast", "sc-top")
ROUNDS = 2
QUICK_ROUNDS = 1
MEASURE_S = 10.0
QUICK_MEASURE_S = 5.0
RAMP_WARMUP_S = 3.0  # BENCH_SIMULCAST_RAMP=1: measure the estimates' ramp after the joins instead


def _loop_figures(loop: list[bytes]) -> tuple[float, float]:
    """Packets per frame and kbit/s (payload, 25 fps) of a pre-encoded loop."""
    packets = sum(len(vp8_payloads(frame, 0)) for frame in loop) / len(loop)
    return packets, sum(len(frame) for frame in loop) * 8 * 25 / len(loop) / 1000


def _header() -> str:
    return (
        f"{'mode':<10}{'N':>4}{'CPU %':>7}{'in/s':>6}{'sent/s':>8}{'got/s':>8}{'loss %':>7}"
        f"{'µs/sent':>8}{'µs/got':>8}{'drop':>6}  {'layers 0/1/2/-':<16}{'tick %':>7}{'alloc %':>8}"
        f"{'vid99':>6}{'gen %':>6}{'kf':>5}{'dyn':>5}"
    )


def _line(r: Row) -> str:
    if r.note and not r.pps:
        return f"{r.mode:<10}{r.n:>4}  ({r.note})"
    loss = 100 * (1 - r.delivered_pps / r.pps) if r.pps else 0.0
    per_got = r.cpu_pct / 100 / r.delivered_pps * 1e6 if r.delivered_pps else 0.0
    mix = "/".join(str(r.layers.get(k, 0)) for k in ("0", "1", "2", "-"))
    video99 = "n/a" if r.video_p99 is None else f"{r.video_p99:.2f}"
    return (
        f"{r.mode:<10}{r.n:>4}{r.cpu_pct:>7.1f}{r.incoming_pps:>6.0f}{r.pps:>8.0f}{r.delivered_pps:>8.0f}"
        f"{loss:>7.2f}{r.us_per_packet:>8.1f}{per_got:>8.1f}{r.dropped:>6}  {mix:<16}{r.tick_share:>7.1f}"
        f"{r.adapt_share:>8.1f}{video99:>6}"
        f"{r.generator_pct:>6.0f}{r.keyframe_requests:>5}{r.layers_wanted:>5}"
        + (f"  ({r.note})" if r.note else "")
    )


def _us_per_got(r: Row) -> float | None:
    return r.cpu_pct / 100 / r.delivered_pps * 1e6 if r.delivered_pps and not r.note else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def run(sizes: Sequence[int]) -> int:
    """Each size: the three modes, alternating, ROUNDS times; then the means and the ratios."""
    loopback_only()
    quick = list(sizes) == QUICK_SIZES
    rounds = QUICK_ROUNDS if quick else ROUNDS
    measure_s = QUICK_MEASURE_S if quick else MEASURE_S
    warmup = RAMP_WARMUP_S if os.environ.get("BENCH_SIMULCAST_RAMP") else SETTLED_WARMUP_S
    video = preencode_vp8()
    layers = preencode_simulcast()
    single = _loop_figures(video)
    figures = ", ".join(
        f"{rid} {w}×{h} {_loop_figures(loop)[1]:.0f} kbit/s {_loop_figures(loop)[0]:.1f} pkt/frame"
        for (rid, w, h, _), loop in zip(SIMULCAST_LAYERS, layers, strict=True)
    )
    print(
        f"Simulcast cost: {VIDEO_PUBLISHERS} video publishers, {SPEAKERS} speakers, 3+4 slots per "
        f"endpoint, {GENERATORS} load generators, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {measure_s:.0f} s per run from {warmup:.0f} s "
        f"after the joins, {rounds} round(s).\nsingle-layer loop: 320×240 {single[1]:.0f} kbit/s "
        f"{single[0]:.1f} pkt/frame; "
        f"simulcast loops: {figures} (payload, 25 fps).",
        flush=True,
    )
    status = 0
    for n in sizes:
        print(f"\nN={n}\n{_header()}", flush=True)
        rows: dict[str, list[Row]] = {mode: [] for mode in MODES}
        for _ in range(rounds):
            for mode in MODES:
                row = asyncio.run(
                    scenario(
                        mode, n, video, VIDEO_PUBLISHERS, SPEAKERS, GENERATORS, measure_s, layers, warmup
                    )
                )
                rows[mode].append(row)
                print(_line(row), flush=True)
                if row.note:
                    status = 1
        base = _mean([_us_per_got(r) for r in rows["single"]])
        summary = []
        for mode in MODES:
            mean = _mean([_us_per_got(r) for r in rows[mode]])
            ratio = f" (×{mean / base:.2f})" if mean is not None and base else ""
            summary.append(f"{mode} {mean:.1f}{ratio}" if mean is not None else f"{mode} n/a")
        print(f"µs of SFU CPU per packet got, mean (ratio to single): {', '.join(summary)}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return status
