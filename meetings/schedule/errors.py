"""Domain errors raised by the scheduling core."""

from __future__ import annotations

from collections.abc import Mapping


class ScheduleError(Exception):
    """A scheduling request the domain refuses, with a stable code and a translatable message."""

    def __init__(self, code: str, message_id: str, params: Mapping[str, object] | None = None) -> None:
        self.code = code
        # message_id is an English gettext msgid with %(name)s placeholders filled from params.
        self.message_id = message_id
        self.params: dict[str, object] = dict(params or {})
        super().__init__(code, self.message)

    @property
    def message(self) -> str:
        """The untranslated message with its parameters filled in."""
        return self.message_id % self.params if self.params else self.message_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
