"""The connection check's domain: verdict, advice, seal, report validation, who to call, the probe."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from meetings.directory.models import Role, UnitKind
from meetings.errors import InvalidInput, RateLimited
from meetings.readiness import checks
from meetings.readiness.checks import Devices, Network, Thresholds
from meetings.readiness.models import CheckVerdict, ConnectionCheck
from meetings.rtc.probe import (
    ProbeBusy,
    ProbeConfig,
    ProbeFigures,
    ProbeRefused,
    ProbeServer,
    Window,
    wire_kbps,
)
from tests.conftest import World
from tests.readiness.probe_client import run_probe

SECRET = "s" * 32
LIMITS = Thresholds()
OK = Devices(camera_ok=True, microphone_ok=True, speaker_ok=True)


def net(
    down: float | None = 2000, up: float | None = 1000, loss: float | None = 0, rtt: float | None = 20
) -> Network:
    return Network(probe="p", rtt_ms=rtt, loss_pct=loss, down_kbps=down, up_kbps=up, complete=True)


@pytest.mark.parametrize(
    ("network", "devices", "expected"),
    [
        (net(), OK, CheckVerdict.VIDEO),
        (net(down=500, up=300, loss=5, rtt=400), OK, CheckVerdict.VIDEO),  # the thresholds are inclusive
        (net(down=499), OK, CheckVerdict.AUDIO),
        (net(up=299), OK, CheckVerdict.AUDIO),
        (net(loss=5.1), OK, CheckVerdict.AUDIO),
        (net(rtt=401), OK, CheckVerdict.AUDIO),
        (net(down=64, up=48, loss=20, rtt=1000), OK, CheckVerdict.AUDIO),
        (net(down=63), OK, CheckVerdict.FAILED),
        (net(loss=21), OK, CheckVerdict.FAILED),
        (net(up=None), OK, CheckVerdict.FAILED),  # the probe was cut before the uplink
        (None, OK, CheckVerdict.FAILED),  # never reached the media server
        (net(), Devices(camera_ok=False), CheckVerdict.AUDIO),  # no picture: audio at best
        (net(down=100), Devices(camera_ok=False), CheckVerdict.AUDIO),
        (net(), Devices(microphone_ok=False, speaker_ok=False), CheckVerdict.VIDEO),  # advice, not verdict
    ],
)
def test_the_verdict(network: Network | None, devices: Devices, expected: CheckVerdict) -> None:
    assert checks.verdict(network, devices, LIMITS) is expected


def test_the_thresholds_come_from_the_settings(world: World) -> None:
    import dataclasses

    settings = dataclasses.replace(world.settings, check_video_down_kbps=250, check_video_up_kbps=250)
    limits = Thresholds.from_settings(settings)
    assert checks.verdict(net(down=300, up=300), OK, limits) is CheckVerdict.VIDEO
    assert checks.verdict(net(down=300, up=300), OK, LIMITS) is CheckVerdict.AUDIO


def test_advice_says_what_to_try() -> None:
    assert checks.advice(net(), OK, CheckVerdict.VIDEO, LIMITS) == [checks.ADVICE_READY]
    assert checks.advice(net(down=300), OK, CheckVerdict.AUDIO, LIMITS) == [checks.ADVICE_AUDIO]
    assert checks.advice(None, OK, CheckVerdict.FAILED, LIMITS) == [checks.ADVICE_UNREACHABLE]
    weak = checks.advice(net(down=10, loss=30), OK, CheckVerdict.FAILED, LIMITS)
    assert weak == [checks.ADVICE_WEAK, checks.ADVICE_LOSS]
    broken = Devices(camera_ok=False, microphone_ok=False, speaker_ok=False)
    tips = checks.advice(net(), broken, CheckVerdict.AUDIO, LIMITS)
    assert tips == [checks.ADVICE_CAMERA, checks.ADVICE_MICROPHONE, checks.ADVICE_SPEAKER]


def test_a_seal_carries_the_servers_figures_for_one_person_only() -> None:
    figures = ProbeFigures(
        probe="abc", rtt_ms=12.5, loss_pct=1.0, down_kbps=900.0, up_kbps=400.0, complete=True
    )
    seal = checks.seal_figures(SECRET, 7, figures.as_dict())
    opened = checks.open_figures(SECRET, 7, seal)
    assert opened == Network("abc", 12.5, 1.0, 900.0, 400.0, True)
    with pytest.raises(InvalidInput) as other:
        checks.open_figures(SECRET, 8, seal)  # another person's measurement
    assert other.value.errors[0].field == "probe"
    forged = seal[:-3] + ("AAA" if not seal.endswith("AAA") else "BBB")
    with pytest.raises(InvalidInput):
        checks.open_figures(SECRET, 7, forged)
    with pytest.raises(InvalidInput):
        checks.open_figures("another secret key of 32 chars..", 7, seal)
    with pytest.raises(InvalidInput) as old:
        checks.open_figures(SECRET, 7, seal, max_age=-1)
    assert "too old" in old.value.errors[0].message
    with pytest.raises(InvalidInput):
        checks.open_figures(SECRET, 7, "x" * 5000)


def test_a_report_is_validated_whole() -> None:
    report = checks.parse_report(
        {
            "camera_ok": True,
            "microphone_ok": False,
            "speaker_ok": None,
            "probe": "seal",
            "client": {"rtt_ms": 30, "down_kbps": 1200.5, "jitter": 3},
            "error": "bad\x00 thing",
        }
    )
    assert report.devices == Devices(True, False, None)
    assert report.client == {"rtt_ms": 30.0, "down_kbps": 1200.5}  # unknown figures ignored
    assert report.error == "bad thing"
    with pytest.raises(InvalidInput) as bad:
        checks.parse_report(
            {
                "camera_ok": "yes",
                "probe": 5,
                "client": {"rtt_ms": -1, "loss_pct": 150, "down_kbps": 1e12, "up_kbps": True},
            }
        )
    fields = sorted(e.field for e in bad.value.errors)
    assert fields == [
        "camera_ok",
        "client.down_kbps",
        "client.loss_pct",
        "client.rtt_ms",
        "client.up_kbps",
        "probe",
    ]
    with pytest.raises(InvalidInput):
        checks.parse_report({"client": [1, 2]})
    assert checks.parse_report({}).devices == Devices()


async def test_who_to_call(world: World) -> None:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, phone=" 0234 3822 999 ")
    silent = await world.unit("VIETTEL", UnitKind.TELECOM)
    served = await world.unit("P-A", operator_id=vnpt.id)
    unserved = await world.unit("P-B", operator_id=silent.id)
    alone = await world.unit("P-C")
    async with world.db() as db:
        assert await checks.support_phone(db, served.id, "1900 1234") == "0234 3822 999"
        assert await checks.support_phone(db, unserved.id, "1900 1234") == "1900 1234"  # no phone
        assert await checks.support_phone(db, alone.id, "1900 1234") == "1900 1234"  # no operator
        assert await checks.support_phone(db, None, "") == ""


async def test_a_check_is_stored_for_the_person_and_their_unit(world: World) -> None:
    unit = await world.unit("P-A")
    person = await world.person("a@hue.example", Role.MEMBER, unit)
    report = checks.parse_report({"camera_ok": True, "microphone_ok": True, "speaker_ok": False})
    async with world.db() as db:
        first = await checks.record_check(db, person, report, net(down=300), LIMITS)
        second = await checks.record_check(db, person, report, None, LIMITS)
        await db.commit()
        assert (await checks.last_check(db, person.id)) is second
        assert await checks.last_check(db, person.id + 1) is None
        rows = list(await db.scalars(select(ConnectionCheck).order_by(ConnectionCheck.id)))
    assert [r.verdict for r in rows] == [CheckVerdict.AUDIO, CheckVerdict.FAILED]
    assert rows[0].unit_id == unit.id and rows[0].down_kbps == 300 and rows[0].speaker_ok is False
    assert rows[0].details["advice"] == [checks.ADVICE_AUDIO, checks.ADVICE_SPEAKER]
    assert rows[1].down_kbps is None and rows[1].details["source"] == "none"
    assert first.id != second.id


def test_the_limiter_counts_each_persons_starts_in_a_minute() -> None:
    now = [0.0]
    limiter = checks.ProbeLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.take(1)
    with pytest.raises(RateLimited):
        limiter.take(1)
    limiter.take(2)  # someone else
    now[0] = 60.0
    limiter.take(1)


def test_throughput_is_counted_at_the_ip_level_after_the_warm_up() -> None:
    assert wire_kbps(1100 * 100, 100, 1.0) == pytest.approx((1100 + 93) * 100 * 8 / 1000)
    assert wire_kbps(0, 0, 1.0) is None
    window = Window(0.5)
    for i in range(21):  # one 1100-byte message every 0.1 s for 2 s
        window.add(1100, i * 0.1)
    # From 0.5 s (its message left out) to 2.0 s: 15 messages in 1.5 s.
    assert window.kbps() == pytest.approx(15 * 1193 * 8 / 1.5 / 1000, abs=0.1)
    short = Window(0.5)
    for i in range(3):
        short.add(1100, i * 0.1)
    assert short.kbps() == pytest.approx(2 * 1193 * 8 / 0.2 / 1000, abs=0.1)
    assert Window(0.5).kbps() is None


FAST = ProbeConfig(ping_seconds=0.5, down_seconds=0.8, up_seconds=0.8, max_bytes=400_000)


async def test_a_probe_measures_round_trip_loss_and_both_ways() -> None:
    server = ProbeServer(FAST)
    sealed: list[ProbeFigures] = []

    def seal(figures: ProbeFigures) -> str:
        sealed.append(figures)
        return "sealed"

    async def answer_for(offer: str) -> str:
        _probe, answer = await server.open(offer, seal)
        return answer

    result = await run_probe(answer_for)
    assert result["seal"] == "sealed" and result["complete"] is True
    # Loopback loses nothing, but a busy machine may answer a ping late: the figure is bounded loosely.
    assert result["pings_sent"] >= 3 and 0 <= result["loss_pct"] <= 20 and result["rtt_ms"] < 1000
    assert result["down_kbps"] and result["up_kbps"], result
    assert 0 < result["down_counted"] <= result["down_sent"] <= FAST.max_bytes + FAST.chunk
    assert result["up_received"] <= FAST.max_bytes
    assert sealed[-1].as_dict() == {k: v for k, v in result.items() if k not in {"t", "seal"}}
    for _ in range(200):  # the probe closes half a second after its result
        if server.running == 0:
            break
        await asyncio.sleep(0.05)
    assert server.running == 0
    await server.close()


async def test_a_node_runs_at_most_its_probes_and_refuses_what_is_no_probe() -> None:
    from aiortc import RTCPeerConnection

    server = ProbeServer(ProbeConfig(max_probes=1, limit_seconds=3))
    client = RTCPeerConnection()
    client.createDataChannel("control")
    await client.setLocalDescription(await client.createOffer())
    offer = client.localDescription.sdp
    probe, _answer = await server.open(offer, lambda f: "")
    with pytest.raises(ProbeBusy):
        await server.open(offer, lambda f: "")
    with pytest.raises(ProbeRefused):
        await server.open("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", lambda f: "")
    # Never connected (the client never answers): the probe ends at its limit, its place freed.
    figures = await probe.done()
    assert figures.complete is False and figures.rtt_ms is None
    assert server.running == 0
    await client.close()
    await server.close()


async def test_a_client_that_leaves_mid_probe_ends_it() -> None:
    server = ProbeServer(ProbeConfig(ping_seconds=0.5, down_seconds=2, up_seconds=2, limit_seconds=20))
    probes: list[Any] = []

    async def answer_for(offer: str) -> str:
        probe, answer = await server.open(offer, lambda f: "")
        probes.append(probe)
        return answer

    await run_probe(answer_for, stop_after="ping")
    figures = await asyncio.wait_for(probes[0].done(), 20)
    assert figures.complete is False and figures.pings_sent > 0
    assert server.running == 0
    await server.close()


def test_the_protocol_is_the_same_in_the_server_the_browser_and_the_document() -> None:
    import re
    from pathlib import Path

    from meetings.rtc import probe

    root = Path(__file__).parent.parent.parent
    server = (root / "meetings/rtc/probe.py").read_text(encoding="utf-8")
    browser = (root / "web/static/js/check/probe.js").read_text(encoding="utf-8")
    document = (root / "docs/readiness/check.md").read_text(encoding="utf-8")
    sent_by_server = set(re.findall(r'"t": "([a-z-]+)"', server))
    sent_by_browser = set(re.findall(r't: "([a-z-]+)"', browser))
    read_by_browser = set(re.findall(r'data\.t === "([a-z-]+)"', browser))
    read_by_server = set(re.findall(r'(?:kind == |_expect\()"([a-z-]+)"', server))
    assert sent_by_server == read_by_browser == set(probe.SERVER_MESSAGES)
    assert sent_by_browser == read_by_server == set(probe.CLIENT_MESSAGES)
    for name in {*probe.SERVER_MESSAGES, *probe.CLIENT_MESSAGES}:
        assert f'"t":"{name}"' in document, name
    assert set(re.findall(r'createDataChannel\("([a-z]+)"', browser)) == set(probe.CHANNELS)
    for channel in probe.CHANNELS:
        assert f"`{channel}`" in document, channel


async def test_closing_the_node_ends_its_probes() -> None:
    from aiortc import RTCPeerConnection

    server = ProbeServer(ProbeConfig(limit_seconds=30))
    client = RTCPeerConnection()
    client.createDataChannel("control")
    await client.setLocalDescription(await client.createOffer())
    probe, _answer = await server.open(client.localDescription.sdp, lambda f: "")
    await server.close()
    assert server.running == 0
    assert (await probe.done()).complete is False
    await client.close()


async def test_a_forged_download_figure_is_kept_within_what_the_server_sent() -> None:
    # The download runs its whole second (no byte limit reached): the pace is at most sent/1 s.
    server = ProbeServer(ProbeConfig(ping_seconds=0.3, down_seconds=1.0, up_seconds=0.3, max_bytes=10**9))

    async def answer_for(offer: str) -> str:
        _probe, answer = await server.open(offer, lambda f: "")
        return answer

    forged = await run_probe(answer_for, forge=True)
    assert forged["down_counted"] == forged["down_sent"]  # no more than was sent
    # At most a quarter above the server's own sending pace (the claim was 8 MB in 0.1 s).
    sent_kbps = wire_kbps(forged["down_sent"], forged["down_sent"] // 1100, 1.0)
    assert sent_kbps is not None and forged["down_kbps"] <= sent_kbps * 1.25 + 1
    await server.close()
