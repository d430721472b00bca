"""Bandwidth estimates of one participant's connection: what we may send it, what it sends us.

Pure (no aiortc, no asyncio, the clock is passed in): :class:`Estimator` turns the receiver's
RTCP feedback about what we forward to it (REMB, receiver reports' loss, jitter and LSR/DLSR)
and what we actually sent into a downlink estimate in bits per second; :class:`UplinkMeter`
measures what a publisher's layers bring in and how many of its packets we lose. See
``docs/media.md``, "Bandwidth estimation", for the rules and why they are these.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

NTP_FRACTION = 65536  # LSR, DLSR and the round trip are in 1/65536 s (RFC 3550 6.4.1)
MAX_RTT = 60.0  # a round trip longer than this is a wrapped or forged report, ignored
HISTORY_S = 30.0  # receiver reports kept this long for Estimator.loss_within
CARRIED_S = 60.0  # how long "the link carried this" (Estimator.carried) is remembered
RTT_BASE_S = 5.0  # a probe's round trip is compared with the shortest of this long before it
GROWTH_S = 2.0  # the REMB is "flat" when it rose by less than remb_growth over this long


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP time: what a receiver report echoes as LSR."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip(ntp_middle_now: int, lsr: int, dlsr: int) -> float | None:
    """Seconds between our sender report and the receiver report answering it (RFC 3550 6.4.1).

    None when the receiver has not had a sender report yet (LSR 0) or the result is absurd.
    """
    if lsr == 0:
        return None
    rtt = (ntp_middle_now - lsr - dlsr) & 0xFFFFFFFF
    seconds = rtt / NTP_FRACTION
    return seconds if seconds < MAX_RTT else None


class RateMeter:
    """Bits per second of a growing byte counter, over the last ``window`` seconds."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total_bytes: int) -> None:
        samples = self._samples
        if samples and total_bytes < samples[-1][1]:
            samples.clear()  # the counter restarted (a new connection)
        samples.append((now, total_bytes))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()

    @property
    def bps(self) -> int:
        """The rate over the window; 0 until two samples some time apart exist."""
        samples = self._samples
        if len(samples) < 2:
            return 0
        (t0, b0), (t1, b1) = samples[0], samples[-1]
        elapsed = t1 - t0
        if elapsed <= 0:
            return 0
        return int((b1 - b0) * 8 / elapsed)


@dataclass(frozen=True)
class EstimatorConfig:
    """Tunables of :class:`Estimator` (defaults: see docs/media.md, "Bandwidth estimation")."""

    min_bps: int = 30_000  # REMB 0 and below clamp here (audio keeps its reserve regardless)
    max_bps: int = 20_000_000  # REMB of 10 Gbit/s and such clamp here
    initial_bps: int = 1_000_000  # before any feedback
    interval: float = 0.5  # one increase step per interval
    increase: float = 0.05  # +5 % per interval below low_loss (Galène)
    low_loss: float = 0.02
    high_loss: float = 0.10
    collapse_loss: float = 0.30  # above this the link fell: cut to what it delivered, at once
    remb_drop: float = 0.97  # a REMB this much below the previous one: the receiver saw overuse
    growth_cap: float = 1.5  # without a REMB, increases stay below growth_cap × what we send
    stable_after_cut: float = 2.0  # no increase or probe this long after a cut
    probe_duration: float = 1.5  # a probe sends at its rate this long (padding: see padding_due),
    # then waits this long for the receiver reports that cover its end, and holds unless one
    # showed loss or the REMB fell: a verdict at the end of the padding came before the reports
    # of its last second, and a probe that had overflowed the link's queue held.
    verdict: float = 1.0
    probe_step: float = 2.0  # a probe asks at most this many times what we send now,
    gentle_step: float = 1.3  # or this many after a failed one, until one succeeds
    reach_step: float = 3.0  # a probe for a single rung that costs more than probe_step allows,
    reach_remb: float = 1.3  # only with a REMB at least this many times what we send
    holdoff: float = 2.0  # after a failed probe, none for this long, doubling up to:
    max_holdoff: float = 6.0
    # Beyond what the link is known to carry ("uncharted": more than ``charted`` × what it carried
    # with the REMB's consent in the last minute, and more than the REMB itself), a probe proves
    # only what we sent during it (``proven_margin`` above it), is gentle, and once failed holds
    # further probes off up to ``max_uncharted_holdoff``. On a link that has always been 300 kbit/s,
    # probes to twice what we sent, credited with their target although the padding reached only
    # 80 % of it, stepped a tile up to a layer the link could not carry every few seconds; its
    # keyframe then overflowed the link's queue, and the audio with it (2.55 % concealed in CI).
    charted: float = 1.1
    proven_margin: float = 1.1
    max_uncharted_holdoff: float = 30.0
    remb_growth: float = 0.05
    aftermath: float = 3.0  # a cut this soon after an uncharted probe held counts as its failure
    report_age: float = 2.5  # receiver reports older than this no longer count for the loss
    # A stream's reports this long after it resumed from a pause do not count for the loss: the
    # packets lost just before the pause are found missing only when the next one arrives, and
    # the first report then read 83-93 % lost and failed the probe that had resumed the tile.
    resume_grace: float = 1.5
    # A probe fails when a round trip measured during it (or within ``aftermath`` of an
    # uncharted one that held) exceeds the shortest of the last ``RTT_BASE_S`` before it by this
    # much: the link's queue is filling. On a constant 300 kbit/s link a probe to 311 kbit/s
    # held (no loss yet, the REMB flat) while the round trip went from 186 to 309 ms; the tile
    # it unpaused then overflowed the queue, 25-33 % lost, audio with it (shaped-link test).
    probe_delay_rise: float = 0.1
    silence: float = 2.0  # a stream's report this long after its last one follows an outage
    # Loss alone never cuts below this: random loss on a link with room (15 % in the shaped-link
    # tests) must not pause video; a link that is really this narrow also queues, and its REMB
    # (delay-based) takes the estimate lower.
    loss_floor: int = 250_000


