"""Invitations at scale: the parts every copy shares are built once per send, the personal ones per invitee.

Each invitee's email differs from the next only by a few values: their name, their signed
join and answer links, their ATTENDEE lines, To, Message-ID, Date and the MIME boundary.
Everything else (the VTIMEZONE, RRULE and EXDATEs, the rendered text and HTML around the
personal values, the folded From and Subject) is the same, so it is built once with the real
builders (icalendar, Jinja, the email package) around placeholders, and each copy fills the
placeholders in. Where the encoding of a line depends on its content (iCalendar folding at
75 octets, quoted-printable soft breaks, RFC 2047 words) that line is encoded per invitee,
with the same functions the full builders use, so every copy is byte for byte the message
`meetings.schedule.invitations_reference` builds one at a time (tests/schedule/test_bulk.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from email import quoprimime
from email.contentmanager import _encode_base64  # type: ignore[attr-defined]
from email.generator import Generator
from email.headerregistry import Address
from email.utils import format_datetime, getaddresses, make_msgid

from icalendar import vCalAddress, vText
from icalendar.parser import Contentline
from markupsafe import escape

from meetings.mail.headers import POLICY
from meetings.schedule import imip
from meetings.schedule.emails import MailFacts, MailText, render
from meetings.schedule.ical import Attendee, CalSeries

# Placeholders: plain ASCII words that neither iCalendar escaping nor folding changes (ical), and
# private-use characters that neither Jinja's autoescape nor gettext changes (text and HTML).
ICS_LINK = "x-giaoban-personal-link-placeholder"
ICS_ATTENDEE = "attendee-placeholder@giaoban.invalid"
NAME = "\ue000name\ue000"
JOIN = "\ue000join\ue000"
ACCEPT = "\ue000accept\ue000"
DECLINE = "\ue000decline\ue000"
_SLOTS = (NAME, JOIN, ACCEPT, DECLINE)

_LINE_ENDS = re.compile(r"\r\n|\r|\n")
_QP_LINE = 78  # email.policy.SMTP's max_line_length, which set_content wraps at


def _lines(text: str) -> list[str]:
    """The lines of a text as bytes.splitlines() cuts its UTF-8 (UTF-8 never hides CR or LF)."""
    lines = _LINE_ENDS.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --- iCalendar -------------------------------------------------------------------------------


def _fold(line: str) -> bytes:
    """A content line folded at 75 octets, as icalendar folds it.

    An ASCII line without a backslash or caret (a link) is cut every 74 characters, which is
    what icalendar's character-by-character folder does with it; anything else goes to it.
    """
    if line.isascii() and "\\" not in line and "^" not in line:
        return "\r\n ".join([line[i : i + 74] for i in range(0, len(line), 74)]).encode("ascii")
    folded: bytes = Contentline(line).to_ical()  # type: ignore[no-untyped-call]
    return folded


def _attendee_line(attendee: Attendee) -> bytes:
    """One folded ATTENDEE line, exactly as ical._add_people and icalendar write it."""
    address = vCalAddress(f"mailto:{attendee.email}")
    address.params["CN"] = attendee.name
    address.params["ROLE"] = attendee.role
    address.params["PARTSTAT"] = "NEEDS-ACTION"
    address.params["RSVP"] = "TRUE"
    line: bytes = Contentline.from_parts("ATTENDEE", address.params, address, sorted=True).to_ical()
    return line


@dataclass(frozen=True)
class IcsTemplate:
    """A calendar serialised once; the personal link and ATTENDEE lines filled in per copy.

    chunks holds folded constant bytes, or a str: an unfolded line with the link placeholder
    (folded per copy, since where a line folds depends on its content), or "" for the place of
    the ATTENDEE lines.
    """

    chunks: tuple[bytes | str, ...]

    @classmethod
    def build(
        cls, serialise: Callable[[CalSeries], bytes], shared: CalSeries, personal_link: bool
    ) -> IcsTemplate:
        """Serialise `shared` with placeholders (its location and URL too when personal_link)."""
        placeholder = replace(shared, attendees=(Attendee(ICS_ATTENDEE, "X"),))
        if personal_link:
            placeholder = replace(placeholder, location=ICS_LINK, url=ICS_LINK)
        data = serialise(placeholder).decode("utf-8")
        assert data.endswith("\r\n")
        chunks: list[bytes | str] = []
        constant: list[str] = []

        def flush() -> None:
            if constant:
                chunks.append("".join(constant).encode("utf-8"))
                constant.clear()

        for line in data[:-2].replace("\r\n ", "").split("\r\n"):
            if line.startswith("ATTENDEE") and f":mailto:{ICS_ATTENDEE}" in line:
                flush()
                chunks.append("")
            elif ICS_LINK in line:
                flush()
                chunks.append(line)
            else:
                constant.append(_fold(line).decode("utf-8") + "\r\n")
        flush()
        return cls(tuple(chunks))

    def fill(self, link: str, attendee_lines: bytes) -> bytes:
        """The calendar of one copy."""
        escaped = vText(link).to_ical().decode("utf-8") if link else ""
        out: list[bytes] = []
        for chunk in self.chunks:
            if isinstance(chunk, bytes):
                out.append(chunk)
            elif chunk == "":
                out.append(attendee_lines)
            else:
                out.append(_fold(chunk.replace(ICS_LINK, escaped)) + b"\r\n")
        return b"".join(out)


class AttendeeLines:
    """The ATTENDEE lines of each copy (the chair's line, the same in every copy, made once)."""

    def __init__(self) -> None:
        self._cache: dict[Attendee, bytes] = {}

    def lines(self, attendees: tuple[Attendee, ...], shared: frozenset[Attendee] = frozenset()) -> bytes:
        out: list[bytes] = []
        for attendee in attendees:
            line = self._cache.get(attendee)
            if line is None:
                line = _attendee_line(attendee) + b"\r\n"
                if attendee in shared:
                    self._cache[attendee] = line
            out.append(line)
        return b"".join(out)


# --- the words -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QpTemplate:
    """A text body quoted-printable encoded once; lines with a personal value encoded per copy."""

    chunks: tuple[str, ...]  # encoded constant lines (with CRLF), or raw lines holding a slot
    personal: tuple[bool, ...]

    @classmethod
    def build(cls, text: str) -> QpTemplate:
        chunks: list[str] = []
        personal: list[bool] = []
        for line in _lines(text):
            if any(slot in line for slot in _SLOTS):
                chunks.append(line)
                personal.append(True)
            else:
                chunks.append(_qp_line(line) + "\r\n")
                personal.append(False)
        return cls(tuple(chunks), tuple(personal))

    def fill(self, values: dict[str, str]) -> str:
        """The encoded body (CRLF line ends, as the generator writes it) of one copy."""
        out: list[str] = []
        for chunk, personal in zip(self.chunks, self.personal, strict=True):
            if not personal:
                out.append(chunk)
                continue
            for slot, value in values.items():
                chunk = chunk.replace(slot, value)
            out.extend(_qp_line(line) + "\r\n" for line in _lines(chunk))
        return "".join(out) or "\r\n"


def _qp_line(line: str) -> str:
    """One line as email.contentmanager's quoted-printable (quoprimime.body_encode) writes it."""
    return quoprimime.body_encode(line.encode("utf-8").decode("latin-1"), _QP_LINE, "\r\n")


# --- the message -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """One copy, ready for the outbox."""

    recipient: str
    subject: str
    wire: bytes


class MessageTemplate:
    """The iMIP email of one send in one language, assembled per copy from pre-built parts.

    The headers and part headers come from one real `imip.build_imip_message` (so From and
    Subject are folded by the same policy), the bodies from the templates above; To, Date,
    Message-ID and the boundary are made per copy the way the email package makes them.
    """

    def __init__(
        self,
        *,
        sender_email: str,
        sender_name: str,
        words: MailText,
        ics_sample: bytes,
        method: str,
        message_id_domain: str,
    ) -> None:
        self.sender_email = sender_email
        self.message_id_domain = message_id_domain
        # The real builder once: its checks (METHOD, ORGANIZER) and its folded headers.
        skeleton = imip.build_imip_message(
            sender_email=sender_email,
            sender_name=sender_name,
            to_email="skeleton@giaoban.invalid",
            to_name="",
            subject=words.subject,
            text="",
            html="",
            ics=ics_sample,
            method=method,
            message_id_domain=message_id_domain,
        )
        skeleton.as_bytes(policy=POLICY)  # sets the boundary, as sending does
        boundary = skeleton.get_boundary()
        assert boundary is not None
        self._boundary = boundary
        self.subject = str(skeleton.get("Subject", ""))
        head: list[bytes | str] = []
        for name, value in skeleton.raw_items():
            if name in {"To", "Date", "Message-ID"}:
                head.append(name)
            else:
                head.append(POLICY.fold_binary(name, value))
        self._head = tuple(head)
        parts = list(skeleton.iter_parts())
        assert len(parts) == 3
        self._part_heads = tuple(
            b"".join(POLICY.fold_binary(n, v) for n, v in part.raw_items()).decode("ascii") for part in parts
        )
        self._dates: dict[str, bytes] = {}

    def _date(self) -> bytes:
        value = format_datetime(datetime.now().astimezone())
        folded = self._dates.get(value)
        if folded is None:
            self._dates.clear()
            folded = POLICY.fold_binary("Date", POLICY.header_factory("Date", value))
            self._dates[value] = folded
        return folded

    def build(self, *, to_email: str, to_name: str, text: str, html: str, ics: bytes) -> Built:
        """One copy's wire bytes, with the recipient and subject the outbox stores."""
        if to_email.casefold() == self.sender_email.casefold():
            raise ValueError("an invitation is not sent to its own organiser")
        to_line, recipient = _to_header(to_name, to_email)
        message_id = make_msgid(domain=self.message_id_domain)
        boundary = Generator._make_boundary()  # type: ignore[attr-defined]
        out: list[bytes] = []
        for item in self._head:
            if isinstance(item, bytes):
                out.append(item.replace(self._boundary.encode("ascii"), boundary.encode("ascii")))
            elif item == "To":
                out.append(to_line)
            elif item == "Date":
                out.append(self._date())
            else:
                out.append(_message_id_line(message_id))
        out.append(b"\r\n")
        calendar = _encode_base64(ics, _QP_LINE).replace("\n", "\r\n")
        body = (
            f"--{boundary}\r\n{self._part_heads[0]}\r\n{text}"
            f"\r\n--{boundary}\r\n{self._part_heads[1]}\r\n{html}"
            f"\r\n--{boundary}\r\n{self._part_heads[2]}\r\n{calendar}"
            f"\r\n--{boundary}--\r\n"
        )
        out.append(body.encode("ascii"))
        return Built(recipient=recipient[:254], subject=self.subject[:300], wire=b"".join(out))


# A display name of words and single spaces (Vietnamese letters included) needs no quoting and
# reads back unchanged; an address of these characters too. Such a non-ASCII name is written by
# MailPolicy._fold_addresses, as the email package would after parsing it.
_PLAIN_NAME = re.compile(r"\w+(?: \w+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True)
class _Mailbox:
    display_name: str
    addr_spec: str


@dataclass(frozen=True)
class _Mailboxes:
    addresses: tuple[_Mailbox, ...]


def _to_header(name: str, address: str) -> tuple[bytes, str]:
    """The folded To header and the envelope recipient, as outbox.enqueue would find it."""
    if not name.isascii() and _PLAIN_NAME.fullmatch(name) and _PLAIN_ADDRESS.fullmatch(address):
        folded = POLICY._fold_addresses("To", _Mailboxes((_Mailbox(name, address),)))  # type: ignore[arg-type]
        return folded.encode("ascii"), address
    to = POLICY.header_factory("To", Address(display_name=name, addr_spec=address))
    recipients = [addr for _name, addr in getaddresses([str(to)]) if addr]
    if not recipients:
        raise ValueError("a message needs at least one To address")
    return POLICY.fold_binary("To", to), ", ".join(recipients)


def _message_id_line(message_id: str) -> bytes:
    line = f"Message-ID: {message_id}\r\n"
    if line.isascii() and len(line) <= 80:
        return line.encode("ascii")
    return POLICY.fold_binary("Message-ID", POLICY.header_factory("Message-ID", message_id))


@dataclass(frozen=True)
class WordsTemplate:
    """Subject, text and HTML of one send in one language, with slots for the personal values."""

    words: MailText
    text: QpTemplate
    html: QpTemplate

    @classmethod
    def build(cls, facts: MailFacts, language: str) -> WordsTemplate:
        slotted = replace(
            facts,
            recipient_name=NAME,
            join_url=JOIN if facts.join_url else "",
            accept_url=ACCEPT if facts.accept_url else "",
            decline_url=DECLINE if facts.decline_url else "",
        )
        words = render(slotted, language)
        if any(slot in words.subject for slot in _SLOTS):  # pragma: no cover - subjects are impersonal
            raise ValueError("a subject with a personal value cannot be shared")
        return cls(words, QpTemplate.build(words.text), QpTemplate.build(words.html))

    def fill(self, name: str, join: str, accept: str, decline: str) -> tuple[str, str]:
        """The quoted-printable text and HTML bodies of one copy."""
        plain = {NAME: name, JOIN: join, ACCEPT: accept, DECLINE: decline}
        html = {slot: str(escape(value)) for slot, value in plain.items()}
        return self.text.fill(plain), self.html.fill(html)
