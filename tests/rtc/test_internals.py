"""The aiortc internals the SFU relies on are still there (fails loudly on an upgrade)."""

from __future__ import annotations

import aiortc
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
