"""The figures CSV: every error of every line at once, and the files Excel writes in Vietnam."""

from __future__ import annotations

import html as html_lib
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import FormData
from sqlalchemy import select

from meetings.directory.models import Role, Unit, UnitKind
from meetings.figures import spreadsheet
from meetings.figures.models import DailyReport
from tests.conftest import World

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def today() -> date:
    return datetime.now(TZ).date()


def dmy(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def cp1258(text: str) -> bytes:
    """Text as Windows writes it in Windows-1258: base letters precomposed, tones combining."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        parts = unicodedata.normalize("NFD", ch)
        tone = "".join(p for p in parts if p in TONES)
        base = unicodedata.normalize("NFC", "".join(p for p in parts if p not in TONES))
        out += (base + tone).encode("cp1258")
    return bytes(out)


async def staff_of_phu_xuan(world: World) -> Unit:
    unit = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    staff = await world.person("staff@hue.example", Role.MEMBER, unit)
    await world.login(staff.email)
    return unit


async def upload(world: World, raw: bytes) -> Any:
    await world.ensure_csrf_cookie()
    form = FormData()
    form.add_field("csrf_token", world.csrf_token())
    form.add_field("file", raw, filename="so-lieu.csv", content_type="text/csv")
    return await world.client.post("/figures/upload", data=form, allow_redirects=False)


def listed_errors(page: str) -> list[tuple[int | None, str]]:
    """(line, text) of every error the page lists."""
    box = page.split('id="upload-errors"')[1].split("</div>")[0]
    found = []
    for item in re.findall(r"<li>(.*?)</li>", box, re.S):
        text = html_lib.unescape(item)
        number = re.match(r"(?:Dòng|Line) (\d+): ", text)
        found.append((int(number.group(1)) if number else None, text))
    return found


async def test_every_error_of_every_line_is_listed_at_once(world: World) -> None:
    await staff_of_phu_xuan(world)
    d = [(today() - timedelta(days=n)).isoformat() for n in range(8)]
    text = (
        "day,centre,received,resolved,overdue,backlog\n"
        f"{d[1]},P-PHUXUAN,10,5,0,0\n"  # 2: valid
        f"{d[2]},P-PHUXUAN,abc,1,0,0\n"  # 3: not a number
        f"{d[3]},P-PHUXUAN,5,50,0,0\n"  # 4: resolved over received plus backlog
        f"{d[4]},P-THUANHOA,1,1,0,0\n"  # 5: another centre
        "31/02/2026,P-PHUXUAN,1,1,0,0\n"  # 6: no such day
        f"{d[1]},P-PHUXUAN,1,1,0,0\n"  # 7: the same centre and day again
        f"{d[5]},P-PHUXUAN,-3,0,0,0\n"  # 8: negative
    )
    response = await upload(world, text.encode())
    assert response.status == 422
    errors = listed_errors(await response.text())
    by_line: dict[int | None, list[str]] = {}
    for line, message in errors:
        by_line.setdefault(line, []).append(message)
    assert sorted(k for k in by_line if k is not None) == [3, 4, 5, 6, 7, 8], errors
    assert "Hồ sơ tiếp nhận" in by_line[3][0]  # the column, in the user's language
    assert any("Hồ sơ đã giải quyết" in m and "50" in m for m in by_line[4])
    assert any("P-THUANHOA" in m for m in by_line[5])
    assert any("Ngày" in m and "DD/MM/YYYY" in m for m in by_line[6])
    assert any("dòng 2" in m for m in by_line[7])
    assert any("âm" in m for m in by_line[8])
    async with world.db() as db:
        assert await db.scalar(select(DailyReport)) is None  # nothing stored


async def test_a_csv_from_excel_on_a_vietnamese_pc_is_accepted(world: World) -> None:
    await staff_of_phu_xuan(world)
    y, y2 = today() - timedelta(days=2), today() - timedelta(days=1)
    # "CSV UTF-8" from Excel: BOM, ";" between fields, dd/mm/yyyy, Vietnamese headers, a row
    # number column, thousands grouped the Vietnamese way, CRLF, an empty formatted row.
    text = (
        "\ufeffSTT;Ngày;Mã đơn vị;Tiếp nhận;Đã giải quyết;Quá hạn;Tồn đầu ngày\r\n"
        f"1;{dmy(y)};P-PHUXUAN;1.283;382;4;0\r\n"
        f"2;{dmy(y2)};p-phuxuan;120;200;0;\r\n"
        ";;;;;;\r\n"
    )
    response = await upload(world, text.encode("utf-8"))
    assert response.status == 303, await response.text()
    async with world.db() as db:
        rows = list(await db.scalars(select(DailyReport).order_by(DailyReport.day)))
    assert [(r.day, r.received, r.resolved, r.overdue, r.backlog) for r in rows] == [
        (y, 1283, 382, 4, 0),
        (y2, 120, 200, 0, 901),  # the backlog carried: 0 + 1283 − 382
    ]
    assert {r.source for r in rows} == {"csv"}


async def test_a_windows_1258_csv_is_accepted(world: World) -> None:
    await staff_of_phu_xuan(world)
    y = today() - timedelta(days=1)
    text = (
        "Ngày;Đơn vị;Hồ sơ tiếp nhận;Hồ sơ đã giải quyết;Hồ sơ quá hạn;Thủ tục\r\n"
        f"{dmy(y)};Phường Phú Xuân;4;2;1;Chứng thực bản sao\r\n"
        f"{dmy(y)};Phường Phú Xuân;3;1;0;Đăng ký kinh doanh hộ cá thể\r\n"
    )
    raw = cp1258(text)
    raw.decode("cp1258")
    assert raw != text.encode("utf-8")
    assert spreadsheet.decode(raw) == unicodedata.normalize("NFC", text)  # not read as Windows-1252
    response = await upload(world, raw)
    assert response.status == 303, await response.text()
    async with world.db() as db:
        report = await db.scalar(select(DailyReport))
    assert report is not None and (report.received, report.resolved, report.overdue) == (7, 3, 1)
    assert set(report.procedures) == {"Chứng thực bản sao", "Đăng ký kinh doanh hộ cá thể"}


def test_windows_1252_and_the_header_names() -> None:
    # Bytes Windows-1258 does not have (Š, Ž) can only be Windows-1252.
    assert spreadsheet.decode("Škoda;Žilina".encode("cp1252")) == "Škoda;Žilina"
    assert spreadsheet.decode(b"\x81\x8d\x8f") is None  # neither
    names = {
        "Ngày": "day",
        "ngay": "day",
        "Mã đơn vị": "centre",
        "Ma_don_vi": "centre",
        "Đơn vị": "centre",
        "Tiếp nhận": "received",
        "Hồ sơ tiếp nhận": "received",
        "Đã giải quyết": "resolved",
        "da giai quyet": "resolved",
        "Quá hạn": "overdue",
        "Hồ sơ tồn đầu ngày": "backlog",
        "Thủ tục hành chính": "procedure",
        "received": "received",
        "STT": None,
    }
    assert {name: spreadsheet.column_of(name) for name in names} == names
    assert spreadsheet.delimiter_of('Ngày;"Mã, đơn vị";Tiếp nhận') == ";"
    assert spreadsheet.iso_day("06/12/2026 0:00") == "2026-12-06"
    assert spreadsheet.iso_day("2026-12-06") == "2026-12-06"


async def test_a_missing_column_is_named_in_the_users_language(world: World) -> None:
    await staff_of_phu_xuan(world)
    y = dmy(today() - timedelta(days=1))
    response = await upload(world, f"Ngày;Tiếp nhận;Đã giải quyết\n{y};1;1\n".encode())
    assert response.status == 422
    errors = listed_errors(await response.text())
    assert [line for line, _m in errors] == [1, 1]
    assert "Mã đơn vị" in errors[0][1] and "Hồ sơ quá hạn" in errors[1][1]
    assert all(" file " not in message for _l, message in errors)


def test_line_numbers_follow_the_file() -> None:
    from meetings.figures.service import parse_csv

    t = date(2026, 12, 7)
    # Excel's "sep=;" line, blank lines, a cell with a line break: numbers are the file's lines.
    raw = (
        "sep=;\n\nNgày;Mã đơn vị;Tiếp nhận;Đã giải quyết;Quá hạn;Thủ tục\n\n"
        '05/12/2026;P-A;1;1;0;"Chứng thực\nbản sao"\n'
        "05/12/2026;P-A;x;1;0;Hộ tịch\n"
    ).encode()
    parsed = parse_csv(raw, t)
    assert [(line, centre) for line, centre, _f in parsed.lines] == [(5, "P-A")]
    assert [(e.line, e.field) for e in parsed.errors] == [(7, "received")]
