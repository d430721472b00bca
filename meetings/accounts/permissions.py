"""Who may do what: the one place where roles map to permissions."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meetings.directory.models import Role


class Permission(enum.StrEnum):
    """Something a route or a domain function needs."""

    PUBLIC = "public"  # anyone, signed in or not
    SIGNED_IN = "signed_in"  # any active account
    DIRECTORY_READ = "directory_read"
    DIRECTORY_MANAGE = "directory_manage"
    ACCOUNTS_MANAGE = "accounts_manage"
    AUDIT_READ = "audit_read"
    MEETINGS_READ = "meetings_read"
    SCHEDULE_MANAGE = "schedule_manage"
    CALENDAR_MANAGE = "calendar_manage"
    MAIL_ADMIN = "mail_admin"  # the outbox and the caught mail


_EVERYONE_SIGNED_IN = frozenset({Permission.SIGNED_IN, Permission.DIRECTORY_READ, Permission.MEETINGS_READ})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: _EVERYONE_SIGNED_IN
    | {
        Permission.DIRECTORY_MANAGE,
        Permission.ACCOUNTS_MANAGE,
        Permission.AUDIT_READ,
        Permission.SCHEDULE_MANAGE,
        Permission.CALENDAR_MANAGE,
        Permission.MAIL_ADMIN,
    },
    Role.CHAIR: _EVERYONE_SIGNED_IN | {Permission.SCHEDULE_MANAGE},
    Role.SECRETARY: _EVERYONE_SIGNED_IN | {Permission.SCHEDULE_MANAGE},
    Role.MEMBER: _EVERYONE_SIGNED_IN,
    Role.OBSERVER: _EVERYONE_SIGNED_IN,
}


@dataclass(frozen=True)
class Actor:
    """The signed-in person acting, as domain code sees them."""

    id: int
    email: str
    name: str
    role: Role
    unit_id: int | None
    language: str = "vi"

    def can(self, permission: Permission) -> bool:
        """Whether this person's role grants the permission."""
        return allowed(self.role, permission)


def allowed(role: Role | None, permission: Permission) -> bool:
    """Whether a role (None: anonymous) has a permission."""
    if permission is Permission.PUBLIC:
        return True
    if role is None:
        return False
    return permission in ROLE_PERMISSIONS[role]
