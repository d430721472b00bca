"""Minutes as documents: DOCX and PDF in the layout of Decree 30/2020/NĐ-CP, and Markdown.

The official document is in Vietnamese whatever the reader's interface language, so its fixed
words are written here in Vietnamese; the names of entry kinds, categories and severities come
from the same label tables as the web pages, read from the Vietnamese catalog, so a kind is
called the same on the page and in the document. Every export takes
the plain content of `meetings.minutes.workflow.content` (or an approved version of it), so an
exported version is exactly what was approved. Entry text is user input: it goes into DOCX as
XML text (python-docx escapes it), into the PDF as drawn glyphs, and into Markdown escaped, so
"<script>" is shown as those characters and never runs.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from meetings import i18n
from meetings.minutes.models import ENTRY_KIND_LABELS, ISSUE_CATEGORY_LABELS, SEVERITY_LABELS

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
ISSUING_PARENT = "ỦY BAN NHÂN DÂN"
ISSUING_BODY = "THÀNH PHỐ HUẾ"
PLACE = "Huế"
NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"

TITLES = {
    "morning": "BIÊN BẢN HỌP GIAO BAN BUỔI SÁNG",
    "afternoon": "BIÊN BẢN HỌP GIAO BAN BUỔI CHIỀU",
    "adhoc": "BIÊN BẢN HỌP GIAO BAN ĐỘT XUẤT",
}
STATES = {
    "present": "Có mặt",
    "late": "Đến muộn",
    "left_early": "Về sớm",
    "absent": "Vắng",
    "excused": "Vắng có lý do",
}
CARRIED_MARK = "[Chuyển tiếp]"
DOCUMENT_LANGUAGE = "vi"


def label(table: Mapping[Any, str], value: str) -> str:
    """A value's name from one of the models' label tables, in the document's language."""
    msgid = table.get(value)
    if msgid is None:
        return value
    with i18n.language(DOCUMENT_LANGUAGE):
        return i18n.gettext(msgid)


def kind_name(kind: str) -> str:
    """The name of an entry kind, as the web pages show it in Vietnamese."""
    return label(ENTRY_KIND_LABELS, kind)


def vn_date(value: date) -> str:
    """06/12/2026."""
    return f"{value:%d/%m/%Y}"


def zone_name(offset: timedelta | None) -> str:
    """The zone of a local time for a reader: 'GMT+7'."""
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"GMT{sign}{hours}" + (f":{rest:02d}" if rest else "")


def place_date(day: str) -> str:
    """'Huế, ngày 05 tháng 02 năm 2026': days below 10 and months 1 and 2 get a leading zero."""
    d = date.fromisoformat(day)
    month = f"{d.month:02d}" if d.month < 3 else str(d.month)
    return f"{PLACE}, ngày {d.day:02d} tháng {month} năm {d.year}"


def number_line(data: dict[str, Any]) -> str:
    """The document number line."""
    return f"Số: {data['minutes_id']}/BB-GB"


def file_stem(data: dict[str, Any], approval: dict[str, Any] | None = None) -> str:
    """A file name without extension: bien-ban-2026-12-01-12-v1 (with -du-thao for a draft)."""
    stem = f"bien-ban-{data['header'].get('date', '')}-{data['minutes_id']}-v{data['version']}"
    return stem if approval else f"{stem}-du-thao"


def entry_line(entry: dict[str, Any]) -> str:
    """One entry as one line of text: its kind, unit, text and particulars."""
    parts = [f"[{kind_name(entry['kind'])}]"]
    if entry.get("unit"):
        parts.append(f"({entry['unit']['name']})")
    parts.append(entry["text"])
    extra = []
    if entry.get("category"):
        extra.append("lĩnh vực: " + label(ISSUE_CATEGORY_LABELS, entry["category"]).lower())
    if entry.get("severity"):
        extra.append("mức độ: " + label(SEVERITY_LABELS, entry["severity"]).lower())
    owner = entry.get("owner_unit") or entry.get("owner_person")
    if owner:
        extra.append("chủ trì thực hiện: " + owner["name"])
    if entry.get("due_date"):
        d = date.fromisoformat(entry["due_date"])
        extra.append(f"hạn: {vn_date(d)}")
    if entry.get("kind") in {"issue", "action"} and entry.get("status") == "closed":
        extra.append("đã xử lý xong")
    if extra:
        parts.append("— " + "; ".join(extra))
    return " ".join(parts)


