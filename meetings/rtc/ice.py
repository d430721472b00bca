"""ICE servers for clients: STUN, and TURN with short-lived credentials (coturn's REST API scheme)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any


def turn_credentials(secret: str, user: str, now: datetime, ttl_seconds: int) -> tuple[str, str]:
    """(username, credential) valid until now + ttl: username "<expiry>:<user>", HMAC-SHA1 credential.

    This is the scheme coturn checks with `use-auth-secret` and `static-auth-secret`.
    """
    expiry = int(now.timestamp()) + ttl_seconds
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    *, stun_urls: str, turn_urls: str, turn_secret: str, user: str, now: datetime, ttl_seconds: int
) -> list[dict[str, Any]]:
    """The iceServers list for RTCPeerConnection (browser and server side alike)."""
    servers: list[dict[str, Any]] = []
    stun = [u.strip() for u in stun_urls.split(",") if u.strip()]
    if stun:
        servers.append({"urls": stun})
    turn = [u.strip() for u in turn_urls.split(",") if u.strip()]
    if turn and turn_secret:
        username, credential = turn_credentials(turn_secret, user, now, ttl_seconds)
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers
