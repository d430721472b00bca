"""Connection-quality levels: what the server tells everyone from a client's `stats`."""

from __future__ import annotations

import pytest

from meetings.live.protocol import quality_level


@pytest.mark.parametrize(
    ("rtt_ms", "loss_pct", "level"),
    [
        (None, None, None),
        (20.0, None, None),
        (20.0, 0.0, "good"),
        (249.0, 1.9, "good"),
        (250.0, 0.0, "fair"),
        (20.0, 2.0, "fair"),
        (599.0, 7.9, "fair"),
        (600.0, 0.0, "poor"),
        (20.0, 8.0, "poor"),
        (60_000.0, 100.0, "poor"),
    ],
)
def test_levels_from_round_trip_and_loss(
    rtt_ms: float | None, loss_pct: float | None, level: str | None
) -> None:
    assert quality_level(rtt_ms, loss_pct) == level