def carried_line(entry: dict[str, Any]) -> str:
    """A carried entry: the line, when and by whom it was raised, and what was decided since."""
    raised = entry.get("raised_on", "")
    when = vn_date(date.fromisoformat(raised)) if raised else ""
    line = f"{CARRIED_MARK} {entry_line(entry)} (nêu ngày {when}" + (
        f", ghi bởi {entry['raised_by']})" if entry.get("raised_by") else ")"
    )
    for s in entry.get("since", []):
        line += f"; {kind_name(s['kind']).lower()}: {s['text']}"
    return line


def attendance_lines(header: dict[str, Any]) -> list[str]:
    """Attendance by unit, one line per unit: counts, then every name by state (with the reason
    of a correction)."""
    lines = []
    for unit in header.get("attendance", []):
        reasons = unit.get("reasons", {})

        def named(person: str, reasons: dict[str, str] = reasons) -> str:
            return f"{person} ({reasons[person]})" if reasons.get(person) else person

        counts = [f"{STATES[s].lower()} {len(unit.get(s, []))}" for s in STATES if unit.get(s)]
        name = unit.get("unit_name") or "Khác"
        detail = "; ".join(f"{STATES[s]}: {', '.join(map(named, unit[s]))}" for s in STATES if unit.get(s))
        lines.append(f"{name}: {', '.join(counts) or 'không có ai'}" + (f" ({detail})" if detail else ""))
    return lines


def figures_part(figures: dict[str, Any]) -> tuple[str, list[str]]:
    """The dossier figures frozen into approved morning minutes: totals, each centre, who did not report."""
    day = date.fromisoformat(figures["day"])
    rate = f"{figures.get('rate', 0) * 100:.1f}".replace(".", ",")
    lines = [
        f"Tổng: tiếp nhận {figures['received']}, đã giải quyết {figures['resolved']}, "
        f"quá hạn {figures['overdue']}, tồn {figures.get('backlog', 0)}; tỷ lệ giải quyết {rate}%.",
        *(
            f"- {c.get('name') or c['code']}: tiếp nhận {c['received']}, "
            f"đã giải quyết {c['resolved']}, quá hạn {c['overdue']}."
            for c in figures.get("centres", [])
        ),
    ]
    missing = figures.get("missing_names") or figures.get("missing")
    if missing:
        lines.append(f"Chưa báo cáo: {', '.join(missing)}.")
    return (f"SỐ LIỆU HỒ SƠ NGÀY {vn_date(day)}", lines)


