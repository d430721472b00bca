"""The record as people read it: approved minutes download as approved, drafts as drafts, and the
pages and documents speak Vietnamese (dates, the city's time, kind and unit names)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import docx
import pytest
from sqlalchemy import select, update

from meetings import i18n
from meetings.directory.models import Role
from meetings.mail.models import OUTBOX_KIND_LABELS
from meetings.minutes.models import ENTRY_KIND_LABELS, EntryChange, MinutesVersion
from tests.conftest import World
from tests.minutes.helpers import Day, make_day

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
# 02:05 UTC is 09:05 in Huế (Asia/Ho_Chi_Minh, UTC+7).
APPROVED_AT = datetime(2030, 1, 7, 2, 5, tzinfo=UTC)
APPROVAL_LINE = "Phiên bản 1 đã được phê duyệt bởi Nguyễn Văn Chủ Trì lúc 09:05 ngày 07/01/2030 (GMT+7)"


async def add(world: World, minutes_id: int, **data: Any) -> dict[str, Any]:
    response = await world.call("POST", f"/api/minutes/{minutes_id}/entries", json=data)
    assert response.status == 201, await response.text()
    entry: dict[str, Any] = (await response.json())["entry"]
    return entry


async def written(world: World, day: Day) -> int:
    """Afternoon minutes of 7 January 2030 with an issue of a centre and an action of VNPT."""
    await world.login(day.secretary.email)
    response = await world.client.get(
        f"/meetings/occurrences/{day.afternoons[0].id}/minutes", allow_redirects=False
    )
    minutes_id = int(response.headers["Location"].rsplit("/", 1)[1])
    await add(world, minutes_id, kind="issue", text="Mất kết nối phần mềm một cửa", unit="P-PHUXUAN")
    await add(
        world,
        minutes_id,
        kind="action",
        text="Khắc phục đường truyền",
        owner_unit="VNPT",
        due_date="2030-01-09",
    )
    return minutes_id


async def approved(world: World, day: Day, *, publish: bool) -> int:
    """The minutes submitted, approved by the chair at APPROVED_AT, published if asked."""
    minutes_id = await written(world, day)
    assert (await world.post_form(f"/minutes/{minutes_id}/submit")).status == 303
    await world.logout()
    await world.login(day.chair.email)
    assert (await world.post_form(f"/minutes/{minutes_id}/approve")).status == 303
    async with world.db() as db:
        await db.execute(
            update(MinutesVersion)
            .where(MinutesVersion.minutes_id == minutes_id)
            .values(approved_at=APPROVED_AT)
        )
        await db.commit()
    if publish:
        assert (await world.post_form(f"/minutes/{minutes_id}/publish")).status == 303
    return minutes_id


def default_links(page: str) -> dict[str, str]:
    """The page's download links that name no version: format -> address."""
    found: dict[str, str] = {}
    for href, fmt in re.findall(r'href="(/minutes/\d+/export/(docx|pdf|md))"', page):
        found.setdefault(fmt, href)
    assert set(found) == {"docx", "pdf", "md"}, found
    return found


def pdf_text(body: bytes, tmp_path: Path) -> str:
    path = tmp_path / "minutes.pdf"
    path.write_bytes(body)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True, timeout=60)
    return " ".join(out.stdout.decode("utf-8").split())


