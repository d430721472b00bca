"""The demo's mail catcher: an SMTP server in the app's event loop that keeps mail in a Maildir.

With no SMTP server configured, the outbox delivers here, so the demo's invitations can be
read on the admin pages (and opened in a mail client: the Maildir is a standard one).
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import mailbox
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from meetings.errors import N_, NotFound

log = logging.getLogger("giaoban.mail")

KEY_RE = re.compile(r"^[\w.\\-]{1,255}$")
_KEY_TIME = re.compile(r"^(\d+)\.M(\d+)")


def maildir_path(var_dir: str | Path) -> Path:
    """Where caught mail is kept: VAR_DIR/mail."""
    return Path(var_dir) / "mail"


class MaildirHandler:
    """An aiosmtpd handler that stores each message, as received, in a Maildir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(str(path), create=True)

    def _store(self, data: bytes) -> str:
        return str(mailbox.Maildir(str(self.path), create=True).add(data))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        # What a delivering server adds: the envelope, which the headers may not show.
        trace = f"Return-Path: <{envelope.mail_from}>\r\n".encode()
        trace += b"".join(f"Delivered-To: {rcpt}\r\n".encode() for rcpt in envelope.rcpt_tos)
        key = await asyncio.to_thread(self._store, trace + data)
        log.debug("mail caught", extra={"key": key, "recipients": len(envelope.rcpt_tos)})
        return "250 OK: caught"


class MailCatcher:
    """The SMTP server of the demo; start() returns the port it listens on."""

    def __init__(self, path: Path, hostname: str = "giaoban-catcher") -> None:
        self.handler = MaildirHandler(path)
        self.hostname = hostname
        self._server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 8025) -> int:
        """Listen on host:port (0: a free port) in the running loop; the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.handler, hostname=self.hostname, enable_SMTPUTF8=True),
            host=host,
            port=port,
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()


@dataclass(frozen=True)
class CaughtSummary:
    """One caught message in the list."""

    key: str
    received: datetime
    sender: str
    to: str
    subject: str


@dataclass(frozen=True)
class CaughtPart:
    """One leaf part of a caught message."""

    content_type: str
    filename: str
    charset: str
    size: int
    text: str | None  # the decoded text of text/* parts, else None


@dataclass(frozen=True)
class CaughtMessage:
    """A caught message taken apart for reading."""

    key: str
    received: datetime
    subject: str
    headers: list[tuple[str, str]]
    text: str
    html: str
    parts: list[CaughtPart]
    size: int

    @property
    def text_pieces(self) -> list[TextPiece]:
        """The text body cut into plain text and web addresses, for a viewer that links them."""
        return link_pieces(self.text)


@dataclass(frozen=True)
class TextPiece:
    """A stretch of text; url is set when the stretch is a web address to link."""

    text: str
    url: str = ""


# An http(s) address up to a space or a character that rarely belongs to one in prose.
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def link_pieces(text: str) -> list[TextPiece]:
    """Text cut into plain pieces and http(s) addresses (trailing punctuation stays text).

    The template escapes every piece; only the address of an http(s) link becomes an href.
    """
    pieces: list[TextPiece] = []
    at = 0
    for found in _URL.finditer(text):
        url = found.group(0)
        while url and url[-1] in _TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")")):
            url = url[:-1]
        if len(url) <= len("https://"):
            continue
        if found.start() > at:
            pieces.append(TextPiece(text[at : found.start()]))
        pieces.append(TextPiece(url, url=url))
        at = found.start() + len(url)
    if at < len(text):
        pieces.append(TextPiece(text[at:]))
    return pieces


def _received(key: str, fallback: float = 0.0) -> datetime:
    found = _KEY_TIME.match(key)
    stamp = int(found[1]) + int(found[2]) / 1_000_000 if found else fallback
    return datetime.fromtimestamp(stamp, UTC)


def list_caught(path: Path, limit: int = 200) -> list[CaughtSummary]:
    """The newest caught messages first (blocking file reads: call it in a thread)."""
    if not path.exists():
        return []
    box = mailbox.Maildir(str(path), create=False)
    keys = sorted(box.keys(), key=lambda k: (_received(k), k), reverse=True)[:limit]
    parser = BytesHeaderParser(policy=email.policy.default)
    found = []
    for key in keys:
        try:
            headers = parser.parsebytes(box.get_bytes(key))
        except (KeyError, FileNotFoundError):
            continue  # deleted meanwhile
        found.append(
            CaughtSummary(
                key=key,
                received=_received(key),
                sender=str(headers.get("From", "")),
                to=str(headers.get("To", "")),
                subject=str(headers.get("Subject", "")),
            )
        )
    return found


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError, ValueError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def read_caught(path: Path, key: str) -> CaughtMessage:
    """One caught message: headers, text and HTML bodies, every part (blocking: use a thread)."""
    if not KEY_RE.match(key) or not path.exists():
        raise NotFound(N_("This message does not exist."))
    box = mailbox.Maildir(str(path), create=False)
    try:
        data = box.get_bytes(key)
    except (KeyError, FileNotFoundError) as exc:
        raise NotFound(N_("This message does not exist.")) from exc
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    parts = []
    for part in message.walk():
        assert isinstance(part, EmailMessage)
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        is_text = part.get_content_maintype() == "text"
        content_type = part.get_content_type()
        method = part.get_param("method")
        if isinstance(method, str):
            content_type += f"; method={method}"
        parts.append(
            CaughtPart(
                content_type=content_type,
                filename=part.get_filename() or "",
                charset=part.get_content_charset() or "",
                size=len(payload) if isinstance(payload, bytes) else 0,
                text=_text_of(part) if is_text else None,
            )
        )
    return CaughtMessage(
        key=key,
        received=_received(key),
        subject=str(message.get("Subject", "")),
        headers=[(name, str(value)) for name, value in message.items()],
        text=_text_of(text_part) if isinstance(text_part, EmailMessage) else "",
        html=_text_of(html_part) if isinstance(html_part, EmailMessage) else "",
        parts=parts,
        size=len(data),
    )
