"""Who may do what: the one place where roles map to permissions."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meetings.directory.models import Role, UnitKind


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
    MINUTES_EDIT = "minutes_edit"  # write, submit, publish and correct minutes; read every minutes
    MINUTES_APPROVE = "minutes_approve"
    ISSUES_REPORT = "issues_report"  # report an issue, move one the person's unit owns (meetings.issues)
    ISSUES_MANAGE = "issues_manage"  # assign, change the status of any issue
    ISSUES_READ_ALL = "issues_read_all"  # read the whole city's register, every centre's issues
    REPORT_FIGURES = "report_figures"  # report the daily figures of the person's own centre
    FIGURES_READ = "figures_read"  # the dashboard of every centre, exports
    FIGURES_TOKENS = "figures_tokens"  # issue and revoke the centres' API tokens
    MANUAL_EDIT = "manual_edit"  # write, review and publish manual articles
    # The readiness board, the live connection monitoring and every unit's connection history
    # (meetings.readiness); the connection check itself is open to anyone signed in or invited.
    READINESS_READ = "readiness_read"
    # Act on the board: resend a personal link, excuse a unit, note who is helping it.
    READINESS_MANAGE = "readiness_manage"


_EVERYONE_SIGNED_IN = frozenset({Permission.SIGNED_IN, Permission.DIRECTORY_READ, Permission.MEETINGS_READ})
# Whoever runs the meetings follows the register, the figures and the manual.
_MEETING_RUNNERS = frozenset(
    {
        Permission.ISSUES_REPORT,
        Permission.ISSUES_MANAGE,
        Permission.ISSUES_READ_ALL,
        Permission.FIGURES_READ,
        Permission.MANUAL_EDIT,
        Permission.READINESS_READ,
        Permission.READINESS_MANAGE,
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: _EVERYONE_SIGNED_IN
    | {
        Permission.DIRECTORY_MANAGE,
        Permission.ACCOUNTS_MANAGE,
        Permission.AUDIT_READ,
        Permission.SCHEDULE_MANAGE,
        Permission.CALENDAR_MANAGE,
        Permission.MAIL_ADMIN,
        Permission.ISSUES_READ_ALL,
        Permission.FIGURES_READ,
        Permission.FIGURES_TOKENS,
        Permission.READINESS_READ,
    },
    Role.CHAIR: _EVERYONE_SIGNED_IN
    | _MEETING_RUNNERS
    | {Permission.SCHEDULE_MANAGE, Permission.MINUTES_EDIT, Permission.MINUTES_APPROVE},
    Role.SECRETARY: _EVERYONE_SIGNED_IN
    | _MEETING_RUNNERS
    | {Permission.SCHEDULE_MANAGE, Permission.MINUTES_EDIT},
    # Members of centres report issues and figures for their own unit; support teams move the
    # issues they own (both scoped by unit in the domain code).
    Role.MEMBER: _EVERYONE_SIGNED_IN | {Permission.ISSUES_REPORT, Permission.REPORT_FIGURES},
    # Observers follow the city: the figures and the whole register, read only.
    Role.OBSERVER: _EVERYONE_SIGNED_IN | {Permission.ISSUES_READ_ALL, Permission.FIGURES_READ},
    # Support staff get every centre connected: the board, monitoring and history of all units,
    # the whole register (they move the issues their unit owns); not the minutes' drafts.
    Role.SUPPORT: _EVERYONE_SIGNED_IN
    | {
        Permission.READINESS_READ,
        Permission.READINESS_MANAGE,
        Permission.ISSUES_REPORT,
        Permission.ISSUES_READ_ALL,
    },
}

# Who follows issues across centres by the unit they work in, whatever their role: the
# committee's office, the departments, the support teams and the telecom operators take issues
# over from any centre, so they read the whole register (they move only what their unit owns).
# A centre's staff read their own centre's issues and those their unit owns.
UNIT_KINDS_READING_THE_REGISTER: frozenset[UnitKind] = frozenset(
    {UnitKind.COMMITTEE, UnitKind.DEPARTMENT, UnitKind.SUPPORT, UnitKind.TELECOM}
)


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


def reads_whole_register(actor: Actor, unit_kind: UnitKind | None) -> bool:
    """Whether the person reads every centre's issues (by role, or by the kind of their unit)."""
    return actor.can(Permission.ISSUES_READ_ALL) or unit_kind in UNIT_KINDS_READING_THE_REGISTER


def allowed(role: Role | None, permission: Permission) -> bool:
    """Whether a role (None: anonymous) has a permission."""
    if permission is Permission.PUBLIC:
        return True
    if role is None:
        return False
    return permission in ROLE_PERMISSIONS[role]


# The CLI and the demo act as a built-in administrator: whoever runs them already owns the server.
CLI_ACTOR = Actor(id=0, email="cli", name="cli", role=Role.ADMINISTRATOR, unit_id=None)
