"""The downlink estimator against a simulated Chromium receiver on a shaped link (simulated time).

``ChromiumReceiver`` models what matters of Chromium's receive-side estimator (REMB) and its
receiver reports: the REMB climbs at most 8 % a second and never above 1.5 × what arrives
+ 10 kbit/s; after 0.3 s of overuse (we send more than the link carries) it drops to 0.85 × what
arrives, at once; a receiver report per stream each second carries the fraction lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from meetings.rtc.allocation import Allocator, Layer, LayerChoice, VideoDemand
from meetings.rtc.estimate import Estimator, RateMeter, UplinkMeter, ntp_middle32, round_trip
from meetings.rtc.sfu import _probe_target

DT = 0.1
AUDIO = 80_000  # two Opus streams with headers
LAYERS = (
    Layer(0, "q", 100_000, 160, 90),
    Layer(1, "h", 300_000, 320, 180),
    Layer(2, "f", 800_000, 640, 360),
)
VIDEOS = (
    VideoDemand("v0", "chair/1", LAYERS, priority=0, tile=(640, 360), temporal_layers=3),
    VideoDemand("v1", "other/1", LAYERS, priority=1, tile=(320, 180), temporal_layers=3),
)


@dataclass
class ChromiumReceiver:
    capacity: int
    remb: float | None = None
    overuse_since: float | None = None
    next_remb: float = 1.0
    next_report: float = 1.0
    offered: float = 0.0  # bits offered since the last report
    carried: float = 0.0
    rembs: list[int] = field(default_factory=list)
    # Chromium's first REMB is what arrived in its first window: at a join, audio and the
    # lowest layer's keyframe (measured: 130 kbit/s on a 2 Mbit/s link). None: what arrives.
    first_remb: float | None = None

    def step(self, now: float, sent_bps: int, estimator: Estimator) -> None:
        arriving = min(sent_bps, self.capacity)
        self.offered += sent_bps * DT
        self.carried += arriving * DT
        if sent_bps > self.capacity:
            self.overuse_since = now if self.overuse_since is None else self.overuse_since
        else:
            self.overuse_since = None
        remb = self.remb
        if now < 1.0:
            return  # Chromium's first REMB follows what arrives at that time
        if remb is None:
            remb = float(arriving if self.first_remb is None else self.first_remb)
        elif self.overuse_since is not None and now - self.overuse_since >= 0.3 and remb > 0.85 * arriving:
            self.remb = 0.85 * arriving
            self._send_remb(now, estimator)
            return
        else:
            remb = max(remb, min(remb * 1.08**DT, 1.5 * arriving + 10_000))
        self.remb = remb
        if now >= self.next_remb:
            self._send_remb(now, estimator)
        if now >= self.next_report:
            self.next_report = now + 1.0
            lost = 1 - self.carried / self.offered if self.offered else 0.0
            self.offered = self.carried = 0.0
            for key in ("audio", "v0", "v1"):
                estimator.on_receiver_report(now, key, int(lost * 256), 0.002, 0.05)

    def _send_remb(self, now: float, estimator: Estimator) -> None:
        assert self.remb is not None
        self.next_remb = now + 1.0
        self.rembs.append(int(self.remb))
        estimator.on_remb(now, int(self.remb))


@dataclass
class Session:
    """One receiver: estimator, allocator and a link, advanced together in steps of DT."""

    link: ChromiumReceiver
    estimator: Estimator = field(default_factory=Estimator)
    allocator: Allocator = field(default_factory=Allocator)
    now: float = 0.0
    sent_bytes: float = 0.0
    choices: dict[str, LayerChoice] = field(default_factory=dict)
    # Probes filled with padding, the tiles stepping up once one held (SfuConfig.probe_padding);
    # False: the step up itself is the probe.
    padded: bool = False

    @property
    def sending(self) -> int:
        media = AUDIO + sum(c.bitrate for c in self.choices.values())
        if self.padded and self.estimator.padding_due(self.now):
            return max(media, self.estimator.estimate)  # padding up to the probe's rate
        return media

    def run(self, until: float, on_step: list[tuple[float, dict[str, LayerChoice]]] | None = None) -> None:
        while self.now < until - 1e-9:
            self.now = round(self.now + DT, 6)
            sent = self.sending
            self.sent_bytes += sent * DT / 8
            self.estimator.on_sent(self.now, int(self.sent_bytes))
            self.link.step(self.now, sent, self.estimator)
            budget = self.estimator.update(self.now)
            if self.padded and (base := self.estimator.probe_base) is not None:
                budget = base
            if self.estimator.can_probe(self.now):
                limit = self.estimator.probe_limit()
                target = self.allocator.next_budget(budget, AUDIO, VIDEOS, limit=limit)
                if target is not None and self.estimator.probe(
                    self.now, _probe_target(target, limit, self.padded)
                ):
                    budget = budget if self.padded else self.estimator.estimate
            self.choices = self.allocator.update(self.now, budget, AUDIO, VIDEOS)
            if on_step is not None:
                on_step.append((self.now, dict(self.choices)))


def _first(steps: list[tuple[float, dict[str, LayerChoice]]], after: float, test: object) -> float | None:
    for now, choices in steps:
        if now >= after and test(choices):  # type: ignore[operator]
            return now
    return None


@pytest.mark.parametrize("padded", [False, True], ids=["step-up-probes", "padded-probes"])
@pytest.mark.parametrize("low_for", [20.0, 37.0, 60.0])  # the recovery finds probes in various phases
def test_a_drop_to_250_kbits_is_followed_within_2_s_and_the_top_layer_is_back_within_15_s(
    low_for: float, padded: bool
) -> None:
    session = Session(ChromiumReceiver(capacity=2_000_000), padded=padded)
    steps: list[tuple[float, dict[str, LayerChoice]]] = []
    session.run(20.0, steps)
    assert session.choices["v0"].spatial == 2, "an unlimited link carries the speaker's top layer"
    assert session.choices["v1"].spatial == 1, "the 320×180 tile gets the 320×180 layer, not more"

    session.link.capacity = 250_000
    back = 20.0 + low_for
    session.run(back, steps)
    fits = _first(steps, 20.0, lambda c: AUDIO + sum(x.bitrate for x in c.values()) <= 250_000)
    assert fits is not None and fits - 20.0 <= 2.0, f"adapted down after {fits}"
    low = [c for now, c in steps if 22.0 <= now <= back]
    lowest = sum(1 for c in low if c["v0"].spatial == 0)
    assert lowest >= 0.8 * len(low), "the speaker is on the lowest layer but while a probe fails"
    over = sum(1 for c in low if AUDIO + sum(x.bitrate for x in c.values()) > 250_000)
    assert over <= 0.15 * len(low), f"the weak link is overloaded {over * DT:.1f} s of {len(low) * DT:.0f}"

    session.link.capacity = 2_000_000
    session.run(back + 20.0, steps)
    top = _first(steps, back, lambda c: c["v0"].spatial == 2)
    assert top is not None and top - back <= 15.0, f"back to the top layer after {top}"
    assert session.choices["v0"].spatial == 2 and session.choices["v1"].spatial == 1


@pytest.mark.parametrize("padded", [False, True], ids=["step-up-probes", "padded-probes"])
def test_a_receiver_whose_first_remb_is_what_arrived_at_its_join_reaches_the_top_layer_soon(
    padded: bool,
) -> None:
    # Taken as a cut, that first REMB made the next probes gentle and held them off: 10.5 s to
    # the top layer in this simulation (padded), 20-30 s on real Chromium; now 2.7 s (padded).
    session = Session(ChromiumReceiver(capacity=2_000_000, first_remb=130_000), padded=padded)
    steps: list[tuple[float, dict[str, LayerChoice]]] = []
    session.run(1.0, steps)
    assert session.estimator.estimate == 130_000, "the estimate starts at the first REMB"
    session.run(20.0, steps)
    top = _first(steps, 1.0, lambda c: c["v0"].spatial == 2)
    assert top is not None and top - 1.0 <= (4.0 if padded else 8.0), f"the top layer at {top}"
    assert session.estimator.failed_probes == 0


def test_a_first_remb_below_what_we_send_starts_the_estimate_there_without_a_cut() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 62_500)  # 500 kbit/s: a join's keyframes
    estimator.on_remb(1.0, 130_000)
    assert estimator.estimate == 130_000 and estimator.cuts == 1  # the SFU reallocates
    assert not estimator.gentle and estimator.can_probe(1.0), "no cut: probes at full steps at once"
    estimator.on_remb(2.0, 100_000)  # then a fall: overuse, a cut
    assert estimator.estimate == 100_000 and estimator.gentle and not estimator.can_probe(2.5)


def test_a_remb_drop_cuts_at_once_and_loss_above_10_percent_cuts() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 125_000)  # 1 Mbit/s sent
    estimator.on_remb(1.0, 1_200_000)
    assert estimator.estimate == 1_000_000, "a first REMB above what we send keeps the estimate"
    estimator.on_remb(1.5, 400_000)
    assert estimator.estimate == 400_000, "a lower REMB: Chromium saw overuse"
    estimator.on_receiver_report(2.0, "v0", 64)  # 25 % lost, but describing the second before the cut
    assert estimator.loss == pytest.approx(0.25)
    assert estimator.estimate == 400_000
    estimator.on_receiver_report(2.6, "v0", 64)
    assert estimator.estimate == int(400_000 * (1 - 0.125))
    before = estimator.estimate
    estimator.on_receiver_report(2.8, "v0", 64)
    assert estimator.estimate == before, "one cut per report interval"
    estimator.on_receiver_report(3.7, "v0", 20)  # 8 %: no cut
    assert estimator.estimate == before


def test_low_loss_increases_by_5_percent_per_interval_up_to_the_remb() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 62_500)  # 500 kbit/s
    estimator.on_remb(1.0, 400_000)  # first REMB below what we send: taken
    assert estimator.estimate == 400_000
    estimator.on_remb(1.1, 600_000)
    estimator.on_receiver_report(1.1, "v0", 2)  # < 2 %
    estimator.update(3.1)
    assert estimator.estimate == 420_000
    for step in range(1, 20):
        estimator.on_receiver_report(3.1 + step * 0.5, "v0", 2)
        estimator.update(3.1 + step * 0.5)
    assert estimator.estimate == 600_000, "steady increases stop at the REMB"
    estimator.on_receiver_report(13.0, "v0", 13)  # 5 %: hold
    held = estimator.estimate
    estimator.on_remb(13.0, 900_000)
    estimator.update(14.0)
    assert estimator.estimate == held


def test_absurd_rembs_are_clamped_with_a_logged_reason(caplog: pytest.LogCaptureFixture) -> None:
    estimator = Estimator(name="centre-1")
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 125_000)  # 1 Mbit/s sent
    with caplog.at_level(logging.INFO, logger="meetings.rtc.estimate"):
        estimator.on_remb(1.0, 10_000_000_000)
        assert estimator.remb == estimator.config.max_bps
        assert estimator.estimate == estimator.config.initial_bps
        estimator.on_remb(2.0, 0)
    assert estimator.remb == estimator.config.min_bps
    assert estimator.estimate == estimator.config.min_bps
    assert "centre-1 REMB of 10000000000 bit/s clamped" in caplog.text
    assert "REMB of 0 bit/s clamped" in caplog.text
    estimator.on_remb(2.5, 0, unseen=100_000)  # the audio a REMB does not see is added
    assert estimator.remb == estimator.config.min_bps + 100_000
    estimator.on_receiver_report(3.0, "v0", 1000, -5.0, -1.0)  # out of range: clamped, ignored
    assert estimator.loss == pytest.approx(255 / 256)
    assert estimator.rtt is None and estimator.jitter is None
    assert estimator.estimate >= estimator.config.min_bps


def test_a_failed_probe_restores_the_estimate_and_holds_further_probes_off() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 25_000)  # 200 kbit/s
    estimator.on_remb(1.0, 250_000)
    estimator.on_remb(1.0, 150_000)  # falls below what we send: overuse, a cut
    assert estimator.estimate == 150_000
    estimator.on_remb(4.0, 260_000)
    estimator.on_sent(4.0, 100_000)
    estimator.update(4.0)
    assert estimator.can_probe(4.0)
    assert estimator.probe_limit() == 260_000, "gently: the link was cut 3 s ago"
    estimator.on_sent(7.5, 187_500)  # still 200 kbit/s
    estimator.on_remb(7.5, 290_000)  # growing: Chromium sees room
    estimator.update(7.5)
    assert estimator.estimate > 150_000, "+5 % steps, below the REMB"
    before = estimator.estimate
    assert estimator.probe_limit() == 400_000, "quiet for max_holdoff: full steps again"
    assert not estimator.probe(7.5, 500_000), "never more than twice what we send"
    assert estimator.probe(7.5, 380_000) and estimator.estimate == 380_000 and estimator.probing
    estimator.on_remb(8.3, 200_000)  # overuse
    assert estimator.estimate == before, "back to where the probe started"
    assert not estimator.probing and estimator.failed_probes == 1
    estimator.on_remb(11.0, 260_000)
    assert estimator.can_probe(11.0), "2 s after the cut, 2 s of hold-off: again"
    assert estimator.probe_limit() == 260_000, "gently after a failure"
    assert not estimator.probe(11.0, 300_000)
    assert estimator.probe(11.0, 250_000)
    estimator.update(13.1)
    assert not estimator.probing and estimator.estimate >= 250_000, "a probe without a cut signal stands"
    assert estimator.probe_limit() == 400_000
    estimator.on_sent(12.5, 212_500)
    estimator.on_sent(13.5, 242_500)  # 240 kbit/s
    assert estimator.probe(13.6, 450_000)
    estimator.on_receiver_report(14.0, "v0", 13)  # 5 % lost while probing: failed
    assert estimator.estimate == 260_000 and estimator.failed_probes == 2
    estimator.on_remb(16.1, 270_000)
    assert not estimator.can_probe(16.1), "the hold-off doubled (a gentle probe does not reset it)"
    assert estimator.can_probe(18.1)


def _steady(estimator: Estimator, start: float, end: float, sent_bps: int, remb: int, sent: float) -> float:
    """Feed ``estimator`` every 0.1 s from ``start`` to ``end``: ``sent_bps`` sent, a REMB of
    ``remb`` every 0.5 s (flat, as Chromium's on a full link); the byte counter at the end."""
    now = start
    while now < end - 1e-9:
        now = round(now + 0.1, 6)
        sent += sent_bps * 0.1 / 8
        estimator.on_sent(now, int(sent))
        if round(now * 10) % 5 == 0:
            estimator.on_remb(now, remb)
        estimator.update(now)
    return sent


def _on_a_flat_remb(sent_bps: int) -> tuple[Estimator, float]:
    """An estimator 7 s into a receiver's join: 400 kbit/s sent in its first second, a first REMB
    of 240 kbit/s (the estimate starts there), then ``sent_bps`` and that REMB, flat, for 6 s."""
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 50_000)
    estimator.on_remb(1.0, 240_000)
    return estimator, _steady(estimator, 1.0, 7.0, sent_bps, 240_000, 50_000.0)


