"""Structured logging: one JSON object a line (or plain text for development)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


ACCESS_LOGGER = "aiohttp.access"


def setup_logging(level: str = "INFO", fmt: str = "json", access_log: bool = False) -> None:
    """Configure the root logger once for the process (`access_log`: one line per request)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries at INFO: aiosmtpd's per-command log of the demo mail catcher,
    # APScheduler's "running job" lines; aiohttp's access log unless asked for (our metrics
    # count requests). The terminal of `make demo` stays readable.
    for name in ("mail.log", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if access_log else logging.WARNING)


def access_logger(enabled: bool) -> logging.Logger | None:
    """The logger the web server writes one line per request to, or None for no access log."""
    return logging.getLogger(ACCESS_LOGGER) if enabled else None
