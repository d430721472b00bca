"""The port through which a room drives its media plane (the SFU, or a fake in tests).

The room decides (mute, floor, removal, the end) and tells the media plane in the same step as
it announces the change, so room and media cannot disagree. Nothing here knows WebRTC.
"""

from __future__ import annotations

from typing import Literal, Protocol

Kind = Literal["audio", "video"]


class MediaControl(Protocol):
    """What a room asks of its media plane.

    Calls about a connection whose media has not arrived yet are ignored: the room repeats its
    state for that connection when it does (`Room.media_connected`).
    """

    def set_muted(self, participant: str, kind: Kind, muted: bool) -> None:
        """Forward (or stop forwarding) a connection's microphone or camera."""
        ...

    def set_pinned(self, participants: set[str]) -> None:
        """Connections whose video every receiver gets first (the chair)."""
        ...

    async def disconnect(self, participant: str) -> None:
        """Drop a connection's media (removed, replaced, the meeting ended); safe to call twice."""
        ...


class NoMedia:
    """A room without media (before the first connection's media, and in most room tests)."""

    def set_muted(self, participant: str, kind: Kind, muted: bool) -> None:
        """Nothing to forward."""

    def set_pinned(self, participants: set[str]) -> None:
        """Nothing to pin."""

    async def disconnect(self, participant: str) -> None:
        """Nothing to drop."""