def test_on_a_link_that_never_carried_more_a_probe_is_gentle_and_proves_only_what_it_sent() -> None:
    # A constant 300 kbit/s link: Chromium's REMB flat at 240 kbit/s, never more sent with its
    # consent. Probes to twice what we sent were credited with their target although the padding
    # reached 80 % of it, and the tile stepped up to a layer the link could not carry.
    estimator, sent = _on_a_flat_remb(160_000)
    assert estimator.remb_flat and estimator.carried == 160_000
    assert estimator.estimate == 240_000, "steady increases up to the REMB"
    assert estimator.can_probe(7.0)
    assert estimator.probe_limit() == 264_000, "the REMB and a tenth, not 2 x what we send"
    # Charted (the REMB and a tenth): a probe there tests a known rate and holds at its target.
    assert estimator.probe(7.0, 260_000)
    sent = _steady(estimator, 7.0, 9.0, 200_000, 240_000, sent)
    assert not estimator.probing and estimator.estimate == 260_000
    # Uncharted: beyond it, gently (1.3 x what we send). The padding reaches 250 kbit/s only.
    sent = _steady(estimator, 9.0, 10.0, 230_000, 240_000, sent)
    assert estimator.probe_limit() == 299_000
    assert estimator.probe(10.0, 295_000)
    sent = _steady(estimator, 10.0, 12.0, 250_000, 240_000, sent)
    assert not estimator.probing
    assert estimator.estimate == 275_000, "what it sent (250 kbit/s) and a tenth: proven, not the target"
    # The step up it allowed overflows the link: a cut within 3 s counts as the probe's failure.
    estimator.on_receiver_report(13.0, "v0", 64)  # 25 % lost
    assert estimator.failed_probes == 1 and estimator._holdoff == 4.0
    # Failed uncharted probes hold the next ones off longer each time, up to 30 s (not 6 s).
    now = 13.0
    for n in range(2, 7):
        later = estimator._holdoff_until + 3.0
        sent = _steady(estimator, now, later, 230_000, 240_000, sent)
        assert estimator.can_probe(later) and estimator.probe(later, estimator.probe_limit())
        now = later + 1.0
        # 5 % lost while probing: failed (a stream of its own: the first report after a silence
        # of one stream is not counted)
        estimator.on_receiver_report(now, f"v{n}", 13)
        assert estimator.failed_probes == n
    assert estimator._holdoff == 30.0


