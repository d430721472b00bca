"""How our mail goes on the wire: headers with non-ASCII text folded as RFC 2047 words we control.

Python 3.11's own folder moves the space between two words out of the encoded words it makes,
into the folding whitespace between them; RFC 2047 says a reader drops whitespace between
encoded words, so "xuất về" arrived as "xuấtvề" (and display names broke the same way). Here
a header with non-ASCII text is cut into base64 encoded words at character boundaries, spaces
kept inside the words, so a reader joins the words back into exactly the text we wrote.
"""

from __future__ import annotations

import base64
from email.headerregistry import AddressHeader, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any

MAX_LINE = 78  # RFC 5322's recommended line length, the policy's max_line_length
MAX_WORD = 75  # RFC 2047: an encoded word is at most 75 characters
_PREFIX = "=?utf-8?b?"
_SUFFIX = "?="


def _word(chunk: str) -> str:
    return _PREFIX + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + _SUFFIX


def _word_length(n_bytes: int) -> int:
    return len(_PREFIX) + 4 * ((n_bytes + 2) // 3) + len(_SUFFIX)


def encoded_words(text: str, first_room: int) -> list[str]:
    """The text as base64 encoded words; the first fits in first_room columns, the others in 77.

    Words are cut between characters, never inside one (a reader decodes each word alone).
    """
    words: list[str] = []
    room = max(first_room, _word_length(4))
    chunk = ""
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if chunk and _word_length(size + n) > min(room, MAX_WORD):
            words.append(_word(chunk))
            chunk, size, room = "", 0, MAX_LINE - 1
        chunk += ch
        size += n
    if chunk or not words:
        words.append(_word(chunk))
    return words


class MailPolicy(EmailPolicy):
    """SMTP's policy (CRLF, 78 columns) with our folding of non-ASCII subjects and names."""

    def fold(self, name: str, value: Any) -> str:
        """The header as folded text (the generator's text path)."""
        folded = self._fold_non_ascii(name, value)
        return folded if folded is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        """The header as folded bytes (the generator's bytes path, used by as_bytes)."""
        folded = self._fold_non_ascii(name, value)
        return folded.encode("ascii") if folded is not None else super().fold_binary(name, value)

    def _fold_non_ascii(self, name: str, value: Any) -> str | None:
        """Our folding of an unstructured or address header with non-ASCII text; else None."""
        if str(value).isascii():
            return None
        if isinstance(value, UnstructuredHeader):
            words = encoded_words(str(value), MAX_LINE - len(name) - 2)
            return f"{name}: " + (self.linesep + " ").join(words) + self.linesep
        if isinstance(value, AddressHeader):
            if any(g.display_name is not None for g in value.groups) or any(
                not a.addr_spec.isascii() for a in value.addresses
            ):
                return None  # groups and internationalised addresses: the standard way
            return self._fold_addresses(name, value)
        return None  # parameters (filenames) use RFC 2231 and fold correctly already

    def _fold_addresses(self, name: str, value: AddressHeader) -> str:
        lines = [f"{name}:"]
        for i, address in enumerate(value.addresses):
            last = i == len(value.addresses) - 1
            tail = f"<{address.addr_spec}>" + ("" if last else ",")
            display = address.display_name
            if not display:
                pieces = [tail]
            elif display.isascii():
                pieces = [str(address) + ("" if last else ",")]
            else:
                # Whole words rather than filling the line: a name that fits one encoded word
                # stays one, which every reader (Python's address parser too) joins exactly.
                first_room = MAX_LINE - len(name) - 2 if i == 0 else MAX_WORD
                pieces = [*encoded_words(display, first_room), tail]
            for piece in pieces:
                if len(lines[-1]) + 1 + len(piece) > MAX_LINE and lines[-1] != f"{name}:":
                    lines.append("")
                lines[-1] += " " + piece
        return self.linesep.join(lines) + self.linesep


POLICY = MailPolicy(linesep="\r\n")


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as RFC 5322 bytes with CRLF line ends and headers that read back exactly."""
    return message.as_bytes(policy=POLICY)
