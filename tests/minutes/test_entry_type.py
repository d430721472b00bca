"""The browser's one minutes-entry type (web/static/js/minutes_types.js) is what the server sends."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import World
from tests.minutes.helpers import make_day
from tests.minutes.test_web import add, open_minutes

TYPES = Path(__file__).parent.parent.parent / "web" / "static" / "js" / "minutes_types.js"


def entry_fields() -> set[str]:
    """The top-level member names of the `Entry` typedef."""
    text = TYPES.read_text(encoding="utf-8")
    typedef = re.search(r"@typedef \{\{((?:(?!@typedef).)*?)\}\} Entry\b", text, re.S)
    assert typedef is not None
    body = re.sub(r"\{[^{}]*\}", "", typedef.group(1).replace("\n *", " "))  # drop nested objects
    return set(re.findall(r"(\w+)\s*:", body))


async def test_the_entry_type_is_the_entry_the_server_sends(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    created = await add(world, minutes_id, kind="note", text="Một")
    assert created.status == 201, await created.text()
    entry = (await created.json())["entry"]
    assert entry_fields() == set(entry)
    for page in ("minutes.js", "room/minutes.js"):
        source = (TYPES.parent / page).read_text(encoding="utf-8")
        assert 'minutes_types.js").Entry} Entry' in source, page  # declared once, imported