def test_an_uncharted_probe_that_fails_while_probing_is_counted_once_whatever_follows() -> None:
    # A second heavy-loss report within 3 s of the failure used to count as the probe's
    # "aftermath" too: two failures for one probe, its hold-off doubled twice.
    estimator, sent = _on_a_flat_remb(230_000)
    assert estimator.probe(7.0, estimator.probe_limit())  # 299 kbit/s: uncharted
    sent = _steady(estimator, 7.0, 7.5, 299_000, 240_000, sent)
    estimator.on_receiver_report(7.6, "v0", 64)  # 25 % lost while probing: failed
    assert not estimator.probing and estimator.failed_probes == 1
    holdoff, until = estimator._holdoff, estimator._holdoff_until
    estimator.on_receiver_report(8.6, "v1", 64)  # the queue it filled still drains: more loss
    assert estimator.failed_probes == 1, "one probe, one failure"
    assert (estimator._holdoff, estimator._holdoff_until) == (holdoff, until)


def test_once_a_gentle_probe_beyond_a_flat_remb_holds_at_its_target_the_steps_are_full_again() -> None:
    # A link that came back after a fall: Chromium's REMB stays flat near what arrived during the
    # fall for tens of seconds, so only a probe tells; one that holds at its target says it grew.
    estimator, sent = _on_a_flat_remb(230_000)
    assert estimator.probe_limit() == 299_000, "gently, beyond a flat REMB"
    assert estimator.probe(7.0, 299_000)
    sent = _steady(estimator, 7.0, 9.0, 299_000, 240_000, sent)  # the padding reaches it
    assert not estimator.probing and estimator.estimate == 299_000
    assert estimator.probe_limit() == 598_000, "full steps: the link carries more than it did"
    estimator.on_receiver_report(9.5, "v0", 64)  # a cut: gentle again
    _steady(estimator, 9.5, 20.0, 230_000, 240_000, sent)
    assert estimator.probe_limit() == 299_000


