"""Domain errors; the web layer maps them to HTTP answers and translates their messages."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any


def N_(message: str) -> str:
    """Mark a message for translation without translating it (translated where shown)."""
    return message


@dataclass
class FieldError:
    """One problem with one input field (or a CSV line)."""

    field: str
    message: str
    params: dict[str, Any] = dc_field(default_factory=dict)
    line: int | None = None


class DomainError(Exception):
    """Base of errors a user can act on; `message` is a msgid with %(name)s params."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params


class NotFound(DomainError):
    """The thing asked for does not exist."""


class Forbidden(DomainError):
    """The person may not do this."""


class Conflict(DomainError):
    """The change clashes with the current state (duplicate, stale version)."""


class InvalidInput(DomainError):
    """Input failed validation; `errors` lists every problem found."""

    def __init__(
        self,
        errors: list[FieldError],
        message: str = N_("Please correct the marked fields."),
        **params: Any,
    ) -> None:
        super().__init__(message, **params)
        self.errors = errors

    @classmethod
    def one(cls, error: FieldError) -> InvalidInput:
        """A single problem that is also the summary message (its parameters filled in both)."""
        return cls([error], error.message, **error.params)


class RateLimited(DomainError):
    """Too many attempts; try again later."""
