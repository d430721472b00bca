"""Follow-up issues: a unit whose connection keeps failing becomes an issue owned by its operator.

When a unit had a weak or failed connection in `bad` of its last `window` meetings (excused
meetings left out; settings `readiness_followup_*`), an issue is opened in the register as a
direct report (`source` "readiness", category connectivity, severity by how bad), its figures
written into its text, and assigned to the unit's operator (`Unit.operator_id`) the way the
register assigns: its people are mailed. The records that led to it point at it
(`ConnectionRecord.follow_up_issue_id`).

Never twice for the same ongoing problem: while a follow-up issue of the unit is open or being
handled, later bad meetings are linked to it and nothing new opens; once it is resolved or
closed, only bad meetings after its end count towards a new one. Each unit is decided under a
lock (its row `FOR UPDATE` on PostgreSQL; the write lock on SQLite) and the issue carries a
key, so two runs at once (a job repeated after a failover) open one issue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings import i18n
from meetings.accounts.permissions import Actor
from meetings.db.base import utcnow
from meetings.directory.models import Role, Unit, UnitKind
from meetings.issues import service as issues
from meetings.minutes.models import IssueCategory, Severity
from meetings.readiness.history import (
    FOLLOW_UP_SOURCE,
    HISTORY_PATH,
    FollowUp,
    MeetingRecord,
    Thresholds,
    follow_ups,
    recent_records,
)
from meetings.readiness.models import ConnectionOutcome, ConnectionRecord

log = logging.getLogger("giaoban.readiness")

# Who opens and assigns follow-up issues in the register's history (no person: the service).
FOLLOW_UP_ACTOR = Actor(
    id=0, email="readiness", name="Theo dõi kết nối (tự động)", role=Role.SECRETARY, unit_id=None
)
# Units looked at by the periodic run: those with a meeting recorded this recently.
LOOKBACK = timedelta(days=60)


@dataclass(frozen=True)
class Mailing:
    """How the owner's mail is sent: links and sender."""

    base_url: str
    sender_email: str
    sender_name: str


@dataclass(frozen=True)
class Outcome:
    """What following up one unit did."""

    unit_id: int
    issue_id: int | None = None
    opened: bool = False
    linked: int = 0  # records newly pointing at the issue
    mailed: int = 0
    unassigned: bool = False  # opened without an operator to give it to


@dataclass
class _Plan:
    window: list[MeetingRecord]  # newest first
    live: FollowUp | None
    counted: list[MeetingRecord]  # bad, not yet linked, after the last follow-up ended


async def _plan(db: AsyncSession, unit_id: int, thresholds: Thresholds, *, fresh: bool = False) -> _Plan:
    window = await recent_records(db, unit_id, thresholds.window, with_excused=False, fresh=fresh)
    issued = (await follow_ups(db, [unit_id])).get(unit_id, [])
    live = next((f for f in issued if f.live), None)
    ends = [f.ended_at for f in issued if not f.live and f.ended_at is not None]
    since = max(ends) if ends else None
    counted = [
        r
        for r in window
        if r.bad and r.record.follow_up_issue_id is None and (since is None or r.record.meeting_start > since)
    ]
    return _Plan(window, live, counted)


def _needs_action(plan: _Plan, thresholds: Thresholds) -> bool:
    if plan.live is not None:
        return bool(plan.counted)  # later bad meetings join the issue being handled
    return len(plan.counted) >= thresholds.bad


async def _lock_unit(db: AsyncSession, unit_id: int) -> None:
    """Serialise the follow-up of one unit across transactions and nodes."""
    if db.get_bind().dialect.name == "sqlite":
        # Reads before the first write run outside the transaction on SQLite: a write that
        # changes nothing takes the database's write lock first, so what follows reads fresh.
        await db.execute(text("UPDATE connection_records SET unit_id = unit_id WHERE 0"))
    else:
        await db.execute(select(Unit.id).where(Unit.id == unit_id).with_for_update())


def severity_of(counted: list[MeetingRecord], thresholds: Thresholds) -> Severity:
    """How bad: every counted meeting failed or the whole window bad is critical; any failure high."""
    failed = sum(1 for r in counted if r.record.outcome == ConnectionOutcome.FAILED)
    if failed >= thresholds.bad or len(counted) >= max(thresholds.window, thresholds.bad + 2):
        return Severity.CRITICAL
    if failed or len(counted) > thresholds.bad:
        return Severity.HIGH
    return Severity.MEDIUM


def _minutes(seconds: float) -> str:
    return i18n.fmt_number(seconds / 60, 1)


def _figures_line(row: MeetingRecord, tz: tzinfo) -> str:
    r = row.record
    when = i18n.fmt_datetime(r.meeting_start, tz)
    outcome = i18n.gettext(row.outcome_label)
    if r.join_delay_s is None:  # never connected (or excused): no figures to give
        return f"- {when}, {row.title}: {outcome}"
    parts = [i18n.gettext("joined %(n)s min late", n=_minutes(max(0.0, r.join_delay_s)))]
    parts.append(i18n.gettext("%(n)s min on a weak link", n=_minutes(r.weak_s)))
    if r.audio_only_s:
        parts.append(i18n.gettext("%(n)s min on audio only", n=_minutes(r.audio_only_s)))
    parts.append(i18n.ngettext("%(num)s drop-out", "%(num)s drop-outs", r.dropouts))
    if r.min_down_kbps is not None:
        parts.append(i18n.gettext("lowest downlink %(n)s kbit/s", n=i18n.fmt_number(r.min_down_kbps)))
    if r.max_loss_pct is not None:
        parts.append(i18n.gettext("highest loss %(n)s %%", n=i18n.fmt_number(r.max_loss_pct, 1)))
    return f"- {when}, {row.title}: {outcome} — " + "; ".join(parts)