def test_a_padded_probe_stops_padding_and_waits_for_the_reports_that_cover_its_end() -> None:
    estimator, sent = _on_a_flat_remb(230_000)
    assert estimator.probe(7.0, 260_000, padded=True)
    assert estimator.padding_due(8.4) and not estimator.padding_due(8.6)
    sent = _steady(estimator, 7.0, 8.8, 260_000, 240_000, sent)
    assert estimator.probing, "padding over, the verdict not yet: the reports of its end are due"
    estimator.on_receiver_report(9.0, "v0", 13)  # its last second lost 5 %: the link overflowed
    assert not estimator.probing and estimator.failed_probes == 1 and estimator.estimate == 240_000
    # One whose reports show no loss holds once they had time to come.
    later = estimator._holdoff_until + 3.0
    sent = _steady(estimator, 9.0, later, 230_000, 240_000, sent)
    assert estimator.probe(later, 260_000, padded=True)
    _steady(estimator, later, later + 2.4, 260_000, 240_000, sent)
    assert estimator.probing
    _steady(estimator, later + 2.4, later + 2.6, 260_000, 240_000, sent)
    assert not estimator.probing and estimator.estimate == 260_000 and estimator.failed_probes == 1


def test_what_the_link_carried_is_the_most_of_the_last_minute_not_the_most_ever() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    sent = _steady(estimator, 0.0, 2.0, 1_000_000, 1_200_000, 0.0)
    assert estimator.carried == 1_000_000
    sent = _steady(estimator, 2.0, 30.0, 500_000, 1_200_000, sent)
    assert estimator.carried == 1_000_000, "within the minute"
    sent = _steady(estimator, 30.0, 63.0, 500_000, 1_200_000, sent)
    assert estimator.carried == 500_000, "a minute later, what was carried since"
    _steady(estimator, 63.0, 70.0, 300_000, 250_000, sent)  # no consent any more
    assert estimator.carried == 500_000
    estimator.update(125.0)
    assert estimator.carried == 0