class Estimator:
    """The downlink estimate of one receiver (what the SFU may send it), from its feedback.

    Cuts: a REMB lower than the previous one (Chromium's estimator lowers it only on overuse),
    a first REMB below what we send, or loss above ``high_loss`` (to what was sent × (1 − loss/2)).
    Increases: ``increase`` per ``interval`` while loss stays below ``low_loss``, up to the
    REMB (without one: ``growth_cap`` × what we send). Probes (:meth:`probe`) jump to the budget the
    next layer needs when the REMB does not say the link is full; a cut signal during the
    probe restores the previous estimate and holds further probes off (doubling).
    """

    def __init__(self, config: EstimatorConfig | None = None, *, name: str = "") -> None:
        self.config = config or EstimatorConfig()
        self.name = name
        self.estimate = self.config.initial_bps
        self._now = 0.0  # the latest time any input or update() gave
        self.known = False  # any feedback at all yet
        self.remb: int | None = None
        self._remb_raw: int | None = None
        self._remb_time = -1e9
        self.rtt: float | None = None
        self.jitter: float | None = None  # seconds, the latest report's
        self._reports: dict[str, tuple[float, float]] = {}  # key -> (time, fraction lost)
        self._resumed: dict[str, float] = {}  # key -> when it resumed after a pause
        self._history: deque[tuple[float, float]] = deque()  # (time, fraction lost), HISTORY_S
        self._sent = RateMeter(1.0)
        self._last_step = 0.0
        self._last_cut = -1e9
        self._probe_until: float | None = None
        self._probe_base = 0
        self._probe_end = -1e9
        self._probe_uncharted = False
        self._verdict = 0.0  # of the probe under way: see EstimatorConfig.verdict
        self._probe_sent = 0  # the most we sent during the probe under way (bits per second)
        self._probe_rtt: float | None = None  # the shortest round trip just before it
        self._rtts: deque[tuple[float, float]] = deque()  # (time, round trip) of the last RTT_BASE_S
        self._grew = False  # an uncharted probe held at its target since the last cut
        self._holdoff = self.config.holdoff
        self._holdoff_until = -1e9
        self._gentle = False
        self._probe_gentle = False
        self._remb_rising = False
        # The most we sent while the REMB said the link carried it, and when (see reach_limit).
        # (time, bits per second) the REMB consented to, decreasing in rate: the front is the
        # most in the last CARRIED_S (a sliding maximum; see carried).
        self._consented: deque[tuple[float, int]] = deque()
        self._rembs: deque[tuple[float, int]] = deque()  # (time, REMB) of the last GROWTH_S and one
        self.probes = 0
        self.failed_probes = 0
        self.cuts = 0  # how many times the estimate was lowered (the SFU reallocates at once)

    # --- inputs -------------------------------------------------------------------------

    def on_sent(self, now: float, total_bytes: int) -> None:
        """The byte counter of everything sent to this receiver (call every tick)."""
        self._now = max(self._now, now)
        self._sent.add(now, total_bytes)

    @property
    def sent_bps(self) -> int:
        return self._sent.bps

    def on_remb(self, now: float, bitrate: int, unseen: int = 0) -> None:
        """The receiver's REMB (bits per second), clamped to [min_bps, max_bps].

        ``unseen``: what we send it that the REMB does not measure (streams without the
        abs-send-time extension: audio), added to it.
        """
        self._now = max(self._now, now)
        if bitrate == self._remb_raw and now - self._remb_time < 0.05:
            return  # one REMB names every stream it covers: each of our senders passes it on
        self._remb_raw, self._remb_time = bitrate, now
        value = min(self._clamp(bitrate, "REMB") + max(unseen, 0), self.config.max_bps)
        previous = self.remb
        sent = self._sent.bps
        logger.debug("%s REMB %d bit/s, sent %d", self.name, value, sent)
        if value >= sent:
            consented = self._consented
            while consented and consented[-1][1] <= sent:
                consented.pop()
            consented.append((now, sent))
        self.remb = value
        self.known = True
        rembs = self._rembs
        rembs.append((now, value))
        while len(rembs) > 2 and now - rembs[1][0] >= GROWTH_S:
            rembs.popleft()
        # Chromium lowers its REMB only when it sees overuse (to 0.85 × what it receives); a
        # REMB that climbs while we send more is lagging (8 % a second), not a verdict.
        # A REMB that falls while still well above what we send is Chromium's cap following a
        # lower incoming rate (it never says more than ~1.5 × what arrives: after a downgrade or
        # a pause it falls too), not overuse: cutting on it kept receivers on a lower layer than
        # their link carried until a probe got through; during a probe it failed probes on a
        # link that had come back (a tile paused a second earlier took the cap down).
        dropped = previous is not None and value < previous * self.config.remb_drop and value < 1.1 * sent
        self._remb_rising = previous is None or value > previous
        if previous is None and value < self.estimate and value < 0.9 * sent:
            self._start(value)
        elif value < self.estimate and dropped:
            self._cut(now, value, "REMB")

    def on_receiver_report(
        self, now: float, key: str, fraction_lost: int, jitter: float | None = None, rtt: float | None = None
    ) -> None:
        """A report block about one of our streams to this receiver (``key``: the slot).

        ``fraction_lost`` is RFC 3550's 8-bit fraction; ``jitter`` and ``rtt`` in seconds.
        """
        self._now = max(self._now, now)
        fraction = min(max(fraction_lost, 0), 255) / 256
        if now - self._resumed.get(key, -1e9) < self.config.resume_grace:
            fraction = 0.0  # losses from before its pause, found only now
        previous = self._reports.get(key)
        if previous is not None and now - previous[0] > self.config.silence:
            # The first report after a silence (the network was away) counts everything sent
            # meanwhile as lost: that was the outage, not this link's rate.
            fraction = 0.0
        self._reports[key] = (now, fraction)
        history = self._history
        history.append((now, fraction))
        while history and now - history[0][0] > HISTORY_S:
            history.popleft()
        self.known = True
        if fraction:
            logger.debug("%s %s lost %.1f %%", self.name, key, 100 * fraction)
        if jitter is not None and jitter >= 0:
            self.jitter = jitter
        if rtt is not None and 0 <= rtt < MAX_RTT:
            self.rtt = rtt if self.rtt is None else 0.8 * self.rtt + 0.2 * rtt
            self._on_round_trip(now, rtt)
        # A report covers about the last second: after a cut in that second it describes
        # the rate before the cut, already corrected; unless it says the link delivered less
        # than even the cut leaves (a link that fell: 50-90 % lost, and the REMB, 0.85 × what
        # arrived over its window, steps down over a second while the link's queue drops
        # audio with the rest).
        sent = self._sent.bps
        if fraction > self.config.high_loss and sent:
            heavy = fraction > self.config.collapse_loss
            base = min(self.estimate, sent)
            # Heavy: what the link delivered of what went into it; moderate: Galène's rule.
            value = int(sent * (1 - fraction)) if heavy else int(base * (1 - 0.5 * fraction))
            value = max(value, min(self.estimate, self.config.loss_floor))
            if now - self._last_cut >= 1.0 or (heavy and value < self.estimate):
                self._cut(now, value, f"loss {fraction:.0%}")
        elif fraction > self.config.low_loss and self._probe_until is not None:
            self._cut(now, self.estimate, f"loss {fraction:.0%} while probing")

    def resumed(self, now: float, key: str) -> None:
        """The stream ``key`` resumed after a pause (see ``resume_grace``)."""
        self._resumed[key] = now

    @property
    def loss(self) -> float | None:
        """The worst fraction lost among the streams reported in the last ``report_age`` s (0..1)."""
        return self.loss_within(self.config.report_age)

    def loss_within(self, seconds: float) -> float | None:
        """The worst fraction lost in any report of the last ``seconds`` (at most ``HISTORY_S``).

        Chromium reports on an audio stream every 5 s, on a video stream every second, and a
        low-rate video stream's second often loses none of its few packets: "is this line
        lossy" needs a longer memory than :attr:`loss` (at 15 % random loss, the fresh reports
        alone said 0 % about half the time).
        """
        if seconds <= self.config.report_age:
            fresh = [f for t, f in self._reports.values() if self._now - t <= seconds]
        else:
            fresh = [f for t, f in self._history if self._now - t <= seconds]
        return max(fresh) if fresh else None

    # --- time ---------------------------------------------------------------------------

    def update(self, now: float) -> int:
        """Advance the clock (every tick): ends probes, takes increase steps; the estimate."""
        config = self.config
        self._now = max(self._now, now)
        if self.padding_due(now):
            self._probe_sent = max(self._probe_sent, self._sent.bps)
        if self._probe_until is not None and now >= self._probe_until:
            self._probe_until = None
            self._probe_end = now
            logger.debug("%s probe at %d bit/s held (sent %d)", self.name, self.estimate, self._probe_sent)
            if self._probe_uncharted:  # proves only what it sent
                proven = max(
                    self._probe_base, min(self.estimate, int(self._probe_sent * config.proven_margin))
                )
                if proven < self.estimate:
                    logger.debug("%s probe proved %d bit/s", self.name, proven)
                    self.estimate = proven
                else:  # the link carries more than it did: full steps again (a link come back)
                    self._grew = True
            if not self._probe_gentle and not self._probe_uncharted:  # the link has room again
                self._holdoff = config.holdoff
            self._gentle = False
        if now - self._last_step < config.interval:
            return self.estimate
        self._last_step = now
        loss = self.loss
        if self._probe_until is not None or now - self._last_cut < config.stable_after_cut:
            return self.estimate
        if loss is not None and loss >= config.low_loss:
            return self.estimate
        # Steady increases stay below the REMB (Chromium's delay-based view of the link);
        # beyond it only probes go, see probe().
        if self.remb is not None:
            ceiling = self.remb
        else:
            ceiling = min(config.max_bps, int(self._sent.bps * config.growth_cap) + 10_000)
        grown = min(int(self.estimate * (1 + config.increase)), ceiling)
        if grown > self.estimate:
            self.estimate = grown
        return self.estimate

    def can_probe(self, now: float) -> bool:
        """Whether a probe would be taken now (nothing says the link is full, none failed lately)."""
        config = self.config
        self._now = max(self._now, now)
        loss = self.loss
        return (
            self._probe_until is None
            and now >= self._holdoff_until
            and now - self._last_cut >= config.stable_after_cut
            and now - self._probe_end >= 0.5
            and (loss is None or loss < config.low_loss)
            and (self.remb is None or self.remb >= self._sent.bps or self._remb_rising)
        )

    @property
    def remb_flat(self) -> bool:
        """Whether the REMB, known for ``GROWTH_S`` at least, rose by less than ``remb_growth`` over
        it. Growing, Chromium sees room; flat, the link is full, or (after a fall) Chromium's
        estimator has not noticed yet that it came back: only what the link carried tells."""
        rembs = self._rembs
        if len(rembs) < 2 or self._now - rembs[0][0] < GROWTH_S:
            return False
        return rembs[-1][1] < rembs[0][1] * (1 + self.config.remb_growth)

    @property
    def carried(self) -> int:
        """The most we sent while the REMB said the link carried it, in the last ``CARRIED_S``."""
        consented = self._consented
        while consented and self._now - consented[0][0] > CARRIED_S:
            consented.popleft()
        return consented[0][1] if consented else 0

    @property
    def gentle(self) -> bool:
        """After a cut, until the link has been quiet for ``max_holdoff``: a gentle step may be
        too small for the next layer, and a recovered link must not stay stuck."""
        return self._gentle and self._now - self._last_cut < self.config.max_holdoff

    def probe_limit(self) -> int:
        """The most a probe may ask now: a few times what we send, less after a cut; and where
        the REMB is flat, not beyond what it or the link's last minute charted, but gently, until
        such a gentle probe held at its target (the link grew: a link that came back, whose REMB
        stays flat long after)."""
        config = self.config
        sent = max(self._sent.bps, config.min_bps)
        limit = sent * (config.gentle_step if self.gentle else config.probe_step)
        if self.remb_flat and not self._grew:
            limit = min(limit, max(self._charted_bps, sent * config.gentle_step))
        return min(int(limit), config.max_bps)

    @property
    def _charted_bps(self) -> float:
        """The most a probe tests a known rate up to, not an unknown one: ``charted`` × what the
        link carried in the last minute, or × the REMB if that says more."""
        return self.config.charted * max(self.carried, self.remb or 0)

    def reach_limit(self, *, padded: bool = False) -> int:
        """The most a probe for one rung may ask when no rung fits in :meth:`probe_limit` (a
        next layer that costs more than twice the lowest: a detailed picture); 0 when gentle.
        Without it a receiver back on a good link stayed on the lowest layer for good."""
        sent = max(self._sent.bps, self.config.min_bps)
        # A step-up probe reaches only where the REMB says there is room (Chromium's never
        # exceeds ~1.5 × what arrives; on a full link it stays near it): on a constant
        # 300 kbit/s link a reach every few seconds put a tile on 320×180 it could not carry.
        # A padded probe back towards what the link carried in the last minute does not wait
        # for the REMB: after a fall Chromium's REMB stays flat near what arrives long after
        # the link came back (bench weaklink: 6.7 s without a probe after the return, 17.9 s
        # to the top layer). Not on a link that never carried more: padded reaches there cost
        # the 300 kbit/s receiver 2.2 % of its audio in one shaped-link run.
        if self.gentle or self.remb is None:
            return 0
        if self.remb < self.config.reach_remb * sent:
            carried = self.carried
            if not padded or carried < self.config.reach_remb * sent:
                return 0
            return min(int(sent * self.config.reach_step), int(carried * 1.2), self.config.max_bps)
        return min(int(sent * self.config.reach_step), self.config.max_bps)

    def probe(self, now: float, target: int, *, reach: bool = False, padded: bool = False) -> bool:
        """Raise the estimate to ``target`` (what the next layer needs) for a trial, if allowed
        (``reach``: one rung beyond :meth:`probe_limit`, up to :meth:`reach_limit`; ``padded``:
        the probe is padding, the picture steps up only once it held).

        The REMB of a Chromium receiver cannot exceed ~1.5 × what it receives and climbs 8 %
        a second, so waiting for it to allow the next layer would take tens of seconds.
        """
        limit = self.reach_limit(padded=padded) if reach else self.probe_limit()
        if target <= self.estimate or target > limit or not self.can_probe(now):
            return False
        self._probe_base = self.estimate
        self._probe_rtt = min((rtt for _, rtt in self._rtts), default=None)
        self._probe_gentle = self._gentle
        self._probe_uncharted = target > self._charted_bps
        self._probe_sent = self._sent.bps
        # Padded, the picture steps up only on the verdict, so it waits for the reports; a step
        # up is judged by the loss of its own media as it goes on.
        self._verdict = self.config.verdict if padded else 0.0
        self._probe_until = now + self.config.probe_duration + self._verdict
        logger.debug("%s probe %d -> %d bit/s", self.name, self.estimate, target)
        self.estimate = target
        self.probes += 1
        return True

    @property
    def probing(self) -> bool:
        return self._probe_until is not None

    def padding_due(self, now: float) -> bool:
        """Whether a padded probe under way still sends at its rate (not yet waiting for its verdict)."""
        return self._probe_until is not None and now < self._probe_until - self._verdict

    @property
    def probe_base(self) -> int | None:
        """The estimate before the probe under way (None: none is)."""
        return self._probe_base if self._probe_until is not None else None

    # --- helpers ------------------------------------------------------------------------

    def _on_round_trip(self, now: float, rtt: float) -> None:
        """A round trip measured: fails the probe under way (or an uncharted one that just held)
        when it shows the link's queue filling (see ``EstimatorConfig.probe_delay_rise``)."""
        rtts = self._rtts
        rtts.append((now, rtt))
        while now - rtts[0][0] > RTT_BASE_S:
            rtts.popleft()
        base = self._probe_rtt
        if base is None or rtt <= base + self.config.probe_delay_rise:
            return
        if self._probe_until is None and not self._aftermath(now):
            return
        logger.debug("%s round trip %.0f ms, %.0f ms before the probe", self.name, rtt * 1000, base * 1000)
        self._probe_rtt = None  # one verdict per probe
        self._cut(now, self._probe_base, "delay")

    def _clamp(self, value: int, what: str) -> int:
        config = self.config
        clamped = min(max(value, config.min_bps), config.max_bps)
        if clamped != value:
            logger.info("%s %s of %d bit/s clamped to %d", self.name or "receiver", what, value, clamped)
        return clamped

    def _start(self, value: int) -> None:
        """The first REMB, below what we send: the estimate starts there, but not as a cut.

        Chromium's first REMB is what arrived in its first window (at a join: audio and the
        lowest layer's keyframe, 130 kbit/s on a 2 Mbit/s link), not a sign of overuse. Taken
        as a cut it made the next probes gentle (1.3 ×) and held them 2 s: the receiver took
        20-30 s to reach the top layer. A link really that narrow shows it in the probe that
        follows (loss or a falling REMB), which then fails and holds off as any other.
        """
        logger.debug("%s estimate %d -> %d bit/s (first REMB)", self.name, self.estimate, value)
        self.estimate = value
        self.cuts += 1  # the SFU reallocates at once

    def _probe_failed(self, now: float, cap: float) -> None:
        """Count a failed probe and hold the next one off, the hold-off doubling up to ``cap``.
        Counted, it is done with: a cut soon after is no aftermath of it."""
        self.failed_probes += 1
        self._holdoff_until = now + self._holdoff
        self._holdoff = min(self._holdoff * 2, cap)
        self._probe_uncharted = False

    def _aftermath(self, now: float) -> bool:
        """Whether an uncharted probe held less than ``aftermath`` ago (and is not counted yet):
        a sign of congestion now is its failure."""
        return self._probe_uncharted and now - self._probe_end < self.config.aftermath

    def _cut(self, now: float, value: int, reason: str) -> None:
        if self._probe_until is None and self._aftermath(now):
            # A cut just after an uncharted probe held: the step up it allowed did not fit, so the
            # probe failed after all (and holds the next one off as a failed one does).
            self._probe_failed(now, self.config.max_uncharted_holdoff)
        if self._probe_until is not None:
            self._probe_until = None
            self._probe_end = now
            cap = self.config.max_uncharted_holdoff if self._probe_uncharted else self.config.max_holdoff
            self._probe_failed(now, cap)
            value = min(value, self._probe_base)
        value = self._clamp(value, reason) if value < self.config.min_bps else value
        # Right after a cut the link is known to be near the estimate: the next probes are
        # gentle (a 2× probe on a link that just fell overflowed its queue, audio with it).
        self._gentle = True
        self._grew = False
        if value < self.estimate:
            logger.debug("%s estimate %d -> %d bit/s (%s)", self.name, self.estimate, value, reason)
            self.estimate = value
            self.cuts += 1
        self._last_cut = now


