"""Route access declarations: every handler says which permission it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from meetings.accounts.permissions import Permission

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
ATTRIBUTE = "__giaoban_permission__"


def needs(permission: Permission) -> Callable[[H], H]:
    """Declare the permission a handler needs; the access middleware enforces it."""

    def mark(handler: H) -> H:
        setattr(handler, ATTRIBUTE, permission)
        return handler

    return mark


TOKEN_AUTH = "__giaoban_token_auth__"


def token_authenticated(handler: H) -> H:
    """Mark a handler that trusts only a bearer token (never the session cookie): no CSRF check."""
    setattr(handler, TOKEN_AUTH, True)
    return handler


def is_token_authenticated(handler: object) -> bool:
    """Whether a handler authenticates by a bearer token only."""
    return getattr(handler, TOKEN_AUTH, False) is True


def permission_of(handler: object) -> Permission | None:
    """The declared permission of a handler, if any."""
    value = getattr(handler, ATTRIBUTE, None)
    return value if isinstance(value, Permission) else None


def check_every_route_declares(app: web.Application) -> None:
    """Refuse to start when a route has no declared permission (static files are public)."""
    missing = []
    for route in app.router.routes():
        if isinstance(route.resource, web.StaticResource):
            continue
        if permission_of(route.handler) is None:
            missing.append(f"{route.method} {route.resource.canonical if route.resource else '?'}")
    if missing:
        raise RuntimeError("routes without a declared permission: " + ", ".join(missing))
