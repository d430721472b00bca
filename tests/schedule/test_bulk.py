"""The bulk invitation builder writes, byte for byte, the messages the one-at-a-time builder wrote.

Every send of a realistic scenario (two series, a moved and a cancelled meeting, a make-up day
and a day off, an update that drops an invitee, an ad hoc meeting, a cancelled series) runs
twice in the same transaction: first `invitations_reference` (the builder before issue #18),
its rows read and deleted, then `invitations` (the bulk one). The outbox rows must be equal:
key, kind, recipient, subject and the stored bytes. Only what is random or clock-read in each
message is normalised: the Message-ID's local part, the Date header, the MIME boundary. The
answer links' random nonces are made a counter that restarts for each builder.
"""

from __future__ import annotations

import re
import types
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import count
from typing import Any

import icalendar
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.cli import CLI_ACTOR
from meetings.directory.models import Role, UnitKind
from meetings.mail.models import OutboxMessage
from meetings.schedule import invitations, invitations_reference, links, service
from meetings.schedule.models import Occurrence
from tests.conftest import World

NOW = datetime(2030, 1, 6, 23, 0, tzinfo=UTC)  # Monday 06:00 in Huế
Row = tuple[str, str, str, str, bytes]

PEOPLE = [
    ("chu.tich@hue.example", "Nguyễn Văn Thành", Role.CHAIR, "vi"),
    ("thu.ky@hue.example", "Trần Thị Hồng Nhung", Role.SECRETARY, "vi"),
    ("an@hue.example", "Lê Thị Ánh Tuyết", Role.MEMBER, "vi"),
    # A long name: To and ATTENDEE fold differently from the others.
    ("ton.nu@hue.example", "Tôn Nữ Thị Hoàng Phương Thảo Nguyên Diệu Huyền Như Ý", Role.MEMBER, "vi"),
    # Characters that HTML escapes and that iCalendar quotes.
    ("dang@hue.example", 'Đặng "Út" & Phan, <Văn>; Kiên', Role.MEMBER, "vi"),
    ("plain@hue.example", "John Smith", Role.MEMBER, "en"),
    ("ngo@hue.example", "Ngô Bảo Châu", Role.MEMBER, "en"),
]

_BOUNDARY = re.compile(rb'boundary="([^"]+)"')
_MESSAGE_ID = re.compile(rb"^Message-ID: <[^@>]+@", re.MULTILINE)
_DATE = re.compile(rb"^Date: [^\r]*\r\n", re.MULTILINE)


def normalise(message: bytes) -> bytes:
    """The message with its random Message-ID part, its clock-read Date and its boundary fixed."""
    found = _BOUNDARY.search(message)
    assert found is not None, message[:400]
    message = message.replace(found.group(1), b"===============0000000000000000000==")
    message = _MESSAGE_ID.sub(b"Message-ID: <ID@", message, count=1)
    return _DATE.sub(b"Date: Mon, 07 Jan 2030 06:00:00 +0700\r\n", message, count=1)


async def _rows_after(db: AsyncSession, last_id: int) -> list[Row]:
    result = await db.execute(
        select(
            OutboxMessage.idempotency_key,
            OutboxMessage.kind,
            OutboxMessage.recipient,
            OutboxMessage.subject,
            OutboxMessage.message,
        )
        .where(OutboxMessage.id > last_id)
        .order_by(OutboxMessage.id)
    )
    return [(k, kind, r, s, normalise(bytes(m))) for k, kind, r, s, m in result]


