"""The demo city of Huế: its units from the shipped CSV, a few people per unit, the daily
series, and a few issues, manual articles and figures. It seeds several packages, so it sits
beside them rather than under the directory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.passwords import hash_password
from meetings.accounts.permissions import CLI_ACTOR, Actor
from meetings.directory.csv_import import import_units
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.directory.service import person_search_text
from meetings.figures.models import DailyReport
from meetings.issues import service as issues
from meetings.issues.models import Issue
from meetings.manual import service as manual
from meetings.manual.models import Article
from meetings.readiness.demo_morning import seed_demo_morning
from meetings.schedule.models import Series, SeriesKind
from meetings.schedule.service import Context, SeriesInput, create_series

UNITS_CSV = Path(__file__).parent / "directory" / "data" / "hue-units.csv"
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
    DemoLogin(f"hotro@{DEMO_DOMAIN}", Role.SUPPORT, "technical support (IOC): the readiness board"),
]

# The operators who keep the centres connected, taken in turn (meetings.readiness); the mountain
# communes of A Lưới are all VNPT's (the demo morning's follow-up issue goes to VNPT).
_CENTRE_OPERATORS = ("VNPT", "VIETTEL")
_MOUNTAIN_PREFIX, _MOUNTAIN_OPERATOR = "X-ALUOI", "VNPT"
# Units whose staff are technical support (the readiness board, monitoring and history).
_SUPPORT_KINDS = frozenset({UnitKind.SUPPORT, UnitKind.TELECOM})


def demo_phone(n: int) -> str:
    """A deterministic Huế landline for the n-th demo unit."""
    return f"0234 38{(n * 37) % 100:02d} {(100 + n * 53) % 1000:03d}"


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
    staff = Role.SUPPORT if unit.kind in _SUPPORT_KINDS else Role.MEMBER
    people = [
        (f"{local}.1@{DEMO_DOMAIN}", demo_name(counter), "Chuyên viên", staff),
        (f"{local}.lanhdao@{DEMO_DOMAIN}", demo_name(counter + 1), head_title, staff),
    ]
    if unit.code == "IOC":  # its officer is the demo's support login
        people[0] = (f"hotro@{DEMO_DOMAIN}", demo_name(counter), "Kỹ sư hỗ trợ kỹ thuật", Role.SUPPORT)
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
    _demo_contacts(units)
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
    await _demo_register(db)
    await seed_demo_morning(db, schedule)
    return report.created, created


def _demo_contacts(units: list[Unit]) -> None:
    """A contact phone for every unit, an operator for every centre (kept once set)."""
    by_code = {u.code: u for u in units}
    operators = [by_code[c] for c in _CENTRE_OPERATORS if c in by_code]
    centres = sorted((u for u in units if u.kind == UnitKind.CENTRE), key=lambda u: u.code)
    for i, unit in enumerate(units):
        if not unit.phone:
            unit.phone = demo_phone(i)
    for i, centre in enumerate(centres):
        if centre.operator_id is None and operators:
            fixed = by_code.get(_MOUNTAIN_OPERATOR) if centre.code.startswith(_MOUNTAIN_PREFIX) else None
            centre.operator_id = (fixed or operators[i % len(operators)]).id


async def _demo_series(db: AsyncSession, ctx: Context) -> None:
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


# Issues centres reported, manual articles, four weeks of figures: so that `make demo` shows them.
_DEMO_ISSUES = [
    ("P-PHONGDIEN", "signature", "high", "Không ký số được kết quả chứng thực bản sao điện tử.", "HUECIT"),
    ("P-THUANHOA", "fees", "medium", "Thanh toán lệ phí trực tuyến báo lỗi sau khi trừ tiền.", "VNPT"),
    ("P-PHUXUAN", "connectivity", "critical", "Mất kết nối mạng tại bộ phận một cửa từ 8 giờ.", "VIETTEL"),
    ("P-HUONGTRA", "data_sync", "high", "Hồ sơ hộ tịch không đồng bộ lên cơ sở dữ liệu quốc gia.", "IOC"),
    ("P-KIMLONG", "accounts", "low", "Cán bộ mới chưa được cấp tài khoản hệ thống một cửa.", ""),
]
_DEMO_ARTICLES = [
    (
        "certified_copies",
        "Chứng thực bản sao điện tử từ bản chính thực hiện thế nào?",
        "Cán bộ đối chiếu bản chính, scan và ký số bản sao điện tử, trả kết quả qua Cổng dịch vụ công.",
    ),
    (
        "business_registration",
        "Đăng ký hộ kinh doanh cần những giấy tờ gì?",
        "Giấy đề nghị đăng ký hộ kinh doanh; bản sao giấy tờ pháp lý của chủ hộ; "
        "biên bản họp nếu nhiều người góp vốn.",
    ),
    (
        "household_business_end",
        "Chấm dứt hoạt động hộ kinh doanh nộp hồ sơ ở đâu?",
        "Nộp thông báo chấm dứt tại bộ phận một cửa cấp xã nơi đã đăng ký, kèm bản gốc giấy chứng nhận.",
    ),
    (
        "death_registration",
        "Đăng ký khai tử trực tuyến khi nào được liên thông?",
        "Khi người yêu cầu chọn thủ tục liên thông khai tử, xóa đăng ký thường trú, hưởng mai táng phí.",
    ),
    (
        "land_use_certificates",
        "Cấp đổi giấy chứng nhận quyền sử dụng đất mất bao lâu?",
        "Không quá 7 ngày làm việc kể từ ngày nhận đủ hồ sơ hợp lệ, không tính thời gian đo đạc.",
    ),
    (
        "building_permits",
        "Giấy phép xây dựng nhà ở riêng lẻ nộp ở cấp nào?",
        "Ủy ban nhân dân cấp xã cấp giấy phép xây dựng nhà ở riêng lẻ trên địa bàn.",
    ),
    (
        "accounts",
        "Quên mật khẩu tài khoản hệ thống một cửa điện tử?",
        "Liên hệ tổ hỗ trợ HueCIT để đặt lại mật khẩu; tài khoản định danh VNeID đăng nhập trực tiếp.",
    ),
    (
        "digital_signatures",
        "Ký số báo lỗi chứng thư số hết hạn?",
        "Gia hạn chứng thư số với nhà cung cấp, cài lại plugin ký số và khởi động lại trình duyệt.",
    ),
    (
        "fee_collection",
        "Công dân đã trả phí nhưng hồ sơ báo chưa thanh toán?",
        "Đối soát giao dịch trên cổng thanh toán quốc gia; nếu đã trừ tiền, cập nhật trạng thái thủ công.",
    ),
]


async def _demo_register(db: AsyncSession) -> None:
    """Demo issues, manual articles and figures (once: skipped when any exist)."""
    editor = Actor(id=0, email="demo", name="Trần Thị Thư", role=Role.SECRETARY, unit_id=None)
    codes = {u.code: u for u in await db.scalars(select(Unit))}
    if await db.scalar(select(Issue.id).limit(1)) is None:
        for unit, category, severity, text, owner in _DEMO_ISSUES:
            if unit not in codes:
                continue
            issue = await issues.report(
                db, editor, issues.ReportInput(text=text, category=category, severity=severity, unit=unit)
            )
            if owner in codes:
                issue.reported_owner_id = codes[owner].id
    if await db.scalar(select(Article.id).limit(1)) is None:
        for topic, question, answer in _DEMO_ARTICLES:
            article = await manual.create(db, editor, manual.ArticleInput(topic, question, answer))
            await manual.publish(db, editor, article.id)
    if await db.scalar(select(DailyReport.id).limit(1)) is None:
        today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
        centres = [u for u in codes.values() if u.kind == UnitKind.CENTRE]
        now = datetime.now(UTC)
        rows = []
        for back in range(1, 29):
            day = today - timedelta(days=back)
            if day.weekday() >= 5:
                continue
            for i, centre in enumerate(sorted(centres, key=lambda u: u.code)):
                if back == 1 and i % 13 == 0:
                    continue  # a few centres have not reported yesterday
                received = 20 + (i * 7 + back * 3) % 25
                resolved = received - (i + back) % 6
                rows.append(
                    DailyReport(
                        unit_id=centre.id,
                        day=day,
                        received=received,
                        resolved=resolved,
                        overdue=(i + back) % 3,
                        backlog=(i * 3) % 10,
                        procedures={},
                        version=1,
                        source="api",
                        created_at=now,
                        updated_at=now,
                    )
                )
        db.add_all(rows)
    await db.flush()
