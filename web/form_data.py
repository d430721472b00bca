"""A posted form as plain values (its own module so that web/keys.py can name its type without
importing the body parser, which imports the keys)."""

from __future__ import annotations

from dataclasses import dataclass

from multidict import MultiDict, MultiDictProxy

from meetings.errors import N_, FieldError, InvalidInput

MAX_FIELD = 10_000  # characters of one text field


@dataclass(frozen=True)
class Upload:
    """A file sent in a form, read into memory (the body size limit bounds it)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Form:
    """A posted form, read once: its text fields and its files, by name."""

    fields: MultiDictProxy[str]
    files: MultiDictProxy[Upload]

    def text(self, name: str, limit: int = MAX_FIELD) -> str:
        """One text field ('' when absent); a file or an over-long value is refused (422)."""
        if name in self.files:
            raise InvalidInput([FieldError(name, N_("This field must be text."))])
        value = self.fields.get(name, "")
        if len(value) > limit:
            raise InvalidInput([FieldError(name, N_("Use at most %(n)s characters."), {"n": limit})])
        return value

    def texts(self, name: str, limit: int = MAX_FIELD, count: int = 500) -> list[str]:
        """Every value of a repeated text field (checkboxes), at most `count` of them."""
        if name in self.files:
            raise InvalidInput([FieldError(name, N_("This field must be text."))])
        values = self.fields.getall(name, [])
        if len(values) > count or any(len(v) > limit for v in values):
            raise InvalidInput([FieldError(name, N_("Too many or too long values."))])
        return list(values)

    def file(self, name: str) -> Upload | None:
        """An uploaded file (None when absent, or when text was sent in its place)."""
        return self.files.get(name)


EMPTY_FORM = Form(MultiDictProxy(MultiDict()), MultiDictProxy(MultiDict()))
