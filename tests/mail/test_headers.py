"""Headers with Vietnamese text survive folding: what we write is what a reader gets back."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses

import pytest

from meetings.mail.headers import MAX_LINE, MAX_WORD, encoded_words, wire_bytes
from meetings.schedule.emails import MailFacts, render
from meetings.schedule.imip import build_imip_message
from tests.mail.messages import ICS, ORGANIZER

# 120 characters, and the longest title the series form accepts (200): words cut across the
# folds of Python's own folder, which lost the space in "xuất về".
TITLE_120 = (
    "Họp đột xuất về tình hình mưa lũ, sạt lở đất tại các phường ven biển và phương án sơ tán "
    "dân cư, bảo đảm an toàn khi lũ."
)
TITLE_200 = (
    "Họp đột xuất về phương án ứng phó mưa lũ, sạt lở đất và bảo đảm an toàn cho người dân tại "
    "các phường ven sông Hương, ven biển; rà soát lực lượng, phương tiện, hậu cần và thông tin "
    "liên lạc của các trung tâm phục vụ"
)[:200]
NAMES = [
    "Nguyễn Thị Hoàng Phương Thảo",
    "Văn phòng Ủy ban nhân dân thành phố Huế",
    'Tôn Nữ "Bé" Hạnh (Sở Tư pháp), phó giám đốc',
]
LONG_NAME = "Ủy ban nhân dân phường Thuận An — Trung tâm phục vụ hành chính công " * 3


def test_the_titles_are_as_long_as_the_form_allows() -> None:
    assert len(TITLE_120) == 120 and len(TITLE_200) == 200
    assert TITLE_120.strip() == TITLE_120 and TITLE_200.strip() == TITLE_200


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def rfc2047(raw: str) -> str:
    """A header as RFC 2047 reads it (whitespace between encoded words dropped)."""
    return str(make_header(decode_header(raw)))


def invitation(subject: str, sender_name: str, to_name: str) -> EmailMessage:
    return build_imip_message(
        sender_email=ORGANIZER,
        sender_name=sender_name,
        to_email="phuong.an.cuu@hue.example",
        to_name=to_name,
        subject=subject,
        text="Kính gửi Ông/Bà.",
        html="<p>Kính gửi Ông/Bà.</p>",
        ics=ICS,
        method="REQUEST",
        message_id_domain="hue.example",
    )


@pytest.mark.parametrize("title", [TITLE_120, TITLE_200], ids=["120", "200"])
@pytest.mark.parametrize(
    "kind", ["invitation", "update", "moved", "series_cancel", "reminder", "minutes_due"]
)
def test_every_subject_reads_back_exactly(kind: str, title: str) -> None:
    start = datetime(2030, 1, 7, 0, 30, tzinfo=UTC)
    facts = MailFacts(
        kind=kind,
        title=title,
        recipient_name=NAMES[0],
        start=start,
        end=start.replace(hour=1),
        moved_from=start.replace(day=8),
    )
    words = render(facts, "vi")
    assert title in words.subject
    data = wire_bytes(invitation(words.subject, NAMES[1], NAMES[0]))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and max(len(line) for line in head.split(b"\r\n")) <= MAX_LINE
    message = parsed(data)
    assert message["Subject"] == words.subject
    assert rfc2047(email.message_from_bytes(data)["Subject"]) == words.subject


def test_python_folding_lost_a_space_and_ours_does_not() -> None:
    """The fault as it was: the same message folded by the stock SMTP policy."""
    subject = "[Giao ban] Giấy mời: " + TITLE_120
    message = invitation(subject, NAMES[1], NAMES[0])
    assert parsed(message.as_bytes(policy=email.policy.SMTP))["Subject"] != subject
    assert parsed(wire_bytes(message))["Subject"] == subject


@pytest.mark.parametrize("name", [*NAMES, TITLE_120, LONG_NAME.strip()])
def test_display_names_with_diacritics_read_back_exactly(name: str) -> None:
    message = invitation("Giấy mời", name, name)
    message.replace_header(
        "To",
        [Address(display_name=name, addr_spec="a@hue.example"), Address(name, addr_spec="b@hue.example")],
    )
    data = wire_bytes(message)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and max(len(line) for line in head.split(b"\r\n")) <= MAX_LINE
    raw = email.message_from_bytes(data)
    assert [(rfc2047(n), a) for n, a in getaddresses([raw["From"]])] == [(name, ORGANIZER)]
    assert [(rfc2047(n), a) for n, a in getaddresses([raw["To"]])] == [
        (name, "a@hue.example"),
        (name, "b@hue.example"),
    ]
    if len(encoded_words(name, MAX_WORD)) == 1:
        # A name that fits one encoded word (every real person's) is one: Python's address
        # parser, unlike RFC 2047, keeps the space between two words of a phrase.
        message_ = parsed(data)
        assert message_["From"].addresses[0].display_name == name
        assert [a.display_name for a in message_["To"].addresses] == [name, name]


def test_ascii_headers_are_left_to_the_standard_folding() -> None:
    message = invitation("Invitation: morning meeting", "Giao Ban", "Member")
    assert b"Subject: Invitation: morning meeting\r\n" in wire_bytes(message)
    assert b"From: Giao Ban <giaoban@hue.example>\r\n" in wire_bytes(message)


def test_encoded_words_cut_between_characters_and_fit_the_limit() -> None:
    text = "Thừa Thiên Huế 🌧 " * 20
    words = encoded_words(text, 40)
    assert all(len(w) <= MAX_WORD for w in words) and len(words[0]) <= 40
    assert rfc2047(" ".join(words)) == text


@pytest.mark.parametrize(
    "kind", ["invitation", "update", "moved", "occurrence_cancel", "series_cancel", "reminder", "minutes_due"]
)
def test_every_scheduling_mail_addresses_the_reader_formally(kind: str) -> None:
    start = datetime(2030, 1, 7, 0, 30, tzinfo=UTC)
    facts = MailFacts(
        kind=kind,
        title="Họp giao ban sáng",
        recipient_name="Nguyễn Văn An",
        start=start,
        end=start.replace(hour=1),
        moved_from=start.replace(day=8),
        join_url="https://giaoban.hue.example/j/x",
        accept_url="https://giaoban.hue.example/a/x",
        decline_url="https://giaoban.hue.example/d/x",
    )
    words = render(facts, "vi")
    assert words.text.startswith("Kính gửi Ông/Bà Nguyễn Văn An,\n")
    assert "Kính gửi Ông/Bà Nguyễn Văn An," in words.html
    assert "bạn" not in words.text.casefold() and "bạn" not in words.html.casefold()
