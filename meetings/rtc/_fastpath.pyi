"""Type stub for the C fan-out (meetings/rtc/_fastpath.c)."""

import builtins
from collections.abc import Callable
from typing import Any

HISTORY: int
WIRE_OVERHEAD: int

class Wire:
    bound: int
    direct: int
    paced: int
    rate: float
    tokens: float
    refilled: float
    packets: int
    bytes: int
    fast_packets: int
    fast_bytes: int
    dropped: int
    def bind(
        self, protect: int, ctx: int, buf: int, limit: int, keep: object, sock: object, host: str, port: int
    ) -> None: ...
    def unbind(self) -> None: ...
    def send(self, header: builtins.bytes | bytearray, payload: builtins.bytes) -> None: ...
    def set_rate(self, rate: float | None, now: float) -> None: ...
    def budget(self, size: float, now: float) -> bool: ...
    def debit(self, size: float, now: float) -> None: ...

class Slot:
    video: int
    waiting_keyframe: bool
    forwarded: int
    skipped_waiting_keyframe: int
    skipped_temporal: int
    tid_want: int
    @property
    def tid_max(self) -> int: ...
    @property
    def pic_offset(self) -> int: ...
    @property
    def pic_last_out(self) -> int: ...
    @property
    def tl0_offset(self) -> int: ...
    @property
    def tl0_last_out(self) -> int: ...
    @property
    def started(self) -> bool: ...
    @property
    def out_seq(self) -> int: ...
    @out_seq.setter
    def out_seq(self, value: int) -> None: ...
    @property
    def out_ts(self) -> int: ...
    @property
    def out_time(self) -> float: ...
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    def _core_setup(
        self, video: bool, clock_rate: float, payload_types: dict[str, int], templates: list[Any]
    ) -> None: ...
    def _core_connect(self, wire: Wire | None, push: Callable[..., None]) -> None: ...
    def restart(self) -> None: ...
    def rebase(self) -> None: ...
    def history_get(self, seq: int) -> tuple[int, int, int, bytes] | None: ...
    def forward(
        self,
        codec: str,
        seq: int,
        timestamp: int,
        marker: int,
        payload: bytes,
        keyframe: bool,
        audio_level: int | None,
        send_time: int | None,
        now: float,
    ) -> bool: ...

def fanout(
    sinks: list[Any],
    codec: str,
    seq: int,
    timestamp: int,
    marker: int,
    payload: bytes,
    keyframe: bool,
    audio_level: int | None,
    send_time: int | None,
    now: float,
    probe: Callable[[bool, float], None] | None,
) -> int: ...
