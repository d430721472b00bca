"""iMIP emails: MIME structure, headers, and delivery through a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from meetings.schedule.ical import occurrence_cancel, series_request
from meetings.schedule.imip import build_imip_message, invitation_times_text

from .helpers import (
    CANCELLED,
    DTSTAMP,
    ORGANIZER_EMAIL,
    ORGANIZER_NAME,
    hcm,
    make_series,
)

SUBJECT = "Lời mời: Họp giao ban buổi sáng — Thứ Hai, 04/01/2027"


def message(**overrides: Any) -> EmailMessage:
    """An invitation to the first attendee, with keyword overrides."""
    values: dict[str, Any] = {
        "sender_email": ORGANIZER_EMAIL,
        "sender_name": ORGANIZER_NAME,
        "to_email": "pvhcc.phuxuan@hue.gov.vn",
        "to_name": "Trung tâm PVHCC phường Phú Xuân",
        "subject": SUBJECT,
        "text": "Kính mời tham dự họp giao ban.\nVào họp: https://giaoban.hue.gov.vn/j/abc\n",
        "html": "<p>Kính mời tham dự <b>họp giao ban</b>.</p>\n",
        "ics": series_request(make_series(), DTSTAMP),
        "method": "REQUEST",
        "message_id_domain": "giaoban.hue.gov.vn",
        "date": datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return build_imip_message(**values)


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def calendar_part(msg: Message) -> bytes:
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def test_structure() -> None:
    ics = series_request(make_series(), DTSTAMP)
    raw = bytes(message(ics=ics))
    parsed = parse(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html", "text/calendar"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text, html, calendar = parts
    assert "họp giao ban" in text.get_content()
    assert "<b>họp giao ban</b>" in html.get_content()
    assert calendar.get_param("method") == "REQUEST"
    assert b"METHOD:REQUEST\r\n" in calendar_part(parsed)
    assert calendar["Content-Transfer-Encoding"] in ("base64", "quoted-printable")
    # The calendar arrives byte for byte: CRLF line ends and folded lines intact.
    assert calendar_part(parsed) == ics
    assert b"\r\n " in calendar_part(parsed)


def test_headers() -> None:
    raw = bytes(message())
    head = raw.split(b"\r\n\r\n", 1)[0]
    # Non-ASCII headers travel RFC 2047-encoded; the whole message is 7-bit.
    assert b"Subject: =?utf-8?" in head
    raw.decode("ascii")
    parsed = parse(raw)
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"].addresses[0].addr_spec == ORGANIZER_EMAIL
    assert parsed["From"].addresses[0].display_name == ORGANIZER_NAME
    assert parsed["To"].addresses[0].display_name == "Trung tâm PVHCC phường Phú Xuân"
    assert parsed["Date"].datetime == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert parsed["Message-ID"].endswith("@giaoban.hue.gov.vn>")
    assert parsed["MIME-Version"] == "1.0"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_cancel_method_follows_the_calendar() -> None:
    ics = occurrence_cancel(make_series(), CANCELLED, DTSTAMP)
    parsed = parse(bytes(message(ics=ics, method="cancel")))
    (calendar,) = [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_param("method") == "CANCEL"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"method": "CANCEL"}, "METHOD"),
        ({"to_email": "GiaoBan@hue.gov.vn"}, "organiser"),
        ({"sender_email": "other@hue.gov.vn"}, "ORGANIZER"),
    ],
)
def test_refusals(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        message(**overrides)


def test_invitation_times_text() -> None:
    start, end = hcm(2026, 11, 27), hcm(2026, 11, 27, 8, 15)
    assert invitation_times_text(start, end, "vi") == "Thứ Sáu, 27/11/2026, 07:30–08:15 (GMT+7)"
    assert invitation_times_text(start, end, "vi_VN") == "Thứ Sáu, 27/11/2026, 07:30–08:15 (GMT+7)"
    assert invitation_times_text(start, end, "en") == "Friday, 27 Nov 2026, 07:30–08:15 (GMT+7)"
    # An end given in UTC still reads in the meeting's own zone.
    assert invitation_times_text(start, end.astimezone(UTC), "en").endswith("07:30–08:15 (GMT+7)")
    with pytest.raises(ValueError):
        invitation_times_text(datetime(2026, 11, 27, 7, 30), end, "vi")


class Collector:
    """An aiosmtpd handler keeping every message's raw bytes."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collector, int]]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield collector, controller.port
    finally:
        controller.stop()


def test_delivered_through_a_real_smtp_server(smtp_server: tuple[Collector, int]) -> None:
    collector, port = smtp_server
    ics = series_request(make_series(), DTSTAMP)
    msg = message(ics=ics)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(msg)
    ((mail_from, rcpt_tos, content),) = collector.received
    assert mail_from == ORGANIZER_EMAIL
    assert rcpt_tos == ["pvhcc.phuxuan@hue.gov.vn"]
    arrived = parse(content)
    assert calendar_part(arrived) == ics
    assert arrived["Subject"] == SUBJECT