def test_round_trip_from_lsr_and_dlsr() -> None:
    sent_at = (3_900_000_000 << 32) | (1 << 31)  # NTP time of our sender report
    lsr = ntp_middle32(sent_at)
    answered = sent_at + (int(0.130 * (1 << 32)))  # 130 ms later, of which 30 ms at the receiver
    dlsr = int(0.030 * 65536)
    rtt = round_trip(ntp_middle32(answered), lsr, dlsr)
    assert rtt == pytest.approx(0.100, abs=0.001)
    assert round_trip(ntp_middle32(answered), 0, dlsr) is None, "no sender report yet"
    assert round_trip(ntp_middle32(sent_at), lsr, dlsr) is None, "negative: wrapped, ignored"


def test_meters() -> None:
    meter = RateMeter(1.0)
    assert meter.bps == 0
    for i in range(30):
        meter.add(i * 0.1, i * 12_500)  # 1 Mbit/s
    assert meter.bps == pytest.approx(1_000_000, rel=0.01)
    meter.add(3.0, 0)  # restarted
    assert meter.bps == 0
    uplink = UplinkMeter(2.0)
    assert uplink.loss is None
    uplink.add(0.0, 0, 100, 100)
    uplink.add(1.0, 62_500, 200, 190)
    assert uplink.bps == 500_000
    assert uplink.loss == pytest.approx(0.10)


