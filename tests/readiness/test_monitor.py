"""The meeting monitor's rules on plain samples: time on weak links, alerts, claims, outcomes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from meetings.readiness.models import ConnectionOutcome
from meetings.readiness.monitor import (
    MONITOR_MESSAGES,
    AlertView,
    ClientClaim,
    LinkSample,
    MeetingMonitor,
    MonitorRules,
    ParticipantView,
    UnitInfo,
    UnitTrack,
    UnitView,
    claim_flags,
    outcome,
)
from meetings.wire import fields_of

START = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)  # 07:30 in Huế
RULES = MonitorRules(
    sample_seconds=5, alert_seconds=120, weak_share=0.2, weak_dropouts=2, weak_join_delay_s=600
)
A = UnitInfo(1, "P-AN", "Phường An Cựu")
B = UnitInfo(2, "P-BINH", "Phường Bình")


def sample(participant: str = "a1", person: int = 10, unit: int | None = 1, **kw: object) -> LinkSample:
    values: dict[str, object] = {
        "downlink_bps": 1_500_000,
        "uplink_bps": 400_000,
        "loss_pct": 0.5,
        "rtt_ms": 40.0,
    }
    values.update(kw)
    return LinkSample(participant, person, unit, "Nguyễn Văn An", **values)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def monitor() -> MeetingMonitor:
    return MeetingMonitor(99, START, RULES, [A, B])


def test_time_is_counted_per_unit_on_its_best_connection() -> None:
    m = monitor()
    for t in range(0, 65, 5):  # a minute connected, half of it with one of two connections audio only
        limited = t >= 30
        m.observe([sample(), sample("a2", 11, audio_only=limited)], at(t))
    track = m.tracks[1]
    assert track.connected_s == 60
    assert track.audio_only_s == 0  # the unit still saw the meeting on its other connection
    assert track.weak_s == 0
    for t in range(65, 125, 5):
        m.observe([sample(audio_only=True), sample("a2", 11, paused=True)], at(t))
    # Each period is counted as the sample that ends it found the unit.
    assert track.audio_only_s == track.weak_s == 60
    assert track.first_connected_at == START


def test_audio_only_for_the_alert_period_raises_one_alert() -> None:
    m = monitor()
    raised = []
    for t in range(0, 200, 5):
        raised += m.observe([sample(audio_only=True)], at(t))
    assert [(a.kind, a.unit_id, a.unit) for a in raised] == [("audio_only", 1, "Phường An Cựu")]
    assert raised[0].since == at(0).isoformat()
    assert [a.kind for a in m.alerts()] == ["audio_only"]
    m.observe([sample()], at(200))  # video again: the alert goes
    assert m.alerts() == []


def test_a_unit_whose_last_connection_leaves_drops_out_unless_excused() -> None:
    m = monitor()
    m.excused = {2}
    m.observe([sample(), sample("b1", 20, 2)], at(0))
    raised = m.observe([], at(5))
    assert [(a.kind, a.unit_id) for a in raised] == [("dropped", 1)]  # B is excused: no alert
    assert m.tracks[1].dropouts == m.tracks[2].dropouts == 1
    assert [u.status for u in m.state(at(5)).units] == ["dropped", "dropped"]
    # Excused by the board afterwards: no longer an alert, still a drop-out.
    m.excused = {1, 2}
    m.drop_excused_alerts()
    assert m.alerts() == [] and m.tracks[1].dropouts == 1
    m.excused = {2}
    # Back with a new connection: a reconnect, the alert gone.
    m.observe([sample("a9", 10)], at(10))
    assert m.alerts() == []
    assert m.tracks[1].reconnects == 1
    assert m.state(at(10)).units[0].participants[0].reconnects == 1


def test_the_end_is_no_drop_out() -> None:
    m = monitor()
    m.observe([sample()], at(0))
    m.observe([sample()], at(5))
    m.finish(at(7))
    assert m.tracks[1].dropouts == 0
    assert m.tracks[1].connected_s == 7
    assert m.alerts() == []


def test_a_long_gap_is_not_counted_as_connected() -> None:
    m = monitor()
    m.observe([sample()], at(0))
    m.observe([sample()], at(600))  # the loop stalled, or the node restarted
    assert m.tracks[1].connected_s == 0


def test_worst_figures_are_kept() -> None:
    m = monitor()
    m.observe([sample(downlink_bps=900_000, loss_pct=3.0, rtt_ms=120.0)], at(0))
    m.observe([sample(downlink_bps=250_000, loss_pct=1.0, rtt_ms=80.0)], at(5))
    track = m.tracks[1]
    assert (track.min_down_kbps, track.max_loss_pct, track.max_rtt_ms) == (250.0, 3.0, 120.0)


def test_a_claim_that_disagrees_wildly_is_flagged_never_used() -> None:
    honest = sample(claim=ClientClaim(55.0, 1.0, 800.0))
    assert claim_flags(honest) == ()
    forged = sample(claim=ClientClaim(60_000.0, 100.0, 1_000_000.0))
    assert claim_flags(forged) == ("rtt", "loss")
    assert claim_flags(sample(rtt_ms=None, loss_pct=None, claim=ClientClaim(60_000.0, 100.0, 0.0))) == ()
    m = monitor()
    m.observe([forged], at(0))
    view = m.state(at(0)).units[0].participants[0]
    assert (view.rtt_ms, view.loss_pct) == (40, 0.5)  # the server's figures
    assert (view.claim_rtt_ms, view.claim_loss_pct, view.claim_flags) == (60_000, 100.0, ("rtt", "loss"))


def test_outcomes() -> None:
    assert outcome(None, False, START, RULES) is ConnectionOutcome.FAILED
    assert outcome(None, True, START, RULES) is ConnectionOutcome.EXCUSED
    good = UnitTrack(1, first_connected_at=at(-60), connected_s=3600, weak_s=700)
    assert outcome(good, False, START, RULES) is ConnectionOutcome.GOOD
    assert outcome(good, True, START, RULES) is ConnectionOutcome.GOOD  # excused, yet it came
    weak_time = UnitTrack(1, first_connected_at=START, connected_s=3600, weak_s=720)
    assert outcome(weak_time, False, START, RULES) is ConnectionOutcome.WEAK
    dropping = UnitTrack(1, first_connected_at=START, connected_s=3600, dropouts=2)
    assert outcome(dropping, False, START, RULES) is ConnectionOutcome.WEAK
    late = UnitTrack(1, first_connected_at=at(601), connected_s=3000)
    assert outcome(late, False, START, RULES) is ConnectionOutcome.WEAK
    just_in_time = UnitTrack(1, first_connected_at=at(600), connected_s=3000)
    assert outcome(just_in_time, False, START, RULES) is ConnectionOutcome.GOOD


def test_the_view_lists_invited_units_first_then_others() -> None:
    m = monitor()
    m.units[7] = UnitInfo(7, "VP-UBND", "Văn phòng UBND")
    m.observe([sample("c1", 30, 7), sample("x1", 40, None)], at(0))
    units = m.state(at(0)).units
    assert [(u.unit_id, u.status, u.invited) for u in units] == [
        (1, "waiting", True),
        (2, "waiting", True),
        (7, "connected", False),
        (None, "connected", False),
    ]


ROOT = Path(__file__).parent.parent.parent


def test_the_socket_messages_are_documented_and_typed_in_the_page_script() -> None:
    """Declared once (meetings.readiness.monitor); the document and the JSDoc follow."""
    doc = (ROOT / "docs" / "readiness" / "monitor.md").read_text(encoding="utf-8")
    script = (ROOT / "web" / "static" / "js" / "monitor.js").read_text(encoding="utf-8")
    for message in MONITOR_MESSAGES:
        assert f'"type": "{message.TYPE}"' in doc, message
        assert f'type: "{message.TYPE}"' in script, message
        for name in fields_of(message)[1:]:
            assert f'"{name}"' in doc, (message, name)
            assert f"{name}:" in script, (message, name)
    for view in (UnitView, ParticipantView, AlertView):
        for f in dataclasses.fields(view):
            assert f"{f.name}:" in script, (view, f.name)