def issue_text(
    unit: Unit,
    operator: Unit | None,
    plan_window: list[MeetingRecord],
    counted: list[MeetingRecord],
    thresholds: Thresholds,
    *,
    tz: tzinfo,
    base_url: str,
) -> str:
    """The follow-up issue's text, in the city's language: the problem, each meeting's figures, who."""
    with i18n.language(i18n.DEFAULT_LANGUAGE):
        lines = [
            i18n.gettext(
                "%(unit)s (%(code)s) had a weak or failed connection in %(bad)s of its last %(window)s "
                "meetings (automatic connection follow-up).",
                unit=unit.name,
                code=unit.code,
                bad=len(counted),
                window=len(plan_window),
            ),
            "",
            i18n.gettext("Meetings (newest first):"),
            *(_figures_line(row, tz) for row in plan_window),
            "",
        ]
        if operator is not None:
            lines.append(
                i18n.gettext(
                    "Assigned to %(unit)s, which keeps this unit connected.",
                    unit=f"{operator.name} ({operator.code})",
                )
            )
        else:
            lines.append(
                i18n.gettext(
                    "This unit has no telecom operator or support team in the directory: "
                    "the issue is not assigned. Set the unit's operator, then assign the issue."
                )
            )
        lines.append(
            i18n.gettext(
                "Connection history: %(url)s", url=base_url.rstrip("/") + HISTORY_PATH.format(id=unit.id)
            )
        )
    return "\n".join(lines)


def assignable(operator: Unit | None) -> bool:
    """An operator the register can assign to: an active department, support team or operator."""
    return operator is not None and operator.active and operator.kind != UnitKind.CENTRE


async def follow_up_unit(
    db: AsyncSession,
    unit_id: int,
    thresholds: Thresholds,
    mailing: Mailing,
    *,
    tz: tzinfo,
    now: datetime | None = None,
) -> Outcome:
    """Open (or extend) the unit's follow-up issue if its last meetings call for it; the caller commits."""
    now = now or utcnow()
    plan = await _plan(db, unit_id, thresholds)
    if not _needs_action(plan, thresholds):
        return Outcome(unit_id, plan.live.id if plan.live else None)
    await _lock_unit(db, unit_id)
    plan = await _plan(db, unit_id, thresholds, fresh=True)
    if not _needs_action(plan, thresholds):
        return Outcome(unit_id, plan.live.id if plan.live else None)
    if plan.live is not None:
        linked = await _link(db, plan.counted, plan.live.id)
        return Outcome(unit_id, plan.live.id, linked=linked)
    unit = await db.get(Unit, unit_id)
    assert unit is not None  # records cascade with their unit
    operator = await db.get(Unit, unit.operator_id) if unit.operator_id else None
    owner = operator if assignable(operator) else None
    text_ = issue_text(unit, owner, plan.window, plan.counted, thresholds, tz=tz, base_url=mailing.base_url)
    newest = max(r.record.id for r in plan.counted)
    issue = await issues.report(
        db,
        FOLLOW_UP_ACTOR,
        issues.ReportInput(
            text=text_,
            category=IssueCategory.CONNECTIVITY.value,
            severity=severity_of(plan.counted, thresholds).value,
            unit=unit.code,
            key=f"readiness:{unit.id}:{newest}",
        ),
        now=now,
    )
    issue.source = FOLLOW_UP_SOURCE
    mailed = 0
    if owner is not None:
        _issue, mailed = await issues.assign(
            db,
            FOLLOW_UP_ACTOR,
            issue.id,
            owner.code,
            base_url=mailing.base_url,
            sender_email=mailing.sender_email,
            sender_name=mailing.sender_name,
            now=now,
        )
    linked = await _link(db, plan.counted, issue.id)
    log.info(
        "connection follow-up issue opened",
        extra={"unit": unit.code, "issue": issue.id, "owner": owner.code if owner else None},
    )
    return Outcome(unit_id, issue.id, opened=True, linked=linked, mailed=mailed, unassigned=owner is None)


async def _link(db: AsyncSession, rows: list[MeetingRecord], issue_id: int) -> int:
    ids = [r.record.id for r in rows]
    if not ids:
        return 0
    await db.execute(
        update(ConnectionRecord)
        .where(ConnectionRecord.id.in_(ids), ConnectionRecord.follow_up_issue_id.is_(None))
        .values(follow_up_issue_id=issue_id)
        .execution_options(synchronize_session=False)
    )
    for row in rows:
        row.record.follow_up_issue_id = issue_id
    return len(ids)


async def units_to_follow(db: AsyncSession, now: datetime) -> list[int]:
    """The units with a meeting recorded within LOOKBACK."""
    return list(
        await db.scalars(
            select(ConnectionRecord.unit_id)
            .where(ConnectionRecord.meeting_start >= now - LOOKBACK)
            .group_by(ConnectionRecord.unit_id)
            .order_by(ConnectionRecord.unit_id)
        )
    )


async def follow_up_all(
    sessions: async_sessionmaker[AsyncSession],
    thresholds: Thresholds,
    mailing: Mailing,
    *,
    tz: tzinfo,
    now: datetime | None = None,
) -> list[Outcome]:
    """Follow every recently recorded unit up, one transaction each (one failing stops no other)."""
    now = now or utcnow()
    async with sessions() as db:
        unit_ids = await units_to_follow(db, now)
    done: list[Outcome] = []
    for unit_id in unit_ids:
        async with sessions() as db:
            try:
                outcome = await follow_up_unit(db, unit_id, thresholds, mailing, tz=tz, now=now)
                await db.commit()
            except Exception:
                await db.rollback()
                log.exception("connection follow-up failed", extra={"unit_id": unit_id})
                continue
        done.append(outcome)
    return done
