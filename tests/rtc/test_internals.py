"""The aiortc internals the SFU relies on are still there (fails loudly on an upgrade)."""

from __future__ import annotations

import types

import aiortc
import aiortc.clock
import pytest

from meetings.rtc import internals


def test_check_internals_passes_on_the_pinned_version() -> None:
    assert aiortc.__version__ == internals.TESTED_AIORTC_VERSION
    internals.check_internals(strict_version=True)


def test_a_missing_internal_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aiortc.RTCRtpReceiver, "_send_rtcp_pli")
    with pytest.raises(internals.InternalsError, match="_send_rtcp_pli"):
        internals.check_internals()


def test_a_changed_signature_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    async def _send_rtp(self: object, data: bytes, extra: int) -> None:
        return None

    monkeypatch.setattr(aiortc.RTCDtlsTransport, "_send_rtp", _send_rtp)
    with pytest.raises(internals.InternalsError, match="_send_rtp"):
        internals.check_internals()


def test_a_renamed_private_attribute_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    original = aiortc.RTCRtpSender.__init__

    def __init__(self: aiortc.RTCRtpSender, trackOrKind: object, transport: object) -> None:
        original(self, trackOrKind, transport)  # type: ignore[arg-type]

    monkeypatch.setattr(aiortc.RTCRtpSender, "__init__", __init__)
    with pytest.raises(internals.InternalsError, match=r"RTCRtpSender\.__init__ no longer uses"):
        internals.check_internals()


def test_rtp_and_rtcp_datagrams_skip_the_stun_parse_and_stun_still_gets_it() -> None:
    got: list[tuple[str, bytes, int]] = []

    class Receiver:
        def data_received(self, data: bytes, component: int) -> None:
            got.append(("data", data, component))

    class Protocol:
        def __init__(self) -> None:
            self.receiver = Receiver()
            self.local_candidate = types.SimpleNamespace(component=1)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append(("stun parse", data, 0))

    protocol = Protocol()
    internals._skip_stun_parse(protocol)
    rtp, rtcp, stun = b"\x80\x60" + bytes(10), b"\x81\xc9" + bytes(6), b"\x00\x01" + bytes(18)
    for datagram in (rtp, rtcp, stun, b""):
        protocol.datagram_received(datagram, ("127.0.0.1", 9))
    assert got == [("data", rtp, 1), ("data", rtcp, 1), ("stun parse", stun, 0), ("stun parse", b"", 0)]
    assert abs(internals.now_ms() - aiortc.clock.current_ms()) < 50