def test_a_simulcast_publisher_is_given_room_for_its_layers_until_its_uplink_congests() -> None:
    from meetings.rtc.estimate import PublisherRemb

    remb = PublisherRemb(1_500_000, hold=10.0)
    # aiortc's estimate follows what arrives (~200 kbit/s): the REMB leaves room for all layers.
    assert remb.adjust(0.0, 210_000, 200_000) == 1_500_000
    # A weak uplink queues: aiortc's estimate falls below what arrives; the REMB follows it ...
    assert remb.adjust(5.0, 170_000, 300_000) == 170_000
    assert remb.adjust(9.0, 260_000, 250_000) == 260_000, "held after congestion"
    # ... and gives room again only after `hold` seconds without congestion.
    assert remb.adjust(15.5, 270_000, 250_000) == 1_500_000
    assert remb.adjust(16.0, 2_000_000, 250_000) == 2_000_000, "never below aiortc's own estimate"
    # Only the lowest layer arriving (nobody watched the others): its wobble is no congestion.
    lone = PublisherRemb(1_500_000)
    assert lone.adjust(0.0, 90_000, 92_000) == 1_500_000
    assert lone.adjust(1.0, 82_000, 92_000) == 1_500_000 and lone.congested_at is None
    # Its upper layers start again: what arrives jumps before aiortc's estimate follows.
    assert lone.adjust(2.0, 201_000, 386_000) == 1_500_000 and lone.congested_at is None


def test_random_loss_alone_does_not_take_the_estimate_below_the_loss_floor() -> None:
    # 15 % random loss on a link with room: the estimate is cut, but not below what video at the
    # lowest layers needs (loss_floor); only a falling REMB (queueing) takes it lower.
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 50_000)  # 400 kbit/s
    for second in range(2, 12):
        estimator.on_receiver_report(float(second), "v0", 38)  # 15 %
        estimator.update(float(second))
    assert estimator.estimate == estimator.config.loss_floor
    estimator.on_remb(12.0, 300_000)
    estimator.on_remb(13.0, 150_000)
    assert estimator.estimate == 150_000, "a REMB drop goes below the floor"


def test_after_a_failed_probe_steps_are_gentle_only_until_the_link_has_been_quiet() -> None:
    # A gentle step may be too small for the next layer: once no cut was seen for max_holdoff,
    # probes may again ask for the full step, or a receiver whose link came back stays low.
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 20_000)  # 160 kbit/s
    estimator.on_remb(1.0, 200_000)
    estimator.on_remb(1.0, 120_000)  # a cut
    estimator.on_sent(4.0, 80_000)
    estimator.on_remb(4.0, 200_000)
    estimator.update(4.0)
    assert estimator.probe_limit() == int(160_000 * estimator.config.gentle_step), "a cut 3 s ago"
    assert estimator.probe(4.0, 200_000)
    estimator.on_remb(4.5, 150_000)  # the probe fails
    assert estimator.probe_limit() == int(160_000 * estimator.config.gentle_step)
    estimator.on_sent(12.0, 240_000)
    estimator.on_sent(13.0, 260_000)  # still 160 kbit/s
    estimator.on_remb(12.5, 240_000)  # the link came back: the REMB climbs above what we send
    estimator.update(13.0)
    assert estimator.probe_limit() == int(160_000 * estimator.config.probe_step)
    assert estimator.probe(13.0, 300_000)


def test_a_remb_that_falls_but_stays_above_what_we_send_is_not_a_cut() -> None:
    # Chromium's REMB never says more than ~1.5 x what arrives: after a downgrade it follows the
    # lower rate down. That is not overuse; cutting on it kept receivers low until a probe.
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 25_000)  # 200 kbit/s sent
    estimator.on_remb(1.0, 900_000)
    estimator.on_remb(1.5, 600_000)  # falls, still 3 x what we send
    assert estimator.estimate == estimator.config.initial_bps
    estimator.on_remb(2.0, 150_000)  # below what we send: overuse
    assert estimator.estimate == 150_000


