"""The mail resource: the outbox sender task, and the demo's mail catcher when no SMTP server is set."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from meetings.mail.catcher import MailCatcher, maildir_path
from meetings.mail.sender import OutboxSender, SmtpConfig
from web import keys

log = logging.getLogger("giaoban.mail")
CATCHER_HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 5.0


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the catcher (if smtp_host is empty) and the sender; stop both on shutdown."""
    settings = app[keys.SETTINGS]
    smtp = SmtpConfig.from_settings(settings)
    catcher: MailCatcher | None = None
    if not settings.smtp_host:
        catcher = MailCatcher(maildir_path(settings.var_dir))
        try:
            port = await catcher.start(CATCHER_HOST, settings.mail_catcher_port)
        except OSError as exc:
            # Another demo (or a test run) has the port; the demo still works on another one.
            port = await catcher.start(CATCHER_HOST, 0)
            log.warning(
                "mail catcher port %s unavailable (%s); using %s", settings.mail_catcher_port, exc, port
            )
        smtp = dataclasses.replace(smtp, host=CATCHER_HOST, port=port, security="none", username="")
        log.info("mail catcher listening", extra={"port": port, "maildir": str(catcher.handler.path)})
    sender = OutboxSender(
        app[keys.DB],
        smtp,
        max_attempts=settings.mail_max_attempts,
        poll_seconds=settings.mail_poll_seconds,
    )
    app[keys.OUTBOX] = sender
    task = asyncio.create_task(sender.run(), name="outbox-sender")
    try:
        yield
    finally:
        sender.stop()
        # Let a batch in progress record what it sent, then stop waiting for it.
        done, _pending = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if catcher is not None:
            await catcher.close()
