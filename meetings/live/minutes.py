"""Who watches which minutes on this node, and the push to them (the minutes socket's fan-out)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


class Viewer(Protocol):
    """One open minutes socket, as the hub sees it (web/minutes_live.Viewer)."""

    @property
    def minutes_id(self) -> int:
        """The minutes watched."""
        ...

    def post(self, text: str) -> None:
        """Queue encoded text (never blocks; a viewer too slow to follow is closed)."""
        ...

    def close(self) -> None:
        """Close after what is queued."""
        ...


@dataclass
class MinutesHub:
    """The viewers of every minutes on this node."""

    viewers: dict[int, set[Viewer]] = field(default_factory=dict)

    def add(self, viewer: Viewer) -> None:
        """Start pushing to a viewer."""
        self.viewers.setdefault(viewer.minutes_id, set()).add(viewer)

    def remove(self, viewer: Viewer) -> None:
        """Stop pushing to a viewer."""
        group = self.viewers.get(viewer.minutes_id)
        if group is not None:
            group.discard(viewer)
            if not group:
                del self.viewers[viewer.minutes_id]

    def count(self, minutes_id: int) -> int:
        """How many viewers a minutes has on this node."""
        return len(self.viewers.get(minutes_id, ()))

    def push(self, minutes_id: int, message: dict[str, Any]) -> None:
        """Send a message to every viewer of a minutes (encoded once)."""
        group = self.viewers.get(minutes_id)
        if not group:
            return
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        for viewer in list(group):
            viewer.post(text)

    def close_all(self) -> None:
        """Close every viewer (shutdown)."""
        for group in list(self.viewers.values()):
            for viewer in list(group):
                viewer.close()