class UplinkMeter:
    """What one publisher's media brings in (bits per second) and the share of it we lose."""

    def __init__(self, window: float = 2.0) -> None:
        self._rate = RateMeter(window)
        self._counts: deque[tuple[float, int, int]] = deque()
        self.window = window

    def add(self, now: float, total_bytes: int, expected: int, received: int) -> None:
        """Cumulative received bytes and packets expected / received (RTP sequence numbers)."""
        self._rate.add(now, total_bytes)
        counts = self._counts
        if counts and (expected < counts[-1][1] or received < counts[-1][2]):
            counts.clear()  # a stream ended: start over
        counts.append((now, expected, received))
        while len(counts) > 2 and now - counts[1][0] >= self.window:
            counts.popleft()

    @property
    def bps(self) -> int:
        return self._rate.bps

    @property
    def loss(self) -> float | None:
        """Lost share of the packets expected over the window; None if none expected."""
        if len(self._counts) < 2:
            return None
        (_, e0, r0), (_, e1, r1) = self._counts[0], self._counts[-1]
        expected = e1 - e0
        if expected <= 0:
            return None
        return min(max((expected - (r1 - r0)) / expected, 0.0), 1.0)


class RembThrottle:
    """When a REMB to a publisher goes out: a fall at once, anything else at most every 200 ms.

    aiortc's receive-side estimator yields an estimate on every packet its overuse detector
    reads as overuse, and at its feedback interval otherwise; sent as they came, a simulcast
    publisher got a REMB every 10 ms or so (378 a second for 4 publishers in ``bench
    simulcast``), each a task, an SRTCP protect and a datagram. libwebrtc's receiver throttles
    the same way (``RembThrottler``: an estimate under 1/1.03 of the last one sent goes at once,
    others wait for 200 ms since it), so the publisher's controller hears a fall as soon as
    before and a rise within 200 ms. Times in milliseconds, as aiortc's arrival times are.
    """

    INTERVAL_MS = 200
    THRESHOLD = 1.03

    def __init__(self) -> None:
        self.sent_at: int | None = None
        self.sent: int | None = None
        self.held = 0  # estimates not sent

    def allow(self, now_ms: int, bitrate: int) -> bool:
        """Whether to send a REMB of ``bitrate`` now; remembers it as sent when so."""
        if (
            self.sent is not None
            and self.sent_at is not None
            and bitrate * self.THRESHOLD > self.sent
            and now_ms < self.sent_at + self.INTERVAL_MS
        ):
            self.held += 1
            return False
        self.sent_at, self.sent = now_ms, bitrate
        return True


