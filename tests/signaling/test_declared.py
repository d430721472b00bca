"""The protocols are declared once (meetings.live.protocol, meetings.live.minutes, meetings.wire);
the documents and the browser's constants are checked against that declaration.

The browser's constants are checked rather than generated: the JS stays plain hand-written
modules with no build step (STYLE.md), and the one literal that copies the declaration
(`FINAL_CLOSE_CODES` in room/backoff.js) fails this test as soon as either side changes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from meetings.live import minutes as minutes_live
from meetings.live import protocol
from meetings.live.messages import SESSION_MESSAGES
from meetings.rooms.events import ROOM_MESSAGES
from meetings.wire import CloseCode, ServerMessage, fields_of

ROOT = Path(__file__).parent.parent.parent
SIGNALING = (ROOT / "docs" / "signaling.md").read_text(encoding="utf-8")
ROOMS = (ROOT / "docs" / "rooms.md").read_text(encoding="utf-8")
MINUTES = (ROOT / "docs" / "minutes.md").read_text(encoding="utf-8")
BACKOFF = (ROOT / "web" / "static" / "js" / "room" / "backoff.js").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"\n#{1,3} ", text[start + len(heading) :])
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def _tables(text: str) -> list[tuple[str, dict[str, str]]]:
    """Every Markdown table: its first header cell, and first cell (no backticks) → rest of row."""
    tables: list[tuple[str, dict[str, str]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if i + 1 < len(lines) and re.fullmatch(r"\|[\s\-|:]+\|?", lines[i + 1].strip()):
            tables.append((cells[0], {}))  # a header row
        elif tables and not set(cells[0]) <= {"-", " ", ":"}:
            tables[-1][1][cells[0].strip("`")] = " | ".join(cells[1:])
    return tables


def _table_rows(text: str, header: str | None = None) -> dict[str, str]:
    """The rows of every table (with that first header cell, if given)."""
    rows: dict[str, str] = {}
    for first, table in _tables(text):
        if header is None or first == header:
            rows |= table
    return rows


def _names(cell: str) -> set[str]:
    """Every identifier written in backticks in a cell (`a, b`, `c`)."""
    found: set[str] = set()
    for quoted in re.findall(r"`([^`]*)`", cell):
        found |= set(re.findall(r"[A-Za-z_]+", quoted))
    return found


def test_the_close_code_table_is_the_enum() -> None:
    rows = _table_rows(_section(SIGNALING, "## Errors and close codes"))
    documented = {int(code) for code in rows if code.isdigit()}
    assert documented == {int(c) for c in CloseCode}


def test_the_final_close_codes_are_the_same_in_the_docs_the_browser_and_the_declaration() -> None:
    declared = {int(c) for c in protocol.FINAL_CLOSE_CODES}
    literal = re.search(r"FINAL_CLOSE_CODES = new Set\(\[([^\]]*)\]\)", BACKOFF)
    assert literal is not None
    assert {int(n) for n in literal.group(1).split(",")} == declared
    sentence = re.search(r"closes with any code but (.*?), when the socket falls silent", SIGNALING, re.S)
    assert sentence is not None
    assert {int(n) for n in re.findall(r"\b(\d{4})\b", sentence.group(1))} == declared


def test_every_room_message_is_documented_with_its_fields() -> None:
    rows = _table_rows(_section(ROOMS, "## Events a room sends"))
    assert set(rows) == {m.TYPE for m in ROOM_MESSAGES}
    for message in ROOM_MESSAGES:
        missing = set(fields_of(message)) - {"type"} - _names(rows[message.TYPE])
        assert not missing, (message.TYPE, missing)


def test_every_session_message_is_documented_with_its_fields() -> None:
    rows = _table_rows(SIGNALING, "server → client")
    words = _names(SIGNALING)
    for message in SESSION_MESSAGES:
        assert message.TYPE in words, message.TYPE
        documented = _names(rows[message.TYPE]) if message.TYPE in rows else words
        missing = set(fields_of(message)) - {"type"} - documented
        assert not missing, (message.TYPE, missing)


def test_every_client_message_is_documented_and_nothing_else() -> None:
    rows = _table_rows(SIGNALING, "client → server")
    # `join` is documented under "Opening"; `answer` is parsed only to be refused (the server offers never).
    assert set(rows) | {"join", "answer"} == set(protocol.CLIENT_MESSAGE_TYPES)
    assert '"type":"join"' in SIGNALING


def test_every_minutes_socket_message_and_op_is_documented() -> None:
    section = _section(MINUTES, "## Live socket")
    words = _names(section)
    declared: tuple[type[ServerMessage], ...] = minutes_live.MINUTES_MESSAGES
    for message in declared:
        assert message.TYPE in words, message.TYPE
    assert set(minutes_live.MINUTES_OPS) <= words


def test_the_documented_minutes_ops_are_the_declared_edits() -> None:
    section = _section(MINUTES, "## Live socket")
    listed = re.search(r'\{"op": ((?:"[a-z]+"\|?)+), "ref": n', section)
    assert listed is not None
    documented = re.findall(r'"([a-z]+)"', listed.group(1))
    declared = [edit.OP for edit in minutes_live.MINUTES_EDITS]
    assert documented == declared
    assert len(set(declared)) == len(declared)
    assert set(get_args(minutes_live.MinutesEdit)) == set(minutes_live.MINUTES_EDITS)
