"""Delivers the outbox over SMTP (aiosmtplib): claimed row by row, retried with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import logging
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db.base import utcnow
from meetings.mail import outbox
from meetings.mail.models import OutboxMessage, OutboxStatus
from meetings.settings import Settings

log = logging.getLogger("giaoban.mail")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect to the SMTP server."""

    host: str
    port: int
    username: str = ""
    password: str = ""
    security: str = "starttls"
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        """The SMTP server named by the settings."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
            timeout=settings.smtp_timeout,
        )


class _ConnectionLost(Exception):
    """The SMTP connection broke; the rest of the batch waits for the next round."""


def describe(exc: BaseException) -> str:
    """A short, readable reason for the admin page and the logs."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.code} {r.message} ({r.recipient})" for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def is_permanent(exc: BaseException) -> bool:
    """A 5xx answer: the server refuses for good, trying again will not help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return False  # a configuration problem: fix the password, the queue then drains
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500
    return False


class OutboxSender:
    """Sends due outbox messages, one SMTP connection per batch; run() polls and can be woken."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        smtp: SmtpConfig,
        *,
        max_attempts: int = 20,
        poll_seconds: float = 2.0,
        batch_size: int = 50,
    ) -> None:
        self.db = db
        self.smtp = smtp
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self._batch_lock = asyncio.Lock()

    def wake(self) -> None:
        """Deliver now rather than at the next poll (call after committing new mail)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask run() to return after the batch in progress."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver due mail every poll_seconds, or at once when woken, until stopped."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except (SQLAlchemyError, OSError) as exc:
                # The database may be away for a moment; the rows wait, the loop goes on.
                log.warning("outbox delivery round failed: %s", exc)
            except Exception:
                log.exception("outbox delivery round failed")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def _client(self) -> aiosmtplib.SMTP:
        c = self.smtp
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username or None,
            password=c.password or None,
            use_tls=c.security == "tls",
            start_tls=c.security == "starttls",
            timeout=c.timeout,
        )

    async def deliver_due(self, now: datetime | None = None) -> int:
        """Send every due message once; returns how many the SMTP server accepted."""
        async with self._batch_lock:
            return await self._deliver(now or utcnow())

    async def _deliver(self, now: datetime) -> int:
        async with self.db() as db:
            ids = await outbox.due_ids(db, now, self.batch_size)
        if not ids:
            return 0
        sent = 0
        client: aiosmtplib.SMTP | None = None
        down: str | None = None  # why the server cannot be reached in this round
        try:
            for message_id in ids:
                data = await self._claim(message_id, now)
                if data is None:
                    continue  # another process took it
                if client is None and down is None:
                    try:
                        client = self._client()
                        await client.connect()
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        client = None
                        down = describe(exc)
                        log.warning("SMTP server unreachable: %s", down)
                if down is not None or client is None:
                    await self._failed(message_id, now, down or "no connection", permanent=False)
                    continue
                try:
                    if await self._send(client, message_id, data, now):
                        sent += 1
                except _ConnectionLost as exc:
                    down = str(exc)
                    client = None
        finally:
            if client is not None:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return sent

    async def _claim(self, message_id: int, now: datetime) -> bytes | None:
        async with self.db() as db:
            if not await outbox.claim(db, message_id, now):
                await db.rollback()
                return None
            data = await db.scalar(select(OutboxMessage.message).where(OutboxMessage.id == message_id))
            await db.commit()
        return data

    async def _send(self, client: aiosmtplib.SMTP, message_id: int, data: bytes, now: datetime) -> bool:
        """Send one claimed message; True when accepted. Raises _ConnectionLost."""
        try:
            headers = BytesHeaderParser(policy=email.policy.default).parsebytes(data)
            sender, recipients = outbox.envelope_of(headers)
        except ValueError as exc:
            await self._failed(message_id, now, f"unusable message: {exc}", permanent=True)
            return False
        try:
            refused, _reply = await client.sendmail(sender, recipients, data)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            reason = describe(exc)
            await self._failed(message_id, now, reason, permanent=False)
            raise _ConnectionLost(reason) from exc
        except aiosmtplib.SMTPException as exc:
            await self._failed(message_id, now, describe(exc), permanent=is_permanent(exc))
            return False
        note = "; ".join(f"{r.code} {r.message} ({addr})" for addr, r in refused.items())
        async with self.db() as db:
            await outbox.mark_sent(db, message_id, now, note)
            await db.commit()
        log.debug("mail sent", extra={"outbox_id": message_id, "recipients": len(recipients)})
        return True

    async def _failed(self, message_id: int, now: datetime, reason: str, *, permanent: bool) -> None:
        async with self.db() as db:
            status = await outbox.mark_failed_attempt(
                db, message_id, now, reason, max_attempts=self.max_attempts, permanent=permanent
            )
            await db.commit()
        if status is OutboxStatus.FAILED:
            log.warning("mail failed for good", extra={"outbox_id": message_id, "reason": reason})