def test_losses_from_before_a_pause_found_when_the_stream_resumes_do_not_fail_a_probe() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 25_000)  # 200 kbit/s
    estimator.on_remb(1.0, 150_000)
    estimator.on_sent(9.0, 225_000)
    estimator.on_remb(9.0, 260_000)
    estimator.update(9.0)
    assert estimator.probe(9.0, 300_000)
    estimator.resumed(9.0, "v1")  # the probe resumed a paused tile
    estimator.on_receiver_report(9.3, "v1", 238)  # 93 %: its tail before the pause, found now
    assert estimator.probing and estimator.estimate == 300_000, "not a verdict on the probe"
    estimator.on_receiver_report(9.4, "v0", 38)  # 15 % on another stream: the probe failed
    assert not estimator.probing and estimator.failed_probes == 1
    estimator.on_receiver_report(11.0, "v1", 64)  # later, its loss counts again
    assert estimator.loss == 0.25


def test_a_link_that_falls_is_followed_by_what_it_delivered_not_by_the_remb_stepping_down() -> None:
    # 1.6 Mbit/s sent when the link falls to 400 kbit/s: the first REMB says 0.85 × what
    # arrived over its window (still mostly before the fall), the reports say 75 % lost.
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 200_000)  # 1.6 Mbit/s
    estimator.on_remb(1.0, 2_000_000)
    estimator.on_remb(1.3, 900_000)
    assert estimator.estimate == 900_000
    estimator.on_receiver_report(1.4, "v0", 192)  # 75 % lost, 0.1 s after the REMB's cut
    assert estimator.estimate == 400_000, "cut to what the link delivered, without waiting a second"
    estimator.on_receiver_report(1.5, "v1", 40)  # 16 %: a moderate loss waits for the next second
    assert estimator.estimate == 400_000
    floor = Estimator()
    floor.on_sent(0.0, 0)
    floor.on_sent(1.0, 50_000)  # 400 kbit/s
    floor.on_receiver_report(1.1, "v0", 192)
    assert floor.estimate == floor.config.loss_floor, "loss alone never below the floor"


def test_a_next_layer_costing_more_than_a_probe_step_is_reached_for_alone_once_the_link_is_quiet() -> None:
    # A detailed picture: the middle layer costs three times the lowest. A receiver on the
    # lowest layer with a link that came back must still be probed up to it.
    videos = [
        VideoDemand(
            "v0",
            "pub/1",
            (Layer(0, "q", 150_000, 160, 90), Layer(1, "h", 450_000, 320, 180)),
            priority=0,
            tile=(320, 180),
        )
    ]
    allocator = Allocator()
    assert allocator.update(0.0, 250_000, 60_000, videos)["v0"].spatial == 0
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 26_250)  # 210 kbit/s: audio and the lowest layer
    estimator.on_remb(1.0, 250_000)
    estimator.on_remb(1.0, 150_000)  # a cut: gentle for a while
    estimator.on_sent(8.0, 210_000)
    estimator.on_remb(8.0, 300_000)
    estimator.update(8.0)
    limit = estimator.probe_limit()
    assert allocator.next_budget(estimator.estimate, 60_000, videos, limit=limit) is None, "beyond a step"
    target = allocator.next_rung(estimator.estimate, 60_000, videos, limit=estimator.reach_limit())
    assert target is not None and limit < target <= estimator.reach_limit()
    assert not estimator.probe(8.0, target), "not as an ordinary probe"
    assert estimator.probe(8.0, target, reach=True)
    assert allocator.update(8.0, estimator.estimate, 60_000, videos)["v0"].spatial == 1
    gentle = Estimator()
    gentle.on_sent(0.0, 0)
    gentle.on_sent(1.0, 26_250)
    gentle.on_remb(1.0, 250_000)
    gentle.on_remb(1.0, 150_000)  # a cut
    assert gentle.gentle and gentle.reach_limit() == 0, "right after a cut: no reaching"
    assert gentle.reach_limit(padded=True) == 0, "not even padded"
    full = Estimator()
    full.on_sent(0.0, 0)
    full.on_sent(1.0, 26_250)
    full.on_remb(1.0, 300_000)
    full.on_remb(1.0, 230_000)  # a full link: the REMB near what arrives
    full.update(9.0)
    assert not full.gentle and full.reach_limit() == 0, "no room said: no reaching"
    assert full.reach_limit(padded=True) == 0, "not even padded: this link never carried more"
    # A link that carried 900 kbit/s a moment ago, then fell: Chromium's REMB stays flat near
    # what arrives long after the link came back, so a padded probe (a failed one costs only
    # padding) reaches back towards what it carried without waiting for the REMB.
    back = Estimator()
    back.on_sent(0.0, 0)
    back.on_sent(1.0, 112_500)  # 900 kbit/s
    back.on_remb(1.0, 1_000_000)  # the REMB says the link carried it
    back.on_sent(2.0, 140_000)  # then 220 kbit/s
    back.on_remb(2.0, 200_000)  # a fall
    back.on_sent(9.0, 332_500)  # 220 kbit/s since
    back.on_remb(9.0, 230_000)
    back.update(9.0)
    assert not back.gentle and back.reach_limit() == 0, "step-up probes still wait for the REMB"
    assert back.reach_limit(padded=True) == 3 * 220_000
    low = Allocator()
    assert low.update(9.0, 250_000, 60_000, videos)["v0"].spatial == 0
    target = low.next_rung(back.estimate, 60_000, videos, limit=back.reach_limit(padded=True))
    assert target is not None
    assert not back.probe(9.0, target, reach=True)
    assert back.probe(9.0, target, reach=True, padded=True)
    back.on_remb(70.0, 230_000)  # a minute later what it carried is forgotten
    assert back.reach_limit(padded=True) == 0


