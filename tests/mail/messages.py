"""Emails for the mail tests: plain ones and an iMIP invitation with a Vietnamese subject."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

from meetings.schedule.imip import build_imip_message

ORGANIZER = "giaoban@hue.example"

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Giao Ban//tests//VI\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:test-mail-1@hue.example\r\nDTSTAMP:20261127T000000Z\r\n"
    "DTSTART:20261127T003000Z\r\nDTEND:20261127T011500Z\r\nSEQUENCE:0\r\n"
    "SUMMARY:Họp giao ban sáng\r\nORGANIZER:mailto:giaoban@hue.example\r\n"
    "ATTENDEE;RSVP=TRUE:mailto:phuong.an.cuu@hue.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
).encode()


def plain(to: str, subject: str, body: str = "Xin chào.") -> EmailMessage:
    """A small text email from the organiser mailbox."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = f"Giao Ban <{ORGANIZER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg


def invitation(to: str = "phuong.an.cuu@hue.example") -> EmailMessage:
    """An iMIP invitation: text, HTML with markup, and the text/calendar part."""
    return build_imip_message(
        sender_email=ORGANIZER,
        sender_name="Văn phòng UBND thành phố Huế",
        to_email=to,
        to_name="Trung tâm phường An Cựu",
        subject="Mời họp: Họp giao ban sáng — Thứ Sáu 27/11/2026",
        text=(
            "Kính mời dự họp giao ban sáng.\n"
            "Vào họp: https://giaoban.hue.example/join/abc?x=1&y=2.\n"
            'Không phải liên kết: javascript:alert(1) <https://evil.example/"onmouseover="x>\n'
        ),
        html="<p>Kính mời <b>dự họp</b> giao ban sáng.</p><script>alert(1)</script>",
        ics=ICS,
        method="REQUEST",
        message_id_domain="hue.example",
    )