class Twin:
    """Runs each send with both builders and keeps what each wrote."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.nonces = count()
        monkeypatch.setattr(links, "secrets", types.SimpleNamespace(token_hex=self._nonce))
        self.pairs: list[tuple[str, int, int, list[Row], list[Row]]] = []
        for name in ("send_series", "send_occurrence_cancel", "send_series_cancel"):
            monkeypatch.setattr(invitations, name, self._wrap(name, getattr(invitations, name)))

    def _nonce(self, _n: int) -> str:
        return f"{next(self.nonces):016x}"

    def _wrap(self, name: str, bulk: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
        reference = getattr(invitations_reference, name)

        async def both(db: AsyncSession, *args: Any, **kw: Any) -> int:
            last = int(await db.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0))) or 0)
            self.nonces = count()
            old_count = await reference(db, *args, **kw)
            old = await _rows_after(db, last)
            await db.execute(delete(OutboxMessage).where(OutboxMessage.id > last))
            self.nonces = count()
            new_count = await bulk(db, *args, **kw)
            new = await _rows_after(db, last)
            self.pairs.append((name, old_count, new_count, old, new))
            return new_count

        return both


async def test_bulk_builder_writes_the_reference_bytes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    centre = await world.unit("P-A", UnitKind.CENTRE, "Phường Thuận Hòa")
    dept = await world.unit("STP", UnitKind.DEPARTMENT, "Sở Tư pháp")
    for i, (address, name, role, language) in enumerate(PEOPLE):
        await world.person(address, role, dept if i % 2 else centre, name=name, language=language)
    twin = Twin(monkeypatch)
    monkeypatch.setattr(invitations, "QUEUE_BATCH", 3)  # several bulk INSERTs per send
    ctx = service.Context(
        base_url="https://giaoban.hue.example",
        secret="s3cret",
        organizer_email="giaoban@hue.example",
        organizer_name="Văn phòng UBND thành phố Huế",
        horizon_days=30,
        now=NOW,
    )
    morning = service.SeriesInput(
        title="Họp giao ban sáng — tình hình mưa lũ, sạt lở và phương án ứng phó",
        start_date="2030-01-07",
        end_date="2030-03-29",
        unit_codes=["P-A", "STP"],
        chair_email="chu.tich@hue.example",
        secretary_email="thu.ky@hue.example",
        description="Nắm tình hình, chỉ đạo công việc trong ngày.",
    )
    async with world.db() as db:
        first = await service.create_series(db, CLI_ACTOR, morning, ctx)
        await service.create_series(
            db,
            CLI_ACTOR,
            service.SeriesInput(
                title="Họp giao ban chiều",
                kind="afternoon",
                start_time="16:30",
                start_date="2030-01-07",
                unit_codes=["P-A"],
            ),
            ctx,
        )
        occurrences = list(
            await db.scalars(
                select(Occurrence).where(Occurrence.series_id == first.id).order_by(Occurrence.start)
            )
        )
        await service.move_occurrence(db, CLI_ACTOR, occurrences[2].id, datetime(2030, 1, 9, 9, 0), ctx)
        await service.cancel_occurrence(db, CLI_ACTOR, occurrences[3].id, ctx)
        await service.add_calendar_day(db, CLI_ACTOR, "2030-01-14", "day_off", "Nghỉ bù", ctx)
        await service.add_calendar_day(db, CLI_ACTOR, "2030-01-19", "makeup", "Làm bù", ctx)
        await service.update_series(
            db, CLI_ACTOR, first.id, service.SeriesInput(**{**morning.__dict__, "unit_codes": ["STP"]}), ctx
        )
        await service.create_adhoc(
            db,
            CLI_ACTOR,
            service.SeriesInput(
                title="Họp khẩn: sự cố đê Hương Sơ",
                start_date="2030-01-08",
                start_time="14:00",
                person_emails=["an@hue.example", "plain@hue.example"],
            ),
            ctx,
        )
        await service.cancel_series(db, CLI_ACTOR, first.id, ctx)
        await db.commit()

    kinds = set()
    calendars = []
    for name, old_count, new_count, old, new in twin.pairs:
        assert new_count == old_count == len(new), name
        assert len(old) == len(new), name
        for before, after in zip(old, new, strict=True):
            assert after[:4] == before[:4]
            assert after[4] == before[4], f"{name} {before[0]}"
            kinds.add(before[1])
        calendars.extend(new)
    assert kinds >= {"invitation", "moved", "occurrence_cancel", "update", "series_cancel"}
    # The sample holds what the issue names: both languages, EXDATE and RDATE, a cancellation.
    texts = [_calendar(row[4]) for row in calendars]
    assert any("EXDATE" in t for t in texts) and any("RDATE" in t for t in texts)
    assert any("METHOD:CANCEL" in t for t in texts)
    invitation_subjects = {row[3] for row in calendars if row[1] == "invitation"}
    assert any(s.startswith("[Giao Ban] Invitation:") for s in invitation_subjects)  # English
    assert any(not s.isascii() for s in invitation_subjects)  # Vietnamese


def _calendar(message: bytes) -> str:
    import email
    import email.policy

    parsed = email.message_from_bytes(message, policy=email.policy.default)
    for part in parsed.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            icalendar.Calendar.from_ical(payload)
            return payload.decode("utf-8")
    raise AssertionError("no calendar")


async def test_a_send_queued_twice_adds_nothing_the_second_time(world: World) -> None:
    centre = await world.unit("P-A", UnitKind.CENTRE, "Phường A")
    for address, name, role, language in PEOPLE:
        await world.person(address, role, centre, name=name, language=language)
    ctx = service.Context(
        base_url="http://t", secret="s", organizer_email="org@hue.example", organizer_name="VP", now=NOW
    )
    async with world.db() as db:
        series = await service.create_series(
            db,
            CLI_ACTOR,
            service.SeriesInput(title="Họp sáng", start_date="2030-01-07", unit_codes=["P-A"]),
            ctx,
        )
        queued = await db.scalar(select(func.count()).select_from(OutboxMessage))
        assert queued == len(PEOPLE)
        calendar = await service.working_calendar(db)
        assert await invitations.send_series(db, series, calendar, ctx, kind="invitation") == 0
        assert await db.scalar(select(func.count()).select_from(OutboxMessage)) == queued
        await db.commit()


@pytest.mark.parametrize("length", [0, 1, 73, 74, 75, 76, 147, 148, 149, 150, 300])
@pytest.mark.parametrize("fill", ["a", "https://x/", "a\\,b", "^a"])
def test_the_quick_fold_is_icalendars_fold(length: int, fill: str) -> None:
    from icalendar.parser import Contentline

    from meetings.schedule.bulk import _fold

    line = ("LOCATION:" + fill * 300)[:length]
    assert _fold(line) == Contentline(line).to_ical()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    "name",
    [
        "Nguyễn Văn Thành",
        "Tôn Nữ Thị Hoàng Phương Thảo Nguyên Diệu Huyền Như Ý Tôn Nữ Thị Hoàng Phương Thảo",
        "Lê_Văn 2",
        "Ông  Hai",
        "John Smith",
        "Đặng, Văn",
        "",
    ],
)
def test_the_quick_to_header_is_the_email_packages(name: str) -> None:
    from email.headerregistry import Address
    from email.utils import getaddresses

    from meetings.mail.headers import POLICY
    from meetings.schedule.bulk import _to_header

    header = POLICY.header_factory("To", Address(display_name=name, addr_spec="can.bo@hue.example"))
    assert _to_header(name, "can.bo@hue.example") == (
        POLICY.fold_binary("To", header),
        ", ".join(a for _n, a in getaddresses([str(header)])),
    )
