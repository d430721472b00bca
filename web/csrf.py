"""CSRF tokens: a random per-browser seed in a cookie, the form carries its HMAC."""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "gb_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def new_seed() -> str:
    """A fresh random seed for the cookie."""
    return secrets.token_urlsafe(24)


def token_for(secret: str, seed: str) -> str:
    """The token a form must send back for this seed."""
    return hmac.new(secret.encode(), b"csrf:" + seed.encode(), hashlib.sha256).hexdigest()


def valid(secret: str, seed: str, token: str) -> bool:
    """Whether a submitted token matches the browser's seed."""
    if not seed or not token:
        return False
    return hmac.compare_digest(token_for(secret, seed), token)