class PublisherRemb:
    """The bitrate the REMB to a simulcast publisher says: room for every layer, unless congested.

    aiortc's receive-side estimator (delay-based, on abs-send-time) starts from what arrives and
    never says more than about 1.5 times that, climbing a few percent a second: a Chromium
    publisher capped by it sent only its two lower layers (~200 kbit/s) for 40 s, and no receiver
    ever got the top one. So while that estimator sees no congestion (its estimate did not fall
    below ``CONGESTED`` of what arrives, at least ``MIN_INCOMING``) and has seen none for
    ``hold`` seconds, the REMB says
    ``ceiling`` (what all the layers need) and Chromium's own controller (loss-based, from our
    receiver reports, and its start bitrate) sets the pace; once it sees congestion (a weak
    uplink queueing), the REMB is aiortc's estimate for ``hold`` seconds (a minute: a publisher
    whose uplink congested once is a weak-uplink centre; with 10 s it overshot again every 10 s
    and its audio was concealed 3.5 % of the time at 300 kbit/s), so the publisher drops its
    upper layers and keeps audio and the lowest layer flowing.
    """

    CONGESTED = 0.9
    # Below this much arriving, aiortc's estimate wobbling under what arrives says nothing: a
    # publisher sending only its lowest layer (~90 kbit/s: nobody watched its others) read as
    # congested, was held at ~80 kbit/s for a minute, and could not start its upper layers
    # when a receiver came (the top one took over 30 s).
    MIN_INCOMING = 150_000

    def __init__(self, ceiling: int, *, hold: float = 60.0) -> None:
        self.ceiling = ceiling
        self.hold = hold
        self.congested_at: float | None = None
        self._last: int | None = None  # aiortc's previous estimate

    def adjust(self, now: float, estimated: int, incoming: int) -> int:
        """The REMB bitrate for aiortc's ``estimated`` when ``incoming`` bits/s arrive."""
        # Congestion: aiortc's estimate fell (its overuse detector saw the uplink queue) below
        # what arrives. Below what arrives alone is not enough: when the publisher starts its
        # upper layers again, what arrives jumps and aiortc's estimate follows only later.
        fell = self._last is not None and estimated < 0.97 * self._last
        self._last = estimated
        if fell and incoming >= self.MIN_INCOMING and estimated < self.CONGESTED * incoming:
            if self.congested_at is None or now - self.congested_at >= self.hold:
                logger.debug("publisher uplink congested: estimated %d of %d bit/s", estimated, incoming)
            self.congested_at = now
        if self.congested_at is not None and now - self.congested_at < self.hold:
            return estimated
        return max(estimated, self.ceiling)
