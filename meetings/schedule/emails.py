"""The words of scheduling emails: subjects, text and HTML bodies, in the recipient's language."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2

from meetings import i18n
from meetings.errors import N_
from meetings.schedule.imip import invitation_times_text

SUBJECTS = {
    "invitation": N_("Invitation: %(title)s"),
    "update": N_("Updated: %(title)s"),
    "moved": N_("Moved: %(title)s, %(when)s"),
    "occurrence_cancel": N_("Cancelled: %(title)s, %(when)s"),
    "series_cancel": N_("Cancelled: %(title)s (all meetings)"),
    "reminder": N_("Reminder: %(title)s at %(when)s"),
    "minutes_due": N_("Minutes due: %(title)s, %(when)s"),
    "link": N_("Your link to join: %(title)s, %(when)s"),  # sent again from the readiness board
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("meetings.schedule", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    extensions=["jinja2.ext.i18n"],
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_env.install_gettext_callables(  # type: ignore[attr-defined]
    lambda s, **kw: i18n.gettext(s, **kw),
    lambda s, p, n, **kw: i18n.ngettext(s, p, n, **kw),
    newstyle=True,
)


@dataclass(frozen=True)
class MailText:
    """What one email says, before it is wrapped as iMIP."""

    subject: str
    text: str
    html: str


@dataclass
class MailFacts:
    """The facts an email template shows."""

    kind: str
    title: str
    recipient_name: str
    start: datetime
    end: datetime
    recurrence: str = ""
    join_url: str = ""
    accept_url: str = ""
    decline_url: str = ""
    series_url: str = ""
    chair: str = ""
    note: str = ""
    moved_from: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def render(facts: MailFacts, language: str) -> MailText:
    """Subject, text and HTML of an email in the recipient's language."""
    with i18n.language(language):
        when = invitation_times_text(facts.start, facts.end, language)
        moved_from = (
            invitation_times_text(facts.moved_from, facts.moved_from + (facts.end - facts.start), language)
            if facts.moved_from
            else ""
        )
        short_when = f"{facts.start:%H:%M} {facts.start:%d/%m/%Y}"
        subject = (
            "["
            + i18n.gettext("Giao Ban")
            + "] "
            + i18n.gettext(SUBJECTS[facts.kind], title=facts.title, when=short_when)
        )
        context = {"f": facts, "when": when, "moved_from": moved_from, "subject": subject}
        text = _env.get_template("email.txt").render(context)
        html = _env.get_template("email.html").render(context)
    return MailText(subject=subject, text=text, html=html)
