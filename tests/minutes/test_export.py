"""Exports parsed back: DOCX with python-docx, PDF with pdftotext, Markdown as text."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import docx
import pytest

from meetings.minutes import export

# As workflow.approval_of makes it: the time in the city's zone (09:00 in Huế is 02:00 UTC).
APPROVAL = {"by": "Nguyễn Văn Chủ Trì", "at": "2030-01-07T09:00:00+07:00", "sha256": "ab" * 32}


def sample(entries: int = 3) -> dict[str, Any]:
    """Content as workflow.content makes it."""
    issue = {
        "id": 1,
        "kind": "issue",
        "text": "Mất đồng bộ dữ liệu hồ sơ <script>alert('x')</script> & *đậm*",
        "unit": {"code": "P-PHUXUAN", "name": "Phường Phú Xuân"},
        "category": "data_sync",
        "severity": "high",
        "owner_unit": None,
        "owner_person": None,
        "due_date": None,
        "status": "open",
        "raised_on": "2030-01-07",
        "raised_by": "Trần Thị Thư Ký",
    }
    action = {
        **issue,
        "id": 2,
        "kind": "action",
        "text": "VNPT kiểm tra đường truyền",
        "category": None,
        "severity": None,
        "unit": None,
        "owner_unit": {"code": "VNPT", "name": "VNPT Huế"},
        "due_date": "2030-01-08",
    }
    more = [
        {
            **issue,
            "id": 10 + i,
            "kind": "note",
            "text": f"Ghi chú số {i}: ứng dụng chạy ổn định",
            "unit": None,
        }
        for i in range(max(0, entries - 2))
    ]
    return {
        "minutes_id": 7,
        "version": 1,
        "occurrence_id": 3,
        "title": "Giao ban chiều",
        "template": "afternoon",
        "header": {
            "date": "2030-01-07",
            "start": "16:30",
            "end": "17:15",
            "chair": "Nguyễn Văn Chủ Trì",
            "secretary": "Trần Thị Thư Ký",
            "attendance": [
                {
                    "unit_code": "P-PHUXUAN",
                    "unit_name": "Phường Phú Xuân",
                    "present": ["Lê Văn Thành Viên"],
                    "late": [],
                    "absent": [],
                    "excused": ["Phạm Thị Nghỉ"],
                }
            ],
        },
        "sections": [
            {"key": "difficulties", "title": "Khó khăn, vướng mắc", "entries": [issue, *more]},
            {"key": "lessons", "title": "Bài học kinh nghiệm", "entries": []},
            {"key": "adjustments", "title": "Điều chỉnh kế hoạch", "entries": [action]},
        ],
        "carried": [
            {
                **issue,
                "id": 0,
                "text": "Chữ ký số lỗi",
                "since": [{"id": 5, "kind": "decision", "text": "Giao Sở KH&CN", "raised_on": "2030-01-07"}],
            }
        ],
    }


def test_place_and_date_line_follows_the_decree() -> None:
    assert export.place_date("2030-01-07") == "Huế, ngày 07 tháng 01 năm 2030"
    assert export.place_date("2030-12-25") == "Huế, ngày 25 tháng 12 năm 2030"
    assert export.place_date("2030-03-05") == "Huế, ngày 05 tháng 3 năm 2030"


def test_docx_reads_back_with_its_layout_and_diacritics() -> None:
    document = docx.Document(io.BytesIO(export.to_docx(sample(), APPROVAL)))
    header = document.tables[0]
    assert "ỦY BAN NHÂN DÂN" in header.cell(0, 0).text and "THÀNH PHỐ HUẾ" in header.cell(0, 0).text
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in header.cell(0, 1).text
    assert "Độc lập - Tự do - Hạnh phúc" in header.cell(0, 1).text
    assert header.cell(1, 0).text == "Số: 7/BB-GB"
    assert header.cell(1, 1).text == "Huế, ngày 07 tháng 01 năm 2030"
    text = "\n".join(p.text for p in document.paragraphs)
    assert "BIÊN BẢN HỌP GIAO BAN BUỔI CHIỀU" in text
    assert "1. Khó khăn, vướng mắc" in text
    issue = "[Vấn đề phát sinh] (Phường Phú Xuân) Mất đồng bộ dữ liệu hồ sơ <script>alert('x')</script>"
    assert issue in text
    assert "hạn: 08/01/2030" in text
    assert "Chữ ký số lỗi" in text and "(nêu ngày 07/01/2030, ghi bởi Trần Thị Thư Ký)" in text
    assert "kết luận, chỉ đạo: Giao Sở KH&CN" in text
    signatures = document.tables[1]
    assert "THƯ KÝ" in signatures.cell(0, 0).text and "Trần Thị Thư Ký" in signatures.cell(0, 0).text
    assert "CHỦ TRÌ" in signatures.cell(0, 1).text and "Nguyễn Văn Chủ Trì" in signatures.cell(0, 1).text
    assert APPROVAL["sha256"] in text
    assert "phê duyệt bởi Nguyễn Văn Chủ Trì lúc 09:00 ngày 07/01/2030 (GMT+7)" in text
    assert "DỰ THẢO" not in text and "Bản dự thảo" not in text


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) not installed")
def test_pdf_reads_back_with_pdftotext(tmp_path: Path) -> None:
    path = tmp_path / "m.pdf"
    path.write_bytes(export.to_pdf(sample(), APPROVAL))
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=60
    ).stdout.decode("utf-8")
    flat = " ".join(text.split())
    for expected in (
        "ỦY BAN NHÂN DÂN",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Số: 7/BB-GB",
        "Huế, ngày 07 tháng 01 năm 2030",
        "BIÊN BẢN HỌP GIAO BAN BUỔI CHIỀU",
        "Mất đồng bộ dữ liệu hồ sơ <script>alert('x')</script>",
        "THƯ KÝ",
        "CHỦ TRÌ",
        "Nguyễn Văn Chủ Trì",
    ):
        assert expected in flat, expected


def test_pdf_of_two_hundred_entries_and_unknown_glyphs(tmp_path: Path) -> None:
    data = sample(200)
    data["sections"][0]["entries"][0]["text"] = "Biểu tượng \U0001f600 và \x00 ký tự lạ"
    pdf = export.to_pdf(data, None)
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_markdown_escapes_html() -> None:
    md = export.to_markdown(sample(), APPROVAL)
    assert "# BIÊN BẢN HỌP GIAO BAN BUỔI CHIỀU" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\*đậm\\*" in md
    assert "| Trần Thị Thư Ký | Nguyễn Văn Chủ Trì |" in md