def body(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The body as (heading, paragraphs), in order; shared by every format."""
    h = data["header"]
    day = date.fromisoformat(h["date"]) if h.get("date") else None
    when = f"{h.get('start', '')}, ngày {vn_date(day)}" if day else h.get("start", "")
    parts: list[tuple[str, list[str]]] = [
        (
            "I. THỜI GIAN, THÀNH PHẦN",
            [
                f"Thời gian bắt đầu: {when}.",
                f"Chủ trì: {h.get('chair') or '…'}.",
                f"Thư ký: {h.get('secretary') or '…'}.",
                "Thành phần tham dự:",
                *("- " + line for line in attendance_lines(h)),
            ],
        ),
    ]
    content: list[str] = []
    for i, section in enumerate(data["sections"], start=1):
        content.append(f"{i}. {section['title']}")
        content.extend("- " + entry_line(e) for e in section["entries"]) if section[
            "entries"
        ] else content.append("- Không có.")
    if h.get("figures"):
        parts.append(figures_part(h["figures"]))
    parts.append(("II. NỘI DUNG", content))
    carried = ["- " + carried_line(e) for e in data.get("carried", [])] or ["- Không có."]
    parts.append(("III. CÁC VẤN ĐỀ TỪ CÁC CUỘC HỌP TRƯỚC", carried))
    parts.append(("", [f"Cuộc họp kết thúc lúc {h.get('end', '…')} cùng ngày."]))
    return parts


def is_correction(data: dict[str, Any]) -> bool:
    """Whether the content is a later version than the first: a correction of approved minutes."""
    return int(data.get("version") or 1) > 1


def draft_mark(data: dict[str, Any], approval: dict[str, Any] | None) -> str:
    """The mark above the title of a draft ('DỰ THẢO'), empty for an approved version."""
    if approval:
        return ""
    return f"DỰ THẢO ĐÍNH CHÍNH (PHIÊN BẢN {data['version']})" if is_correction(data) else "DỰ THẢO"


def approval_note(data: dict[str, Any], approval: dict[str, Any] | None) -> str:
    """The closing line: who approved which version when (in the city's time), or that it is a draft.

    `approval["at"]` is an ISO 8601 time with the city's offset (workflow.approval_of makes it).
    """
    if not approval:
        if is_correction(data):
            n = int(data["version"])
            return (
                f"Bản dự thảo đính chính (phiên bản {n}), chưa được phê duyệt; "
                f"bản đã phê duyệt hiện hành là phiên bản {n - 1}."
            )
        return "Bản dự thảo, chưa được phê duyệt."
    at = datetime.fromisoformat(approval["at"])
    return (
        f"Phiên bản {data.get('version', 1)} đã được phê duyệt bởi {approval['by']} "
        f"lúc {at:%H:%M} ngày {vn_date(at.date())} ({zone_name(at.utcoffset())}); "
        f"SHA-256: {approval['sha256']}"
    )


# --- Markdown --------------------------------------------------------------------------------


def _md(text: str) -> str:
    # HTML in user text must not become markup in a Markdown viewer; emphasis marks are kept literal.
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]#|":
        out = out.replace(ch, "\\" + ch)
    return out


def to_markdown(data: dict[str, Any], approval: dict[str, Any] | None = None) -> str:
    """The minutes as Markdown."""
    h = data["header"]
    lines = [
        f"**{ISSUING_PARENT}**  ",
        f"**{ISSUING_BODY}**",
        "",
        f"**{NATION}**  ",
        f"**{MOTTO}**",
        "",
        number_line(data) + "  ",
        f"*{place_date(h['date'])}*" if h.get("date") else "",
        "",
        *([f"**{draft_mark(data, approval)}**", ""] if draft_mark(data, approval) else []),
        f"# {TITLES.get(data['template'], TITLES['adhoc'])}",
        "",
        f"**{_md(data['title'])}**",
        "",
    ]
    for heading, paragraphs in body(data):
        if heading:
            lines += [f"## {heading}", ""]
        lines += [_md(p) if not p.startswith("- ") else "- " + _md(p[2:]) for p in paragraphs]
        lines.append("")
    lines += [
        "| THƯ KÝ | CHỦ TRÌ |",
        "| --- | --- |",
        f"| {_md(h.get('secretary', ''))} | {_md(h.get('chair', ''))} |",
        "",
        f"*{_md(approval_note(data, approval))}*",
        "",
    ]
    return "\n".join(lines)


# --- DOCX ------------------------------------------------------------------------------------


def to_docx(data: dict[str, Any], approval: dict[str, Any] | None = None) -> bytes:
    """The minutes as a Word document (Times New Roman 13, A4, Decree 30 margins)."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Mm, Pt

    doc = Document()
    section = doc.sections[0]
    section.page_height, section.page_width = Mm(297), Mm(210)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    style = doc.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    h = data["header"]

    table = doc.add_table(rows=2, cols=2)
    cells = table.rows[0].cells
    for cell, lines in ((cells[0], (ISSUING_PARENT, ISSUING_BODY)), (cells[1], (NATION, MOTTO))):
        p = cell.paragraphs[0]
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        for i, line in enumerate(lines):
            run = p.add_run(line + ("\n" if i == 0 else ""))
            run.bold = i == 1 or cell is cells[1]
            run.font.size = Pt(12 if cell is cells[1] and i == 0 else 13)
    second = table.rows[1].cells
    p = second[0].paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    p.add_run(number_line(data))
    p = second[1].paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    if h.get("date"):
        p.add_run(place_date(h["date"])).italic = True

    mark = draft_mark(data, approval)
    if mark:
        marked = doc.add_paragraph()
        marked.alignment = WD_ALIGN_PARAGRAPH.CENTER
        marked.add_run(mark).bold = True
    title = doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = title.add_run(TITLES.get(data["template"], TITLES["adhoc"]))
    run.bold = True
    run.font.size = Pt(14)
    sub = doc.add_paragraph()
    sub.alignment = WD_ALIGN_PARAGRAPH.CENTER
    sub.add_run(data["title"]).bold = True

    for heading, paragraphs in body(data):
        if heading:
            doc.add_paragraph().add_run(heading).bold = True
        for text in paragraphs:
            para = doc.add_paragraph(text)
            para.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY

    signatures = doc.add_table(rows=1, cols=2)
    for cell, role, name in (
        (signatures.rows[0].cells[0], "THƯ KÝ", h.get("secretary", "")),
        (signatures.rows[0].cells[1], "CHỦ TRÌ", h.get("chair", "")),
    ):
        p = cell.paragraphs[0]
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        p.add_run(role).bold = True
        p.add_run("\n(Ký, ghi rõ họ tên)").italic = True
        p.add_run("\n\n\n\n" + name).bold = True
    note = doc.add_paragraph()
    small = note.add_run(approval_note(data, approval))
    small.italic = True
    small.font.size = Pt(9)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


# --- PDF -------------------------------------------------------------------------------------


@cache
def _glyphs(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def _pdf_text(text: str) -> str:
    """Text the PDF font can draw: NFC, and characters it has no glyph for shown as '?'."""
    glyphs = _glyphs(str(FONT_DIR / "DejaVuSerif.ttf"))
    text = unicodedata.normalize("NFC", text)
    return "".join(ch if ord(ch) in glyphs or ch == "\n" else "?" for ch in text)


def to_pdf(data: dict[str, Any], approval: dict[str, Any] | None = None) -> bytes:
    """The minutes as an A4 PDF with an embedded Unicode font (DejaVu Serif)."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(30, 20, 15)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font("Serif", "", str(FONT_DIR / "DejaVuSerif.ttf"))
    pdf.add_font("Serif", "B", str(FONT_DIR / "DejaVuSerif-Bold.ttf"))
    pdf.add_font("Serif", "I", str(FONT_DIR / "DejaVuSerif-Italic.ttf"))
    pdf.set_title(_pdf_text(TITLES.get(data["template"], TITLES["adhoc"])))
    pdf.add_page()
    h = data["header"]
    width = pdf.w - pdf.l_margin - pdf.r_margin
    left_w, right_w = width * 0.42, width * 0.58
    top = pdf.get_y()

    def centred(text: str, w: float, x: float, style: str = "", size: float = 11, line: float = 5.5) -> None:
        pdf.set_font("Serif", style, size)
        pdf.set_x(x)
        pdf.multi_cell(w, line, _pdf_text(text), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    x0 = pdf.l_margin
    centred(ISSUING_PARENT, left_w, x0)
    centred(ISSUING_BODY, left_w, x0, "B")
    rule_y = pdf.get_y() + 0.5
    pdf.line(x0 + left_w * 0.35, rule_y, x0 + left_w * 0.65, rule_y)
    pdf.set_y(rule_y + 2)
    centred(number_line(data), left_w, x0)
    left_end = pdf.get_y()
    pdf.set_y(top)
    centred(NATION, right_w, x0 + left_w, "B", 10.5)
    centred(MOTTO, right_w, x0 + left_w, "B", 11)
    rule_y = pdf.get_y() + 0.5
    pdf.line(x0 + left_w + right_w * 0.22, rule_y, x0 + left_w + right_w * 0.78, rule_y)
    pdf.set_y(rule_y + 2)
    if h.get("date"):
        centred(place_date(h["date"]), right_w, x0 + left_w, "I")
    pdf.set_y(max(left_end, pdf.get_y()) + 8)
    mark = draft_mark(data, approval)
    if mark:
        centred(mark, width, x0, "B", 11, 6)
    centred(TITLES.get(data["template"], TITLES["adhoc"]), width, x0, "B", 13, 7)
    centred(data["title"], width, x0, "B", 12, 6)
    pdf.ln(4)
    for heading, paragraphs in body(data):
        if heading:
            pdf.set_font("Serif", "B", 11.5)
            pdf.multi_cell(width, 6, _pdf_text(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Serif", "", 11.5)
        for text in paragraphs:
            pdf.multi_cell(width, 6, _pdf_text(text), align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    if pdf.get_y() > pdf.h - 60:
        pdf.add_page()
    pdf.ln(6)
    top = pdf.get_y()
    half = width / 2
    for i, (role, name) in enumerate((("THƯ KÝ", h.get("secretary", "")), ("CHỦ TRÌ", h.get("chair", "")))):
        pdf.set_y(top)
        centred(role, half, x0 + i * half, "B")
        centred("(Ký, ghi rõ họ tên)", half, x0 + i * half, "I", 10)
        pdf.set_y(pdf.get_y() + 22)
        centred(name or "", half, x0 + i * half, "B")
    pdf.ln(8)
    pdf.set_font("Serif", "I", 8)
    for line in approval_note(data, approval).split("; "):
        pdf.multi_cell(width, 4, _pdf_text(line), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
