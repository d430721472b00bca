"""The demo city of Huế: its units from the shipped CSV and a few people per unit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.passwords import hash_password
from meetings.directory.csv_import import import_units
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.directory.service import person_search_text

if TYPE_CHECKING:
    from meetings.schedule.service import Context

UNITS_CSV = Path(__file__).parent / "data" / "hue-units.csv"
DEMO_DOMAIN = "hue.example"
DEMO_PASSWORD = "giaoban-demo"

_SURNAMES = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Phan",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
]
_MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Thanh", "Quang", "Ngọc", "Hữu", "Thu", "Xuân"]
_GIVEN = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Giang",
    "Hà",
    "Hải",
    "Hạnh",
    "Hòa",
    "Hùng",
    "Huyền",
    "Khánh",
    "Lan",
    "Linh",
    "Long",
    "Mai",
    "Nam",
    "Nga",
    "Phong",
    "Phúc",
    "Quân",
    "Sơn",
    "Tâm",
    "Thảo",
    "Thắng",
    "Trang",
    "Trung",
    "Tú",
    "Tuấn",
    "Vân",
    "Việt",
    "Yến",
]


def demo_name(n: int) -> str:
    """A deterministic Vietnamese name for the n-th demo person."""
    return (
        f"{_SURNAMES[n % len(_SURNAMES)]} {_MIDDLE[(n // 3) % len(_MIDDLE)]} {_GIVEN[(n * 7) % len(_GIVEN)]}"
    )


@dataclass(frozen=True)
class DemoLogin:
    """An account printed for newcomers to try."""

    email: str
    role: Role
    what: str


DEMO_LOGINS = [
    DemoLogin(f"admin@{DEMO_DOMAIN}", Role.ADMINISTRATOR, "administrator"),
    DemoLogin(f"chutich@{DEMO_DOMAIN}", Role.CHAIR, "chair (vice-chairman of the committee)"),
    DemoLogin(f"thuky@{DEMO_DOMAIN}", Role.SECRETARY, "secretary"),
    DemoLogin(f"p-phongdien.1@{DEMO_DOMAIN}", Role.MEMBER, "staff of a centre (Phường Phong Điền)"),
    DemoLogin(f"quansat@{DEMO_DOMAIN}", Role.OBSERVER, "observer"),
]


def _people_for(unit: Unit, counter: int) -> list[tuple[str, str, str, Role]]:
    """(email, name, title, role) of the demo people of one unit."""
    local = unit.code.lower()
    head_title = {
        UnitKind.COMMITTEE: "Chủ tịch",
        UnitKind.DEPARTMENT: "Giám đốc",
        UnitKind.SUPPORT: "Giám đốc",
        UnitKind.TELECOM: "Giám đốc",
        UnitKind.CENTRE: "Giám đốc Trung tâm phục vụ hành chính công",
    }[unit.kind]
    people = [
        (f"{local}.1@{DEMO_DOMAIN}", demo_name(counter), "Chuyên viên", Role.MEMBER),
        (f"{local}.lanhdao@{DEMO_DOMAIN}", demo_name(counter + 1), head_title, Role.MEMBER),
    ]
    if unit.code == "UBND":
        people += [
            (
                f"chutich@{DEMO_DOMAIN}",
                "Phan Thiên Định",
                "Phó Chủ tịch Ủy ban nhân dân thành phố",
                Role.CHAIR,
            ),
            (f"admin@{DEMO_DOMAIN}", "Quản trị hệ thống", "Quản trị viên", Role.ADMINISTRATOR),
            (f"quansat@{DEMO_DOMAIN}", "Lê Thu Quan Sát", "Quan sát viên", Role.OBSERVER),
        ]
    if unit.code == "VP-UBND":
        people.append(
            (
                f"thuky@{DEMO_DOMAIN}",
                "Trần Thị Thư",
                "Chuyên viên Văn phòng (thư ký)",
                Role.SECRETARY,
            )
        )
    return people


async def load_demo(db: AsyncSession, schedule: Context | None = None) -> tuple[int, int]:
    """Load the demo city (idempotent): returns (units created, people created).

    With a scheduling context, also the morning (07:30) and afternoon (16:30) series inviting
    the committee, the departments, the support units, the telecom operators and all centres.
    """
    report = await import_units(db, None, UNITS_CSV.read_bytes())
    units = list(await db.scalars(select(Unit).order_by(Unit.id)))
    existing = set(await db.scalars(select(Person.email)))
    shared_hash = hash_password(DEMO_PASSWORD)
    created = 0
    for i, unit in enumerate(units):
        for email, name, title, role in _people_for(unit, i * 2):
            if email in existing:
                continue
            person = Person(
                name=name,
                email=email,
                title=title,
                role=role,
                unit_id=unit.id,
                active=True,
                password_hash=shared_hash,
                language="vi",
                phone="",
            )
            person.search_text = person_search_text(person)
            db.add(person)
            created += 1
    await db.flush()
    if schedule is not None:
        await _demo_series(db, schedule)
    return report.created, created


async def _demo_series(db: AsyncSession, ctx: Context) -> None:
    from meetings.cli import CLI_ACTOR
    from meetings.schedule.models import Series, SeriesKind
    from meetings.schedule.service import SeriesInput, create_series

    if await db.scalar(select(Series.id).where(Series.kind != SeriesKind.ADHOC).limit(1)):
        return
    codes = [u.code for u in await db.scalars(select(Unit).where(Unit.active.is_(True)))]
    start = ctx.now.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    for kind, title, at, about in (
        ("morning", "Họp giao ban sáng", "07:30", "Nắm tình hình, chỉ đạo công việc trong ngày."),
        (
            "afternoon",
            "Họp giao ban chiều",
            "16:30",
            "Tổng hợp khó khăn, rút kinh nghiệm, điều chỉnh phương án vận hành.",
        ),
    ):
        await create_series(
            db,
            CLI_ACTOR,
            SeriesInput(
                title=title,
                kind=kind,
                start_time=at,
                duration_minutes="45",
                start_date=start.isoformat(),
                chair_email=f"chutich@{DEMO_DOMAIN}",
                secretary_email=f"thuky@{DEMO_DOMAIN}",
                description=about,
                unit_codes=codes,
            ),
            ctx,
        )