async def documents(world: World, links: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Each format downloaded from its link and read back as flat text."""
    texts = {}
    for fmt, href in links.items():
        response = await world.client.get(href)
        assert response.status == 200, (href, await response.text())
        body = await response.read()
        if fmt == "docx":
            document = docx.Document(io.BytesIO(body))
            cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
            texts[fmt] = " ".join(" ".join([*cells, *(p.text for p in document.paragraphs)]).split())
        elif fmt == "pdf":
            texts[fmt] = pdf_text(body, tmp_path)
        else:
            texts[fmt] = " ".join(body.decode("utf-8").split())
        texts[fmt + ":name"] = response.headers["Content-Disposition"]
    return texts


@needs_pdftotext
async def test_approved_then_published_minutes_download_as_the_approved_version(
    world: World, tmp_path: Path
) -> None:
    day = await make_day(world)
    minutes_id = await approved(world, day, publish=False)
    for stage in ("approved", "published"):
        if stage == "published":
            assert (await world.post_form(f"/minutes/{minutes_id}/publish")).status == 303
        page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
        texts = await documents(world, default_links(page), tmp_path)
        for fmt in ("docx", "pdf", "md"):
            text = texts[fmt]
            assert APPROVAL_LINE in text, (stage, fmt, text[-400:])
            assert "Bản dự thảo" not in text and "DỰ THẢO" not in text and "UTC" not in text, (stage, fmt)
            assert "Huế, ngày 07 tháng 01 năm 2030" in text, (stage, fmt)
            assert "du-thao" not in texts[fmt + ":name"]
    # A member of an invited centre reads the published version and downloads it as approved.
    await world.logout()
    await world.login(day.member.email)
    page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
    texts = await documents(world, default_links(page), tmp_path)
    for fmt in ("docx", "pdf", "md"):
        assert APPROVAL_LINE in texts[fmt] and "Bản dự thảo" not in texts[fmt], fmt


@needs_pdftotext
async def test_drafts_are_marked_and_a_correction_links_the_approved_version(
    world: World, tmp_path: Path
) -> None:
    day = await make_day(world)
    minutes_id = await written(world, day)
    page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
    assert 'id="approved-version"' not in page
    texts = await documents(world, default_links(page), tmp_path)
    for fmt in ("docx", "pdf", "md"):
        assert "DỰ THẢO" in texts[fmt] and "Bản dự thảo, chưa được phê duyệt." in texts[fmt], fmt
        assert "du-thao" in texts[fmt + ":name"]
    await world.logout()
    minutes_id = await approved(world, day, publish=True)
    assert (await world.post_form(f"/minutes/{minutes_id}/correct")).status == 303
    page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
    texts = await documents(world, default_links(page), tmp_path)
    for fmt in ("docx", "pdf", "md"):
        text = texts[fmt]
        assert "DỰ THẢO ĐÍNH CHÍNH (PHIÊN BẢN 2)" in text, fmt
        assert "Bản dự thảo đính chính (phiên bản 2), chưa được phê duyệt" in text, fmt
        assert "bản đã phê duyệt hiện hành là phiên bản 1" in text, fmt
        assert "đã được phê duyệt bởi" not in text, fmt
    # The approved version is one click away, and downloads as approved.
    block = page.split('id="approved-version"', 1)[1].split("</p>", 1)[0]
    assert f'href="/minutes/{minutes_id}/versions/1"' in block
    approved_links = dict(
        (fmt, href.replace("&amp;", "&"))
        for href, fmt in re.findall(r'href="(/minutes/\d+/export/(docx|pdf|md)\?version=1)"', block)
    )
    texts = await documents(world, approved_links, tmp_path)
    for fmt in ("docx", "pdf", "md"):
        assert APPROVAL_LINE in texts[fmt] and "DỰ THẢO" not in texts[fmt], fmt
    # Invitees still get the published version while the correction is written.
    await world.logout()
    await world.login(day.member.email)
    page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
    texts = await documents(world, default_links(page), tmp_path)
    assert APPROVAL_LINE in texts["md"] and "DỰ THẢO" not in texts["md"]


@needs_pdftotext
async def test_kind_names_units_and_dates_read_the_same_on_the_page_and_in_the_documents(
    world: World, tmp_path: Path
) -> None:
    day = await make_day(world)
    minutes_id = await written(world, day)
    for kind in ("lesson", "adjustment", "decision", "note"):
        await add(world, minutes_id, kind=kind, text=f"Nội dung {kind}")
    with i18n.language("vi"):
        names = {kind.value: i18n.gettext(label) for kind, label in ENTRY_KIND_LABELS.items()}
    page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
    badges = set(re.findall(r'<span class="badge">([^<]+)</span>', page))
    assert set(names.values()) <= badges, badges
    texts = await documents(world, default_links(page), tmp_path)
    for fmt in ("docx", "pdf"):
        in_document = set(re.findall(r"\[([^\]]+)\]", texts[fmt]))
        assert in_document == set(names.values()), (fmt, in_document)
    # Units by name where a person reads them; dates as 07/01/2030.
    assert "Phường Phú Xuân" in page and ">P-PHUXUAN<" not in page
    assert "07/01/2030" in page and "09/01/2030" in page and "2030-01-0" not in page.split("<main", 1)[1]
    for fmt in ("docx", "pdf", "md"):
        assert "(Phường Phú Xuân)" in texts[fmt] and "chủ trì thực hiện: VNPT Huế" in texts[fmt], fmt
        assert "hạn: 09/01/2030" in texts[fmt], fmt
    # An entry's history: fields and units by name, times in the city's time.
    first = re.search(r'id="entry-(\d+)"', page)
    assert first is not None
    history = await world.client.get(f"/minutes/{minutes_id}/entries/{first.group(1)}/history")
    html = await history.text()
    async with world.db() as db:
        at = await db.scalar(select(EntryChange.at).where(EntryChange.entry_id == int(first.group(1))))
    assert at is not None
    assert at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M %d/%m/%Y") in html
    assert "Phường Phú Xuân" in html and "Vấn đề phát sinh" in html
    assert "Tạo mục" in html and "Đã xoá" not in html  # a creation lists what was set
    assert "unit_id" not in html and "07/01/2030" in html and "2030-01-07" not in html.split("<main", 1)[1]


async def test_the_outbox_names_the_kind_of_each_mail(world: World) -> None:
    day = await make_day(world)
    await approved(world, day, publish=True)
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR, None, "Quản trị")
    await world.logout()
    await world.login(admin.email)
    page = await (await world.client.get("/admin/mail")).text()
    kinds = re.findall(r'<td data-kind="minutes">([^<]*)</td>', page)
    assert kinds and set(kinds) == {"Phát hành biên bản"}, kinds


async def test_favicon_is_an_image(world: World) -> None:
    response = await world.client.get("/favicon.ico")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("image/")
    assert (await response.read()).startswith(b"\x00\x00\x01\x00")  # an ICO file
    page = await (await world.client.get("/login")).text()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert icon is not None
    svg = await world.client.get(icon.group(1))
    assert svg.status == 200 and svg.headers["Content-Type"] == "image/svg+xml"


def test_every_kind_of_mail_the_service_sends_has_a_name() -> None:
    """The outbox's kind column is free text: each kind written in the code has a label."""
    root = Path(__file__).resolve().parents[2] / "meetings"
    kinds = set()
    for path in root.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        kinds |= set(re.findall(r'\bkind="([a-z_]+)"', source))
        kinds |= set(re.findall(r'^MAIL_KIND = "([a-z_]+)"', source, re.MULTILINE))
    assert {"invitation", "minutes", "issue_assigned", "reminder"} <= kinds
    assert kinds <= set(OUTBOX_KIND_LABELS), kinds - set(OUTBOX_KIND_LABELS)
    with i18n.language("vi"):
        assert all(i18n.gettext(label) != label for label in OUTBOX_KIND_LABELS.values())
