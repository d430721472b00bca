"""iMIP (RFC 6047): invitation emails carrying an iCalendar object, and their time line."""

from __future__ import annotations

import email.policy
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from babel.dates import format_date


def build_imip_message(
    *,
    sender_email: str,
    sender_name: str,
    to_email: str,
    to_name: str,
    subject: str,
    text: str,
    html: str,
    ics: bytes,
    method: str,
    message_id_domain: str,
    date: datetime | None = None,
) -> EmailMessage:
    """A multipart/alternative email: text, HTML, then the text/calendar part clients act on."""
    method = method.upper()
    calendar_method, organizers = _method_and_organizers(ics)
    if calendar_method.upper() != method:
        raise ValueError(f"method {method!r} is not the calendar's METHOD {calendar_method!r}")
    if to_email.casefold() == sender_email.casefold():
        raise ValueError("an invitation is not sent to its own organiser")
    # Clients match replies and trust updates by ORGANIZER, so it must be the sender.
    if organizers != {sender_email.casefold()}:
        raise ValueError(f"the calendar's ORGANIZER {organizers!r} is not the sender")

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(display_name=sender_name, addr_spec=sender_email)
    msg["To"] = Address(display_name=to_name, addr_spec=to_email)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date if date is not None else datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain=message_id_domain)
    # Quoted-printable keeps the message 7-bit, so no relay needs 8BITMIME.
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    # base64 carries the calendar's CRLF line ends and folded lines through any relay untouched.
    msg.add_alternative(
        ics,
        maintype="text",
        subtype="calendar",
        cte="base64",
        params={"charset": "UTF-8", "method": method},
    )
    return msg


_FOLD = re.compile(rb"\r\n[ \t]")


def _method_and_organizers(ics: bytes) -> tuple[str, set[str]]:
    """METHOD and the ORGANIZER addresses, read from the unfolded lines.

    A full parse costs more than building the calendar (every ATTENDEE line is parsed); these
    two properties are all the checks need, and the tests parse every calendar fully anyway.
    """
    method = ""
    organizers: set[str] = set()
    for line in _FOLD.sub(b"", ics).decode("utf-8").split("\r\n"):
        name, value = _split_content_line(line)
        key = name.split(";", 1)[0].upper()
        if key == "METHOD":
            method = value.strip()
        elif key == "ORGANIZER":
            organizers.add(value.strip().removeprefix("mailto:").removeprefix("MAILTO:").casefold())
    return method, organizers


def _split_content_line(line: str) -> tuple[str, str]:
    """Name-with-parameters and value of a content line (a colon inside quotes is a parameter's)."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return line[:i], line[i + 1 :]
    return line, ""


def invitation_times_text(start: datetime, end: datetime, locale: str) -> str:
    """The day and hours in the start's zone: "Thứ Sáu, 27/11/2026, 07:30–08:15 (GMT+7)"."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    end = end.astimezone(start.tzinfo)
    vietnamese = locale.replace("-", "_").split("_")[0].lower() == "vi"
    pattern = "EEEE, dd/MM/yyyy" if vietnamese else "EEEE, d MMM y"
    day = format_date(start, pattern, locale="vi" if vietnamese else "en")
    # Both ends read in the start's zone, the zone of DTSTART.
    until = f"{end:%H:%M}"
    if end.date() != start.date():
        until = f"{format_date(end, pattern, locale='vi' if vietnamese else 'en')}, {until}"
    hours = f"{start:%H:%M}–{until}"
    return f"{day}, {hours} ({_gmt_offset(start)})"


def _gmt_offset(moment: datetime) -> str:
    """The UTC offset as people read it: GMT+7, GMT+5:30, GMT-3."""
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"GMT{sign}{hours}" + (f":{rest:02d}" if rest else "")
