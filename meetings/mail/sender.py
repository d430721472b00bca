"""Delivers the outbox over SMTP (aiosmtplib): claimed row by row, retried with backoff.

A message is charged an attempt only for what happened to it: an answer of the server, or a
connection that broke during its transaction (then the batch reconnects and it is sent again
at once). A server that cannot be reached charges nobody: the batch stops, the mail waits, and
the sender tries the server again after a short, growing pause.
"""

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
    """The SMTP connection broke during a message; the batch reconnects and goes on."""


class _Unreachable(Exception):
    """No SMTP session could be opened; nothing in the batch is charged for it."""


# After a round that could not reach the server, the next try waits 0.5 s, 1 s, 2 s … 60 s:
# a blip of a few seconds costs a few seconds, a long outage is not hammered.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 60.0


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
        self._reconnect_wait = 0.0  # > 0 while the server cannot be reached
        self.unreachable_rounds = 0  # rounds that found no server (for logs and tests)

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
            if self._reconnect_wait:
                # The server is away: new mail waits too, so a wake does not shorten this.
                await self._sleep_unless_stopped(self._reconnect_wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

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
        try:
            for position, message_id in enumerate(ids):
                try:
                    client, accepted = await self._deliver_one(client, message_id, now)
                except _Unreachable as exc:
                    # Not the messages' fault: none is charged, they wait for the server.
                    client = None
                    await self._server_unreachable(str(exc), ids[position + 1 :])
                    break
                sent += int(accepted)
            else:
                self._reconnect_wait = 0.0
        finally:
            if client is not None:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return sent

    async def _deliver_one(
        self, client: aiosmtplib.SMTP | None, message_id: int, now: datetime
    ) -> tuple[aiosmtplib.SMTP | None, bool]:
        """Claim and send one message, reconnecting once if the connection breaks under it.

        Returns the connection to go on with and whether the server accepted the message.
        Raises _Unreachable (the claim given back uncharged) when no connection can be had.
        """
        data = await self._claim(message_id, now)
        if data is None:
            return client, False  # another process took it
        for tries in (1, 2):
            if client is None:
                try:
                    client = await self._connect()
                except _Unreachable as exc:
                    async with self.db() as db:
                        await outbox.release(db, message_id, str(exc))
                        await db.commit()
                    raise
            try:
                return client, await self._send(client, message_id, data, now)
            except _ConnectionLost as exc:
                client.close()
                client = None
                if tries == 2:
                    # Lost twice in a row: perhaps this message; it waits its backoff.
                    await self._failed(message_id, now, str(exc), permanent=False)
                    return None, False
                # Maybe delivered, maybe not (at least once): counted, then sent again at once.
                await self._failed(message_id, now, str(exc), permanent=False, retry_at=now)
                data = await self._claim(message_id, now)
                if data is None:
                    return None, False
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(self) -> aiosmtplib.SMTP:
        client = self._client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise _Unreachable(describe(exc)) from exc
        return client

    async def _server_unreachable(self, reason: str, waiting: list[int]) -> None:
        self.unreachable_rounds += 1
        self._reconnect_wait = min(
            RECONNECT_MAX_SECONDS, max(RECONNECT_FIRST_SECONDS, self._reconnect_wait * 2)
        )
        log.warning("SMTP server unreachable: %s (next try in %.1f s)", reason, self._reconnect_wait)
        async with self.db() as db:
            await outbox.note_waiting(db, waiting, reason)
            await db.commit()

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
            raise _ConnectionLost(describe(exc)) from exc
        except aiosmtplib.SMTPException as exc:
            await self._failed(message_id, now, describe(exc), permanent=is_permanent(exc))
            return False
        note = "; ".join(f"{r.code} {r.message} ({addr})" for addr, r in refused.items())
        async with self.db() as db:
            await outbox.mark_sent(db, message_id, now, note)
            await db.commit()
        log.debug("mail sent", extra={"outbox_id": message_id, "recipients": len(recipients)})
        return True

    async def _failed(
        self,
        message_id: int,
        now: datetime,
        reason: str,
        *,
        permanent: bool,
        retry_at: datetime | None = None,
    ) -> None:
        async with self.db() as db:
            status = await outbox.mark_failed_attempt(
                db,
                message_id,
                now,
                reason,
                max_attempts=self.max_attempts,
                permanent=permanent,
                retry_at=retry_at,
            )
            await db.commit()
        if status is OutboxStatus.FAILED:
            log.warning("mail failed for good", extra={"outbox_id": message_id, "reason": reason})
