"""The room's media port (meetings.rooms.media.MediaControl) implemented by a room's SFU."""

from __future__ import annotations

from meetings.rooms.media import Kind
from meetings.rtc.sfu import Sfu


class SfuMedia:
    """Drives one SFU on behalf of its room; connections without media yet are skipped."""

    def __init__(self, sfu: Sfu) -> None:
        self.sfu = sfu

    def set_muted(self, participant: str, kind: Kind, muted: bool) -> None:
        """Forward (or stop forwarding) a connection's microphone or camera."""
        if participant in self.sfu.participants():
            self.sfu.set_muted(participant, kind, muted)

    def set_pinned(self, participants: set[str]) -> None:
        """Connections whose video every receiver gets first."""
        self.sfu.set_pinned(participants & set(self.sfu.participants()))

    async def disconnect(self, participant: str) -> None:
        """Drop a connection's peer connection (safe if it has none)."""
        await self.sfu.leave(participant)