def test_the_first_report_after_an_outage_does_not_cut_the_estimate() -> None:
    estimator = Estimator()
    estimator.on_sent(0.0, 0)
    estimator.on_sent(1.0, 125_000)  # 1 Mbit/s
    estimator.on_remb(1.0, 1_200_000)
    estimator.on_receiver_report(1.0, "v0", 0)
    before = estimator.estimate
    estimator.on_sent(12.0, 1_500_000)
    estimator.on_receiver_report(12.0, "v0", 250)  # 98 % lost: the 11 s the network was away
    assert estimator.estimate == before, "the outage is not the link's rate"
    estimator.on_receiver_report(13.0, "v0", 192)  # 75 % a second later: the link now
    assert estimator.estimate < before


def test_a_falling_remb_goes_at_once_and_others_at_most_every_200_ms() -> None:
    from meetings.rtc.estimate import RembThrottle

    throttle = RembThrottle()
    assert throttle.allow(1_000, 500_000), "the first goes"
    assert not throttle.allow(1_010, 500_000), "the same, 10 ms later"
    assert not throttle.allow(1_050, 600_000), "a rise waits"
    assert not throttle.allow(1_100, 490_000), "a fall of 2 % is not one"
    assert throttle.allow(1_120, 480_000), "a fall of 4 % goes at once"
    assert not throttle.allow(1_300, 700_000), "199 ms after the last one sent"
    assert throttle.allow(1_320, 700_000), "200 ms after it"
    assert throttle.held == 4 and throttle.sent == 700_000


def _probing_at(estimator: Estimator, now: float, rtt: float) -> int:
    """A receiver sent 200 kbit/s with round trips of ``rtt`` before ``now``, then a probe
    starts at ``now``; the estimate before it."""
    estimator.on_sent(now - 5.0, 0)
    estimator.on_sent(now - 4.5, 12_500)
    estimator.on_remb(now - 4.5, 150_000)  # the first REMB, below what we send: the start
    for second in range(5):
        t = now - 4.0 + second
        estimator.on_sent(t, 25_000 * (second + 1))
        estimator.on_remb(t, 260_000 + 20_000 * second)  # growing: Chromium sees room
        estimator.on_receiver_report(t, "v0", 0, rtt=rtt + 0.01 * (second % 2))
        estimator.update(t)
    before = estimator.estimate
    assert estimator.probe(now, 360_000) and estimator.probing  # within what the REMB charted
    return before


def test_a_probe_fails_when_the_round_trip_shows_the_links_queue_filling() -> None:
    # On a 300 kbit/s link a probe to 311 kbit/s held (no loss yet, the REMB flat) while the
    # round trip went from 186 to 309 ms: the queue was filling.
    estimator = Estimator()
    before = _probing_at(estimator, 10.0, rtt=0.190)
    estimator.on_receiver_report(10.6, "v0", 0, rtt=0.260)  # within 100 ms of the shortest: jitter
    assert estimator.probing and estimator.estimate == 360_000
    estimator.on_receiver_report(11.1, "v0", 0, rtt=0.309)
    assert not estimator.probing and estimator.estimate == before and estimator.failed_probes == 1
    assert not estimator.can_probe(11.5), "held off as after any failed probe"


def test_a_probe_whose_round_trip_stays_holds_and_a_later_rise_is_no_verdict_on_it() -> None:
    estimator = Estimator()
    _probing_at(estimator, 10.0, rtt=0.150)
    for t in (10.5, 11.0, 11.4):
        estimator.on_receiver_report(t, "v0", 0, rtt=0.16)
    estimator.update(11.6)
    assert not estimator.probing and estimator.estimate >= 360_000 and estimator.failed_probes == 0
    estimator.on_receiver_report(20.0, "v0", 0, rtt=0.5)  # long after: not the probe's doing
    assert estimator.estimate >= 360_000 and estimator.failed_probes == 0
