"""The secretary's keyboard flow on the live minutes page, in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from meetings.minutes.models import Entry, Minutes
from tests.browser.conftest import artifact
from tests.conftest import PASSWORD, World
from tests.minutes.helpers import make_day

pytestmark = pytest.mark.browser


async def stored(world: World) -> list[Entry]:
    async with world.db() as db:
        return list(await db.scalars(select(Entry).where(Entry.deleted.is_(False)).order_by(Entry.id)))


async def wait_for_entries(world: World, count: int) -> list[Entry]:
    for _ in range(100):
        found = await stored(world)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} entries, found {len(await stored(world))}")


async def test_secretary_types_entries_without_leaving_the_keyboard(
    world: World, live_url: str, browser: Any
) -> None:
    day = await make_day(world)
    page = await browser.new_page()
    try:
        await page.goto(f"{live_url}/login")
        await page.fill("#f-email", day.secretary.email)
        await page.fill("#f-password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live_url}/")
        await page.goto(f"{live_url}/meetings/occurrences/{day.afternoons[0].id}/minutes")
        minutes_id = page.url.rsplit("/", 1)[1]
        await page.goto(f"{live_url}/minutes/{minutes_id}/edit")
        await expect(page.locator("#live-status")).not_to_have_text("…", timeout=10_000)
        # Kind and unit by shortcut, text, Enter; the focus stays in the text field.
        await page.focus("#c-text")
        await page.keyboard.type("/i @P-PHUXUAN Mất đồng bộ dữ liệu <b>hồ sơ</b>")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#entries textarea")
        await page.keyboard.type("/a @VNPT !2099-01-08 VNPT đồng bộ lại")
        await page.keyboard.press("Enter")
        entries = await wait_for_entries(world, 2)
        assert (entries[0].kind.value, entries[0].text) == ("issue", "Mất đồng bộ dữ liệu <b>hồ sơ</b>")
        assert (entries[1].kind.value, str(entries[1].due_date)) == ("action", "2099-01-08")
        assert await page.evaluate("document.activeElement.id") == "c-text"
        # The markup is shown as text, never rendered.
        assert await page.locator("#entries b").count() == 0
        # Autosave: change the first entry's text and move on.
        box = page.locator(f"#entry-{entries[0].id} textarea")
        await box.fill("Mất đồng bộ dữ liệu, đã khắc phục")
        await page.keyboard.press("Tab")
        for _ in range(100):
            if (await stored(world))[0].text == "Mất đồng bộ dữ liệu, đã khắc phục":
                break
            await asyncio.sleep(0.1)
        assert (await stored(world))[0].text == "Mất đồng bộ dữ liệu, đã khắc phục"
        # The header: a member who sent an apology moves from absent to excused.
        await page.click("#header-panel summary")
        absent = page.locator('#h-attendance input[data-unit="P-PHUXUAN"][data-state="absent"]')
        assert await absent.input_value() == "Lê Văn Thành Viên"
        await absent.fill("")
        await page.keyboard.press("Tab")
        await page.keyboard.type("Lê Văn Thành Viên")
        await page.keyboard.press("Tab")
        header: dict[str, Any] = {}
        for _ in range(100):
            async with world.db() as db:
                minutes = await db.get(Minutes, int(minutes_id))
                assert minutes is not None
                header = minutes.header
            unit = next(u for u in header["attendance"] if u["unit_code"] == "P-PHUXUAN")
            if unit["excused"] == ["Lê Văn Thành Viên"]:
                break
            await asyncio.sleep(0.1)
        assert (unit["absent"], unit["excused"]) == ([], ["Lê Văn Thành Viên"])
        await page.screenshot(path=artifact("minutes-edit.png"), full_page=True)
        await page.goto(f"{live_url}/minutes/{minutes_id}")
        assert "Mất đồng bộ dữ liệu, đã khắc phục" in await page.inner_text("main")
        await page.screenshot(path=artifact("minutes-view.png"), full_page=True)
    finally:
        await page.close()


async def test_a_second_header_change_waits_for_the_first_instead_of_conflicting(
    world: World, live_url: str, browser: Any
) -> None:
    day = await make_day(world)
    page = await browser.new_page()
    # The minutes socket goes through the test, which can hold the server's answers back:
    # a second change is then made before the first one's answer (and its new header_version).
    link: dict[str, Any] = {"holding": False, "held": [], "page": None}
    sent: list[dict[str, Any]] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        link["page"] = ws

        def from_server(message: str | bytes) -> None:
            if link["holding"]:
                link["held"].append(message)
            else:
                ws.send(message)

        def from_page(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        server.on_message(from_server)
        ws.on_message(from_page)

    await page.route_web_socket(re.compile(r"/minutes/\d+/ws$"), route)
    try:
        await page.goto(f"{live_url}/login")
        await page.fill("#f-email", day.secretary.email)
        await page.fill("#f-password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live_url}/")
        await page.goto(f"{live_url}/meetings/occurrences/{day.afternoons[0].id}/minutes")
        minutes_id = int(page.url.rsplit("/", 1)[1])
        await page.goto(f"{live_url}/minutes/{minutes_id}/edit")
        await expect(page.locator("#live-status")).not_to_have_text("…", timeout=10_000)
        await page.click("#header-panel summary")
        absent = page.locator('#h-attendance input[data-unit="P-PHUXUAN"][data-state="absent"]')
        await expect(absent).to_have_value("Lê Văn Thành Viên")

        link["holding"] = True
        await absent.fill("")
        await page.keyboard.press("Tab")  # the first change goes out; its answer is held
        for _ in range(100):
            if [m for m in sent if m.get("op") == "header"]:
                break
            await asyncio.sleep(0.05)
        await page.keyboard.type("Lê Văn Thành Viên")  # into "excused", next to "absent"
        await page.keyboard.press("Tab")
        link["holding"] = False
        for message in link["held"]:
            link["page"].send(message)

        unit: dict[str, Any] = {}
        for _ in range(100):
            async with world.db() as db:
                minutes = await db.get(Minutes, minutes_id)
                assert minutes is not None
                unit = next(u for u in minutes.header["attendance"] if u["unit_code"] == "P-PHUXUAN")
            if unit["excused"]:
                break
            await asyncio.sleep(0.1)
        assert (unit["absent"], unit["excused"]) == ([], ["Lê Văn Thành Viên"])
        headers = [m for m in sent if m.get("op") == "header"]
        assert [m["header_version"] for m in headers] == [1, 2]
    finally:
        await page.close()


async def test_an_add_whose_ack_is_lost_is_resent_with_its_key_and_stored_once(
    world: World, live_url: str, browser: Any
) -> None:
    """The link drops after the server stored an add but before its ack reached the page: the
    page sends the add again on the new socket, same key, and the minutes hold it once."""
    day = await make_day(world)
    page = await browser.new_page()
    seen: dict[str, Any] = {"sockets": 0, "adds": []}
    first: list[Any] = []

    async def route(ws: Any) -> None:
        seen["sockets"] += 1
        number = seen["sockets"]
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("op") == "add":
                seen["adds"].append((number, data["key"], data["text"]))
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if number == 1 and seen["adds"]:
                return  # the ack (and anything after it) is lost with the link
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)
        if number == 1:
            first.append(ws)

    try:
        await page.route_web_socket(re.compile(r".*/minutes/\d+/ws$"), route)
        await page.goto(f"{live_url}/login")
        await page.fill("#f-email", day.secretary.email)
        await page.fill("#f-password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live_url}/")
        await page.goto(f"{live_url}/meetings/occurrences/{day.afternoons[0].id}/minutes")
        minutes_id = page.url.rsplit("/", 1)[1]
        await page.goto(f"{live_url}/minutes/{minutes_id}/edit")
        await expect(page.locator("#live-status")).not_to_have_text("…")
        await page.focus("#c-text")
        await page.keyboard.type("/n Mất kết nối giữa chừng")
        await page.keyboard.press("Enter")
        await wait_for_entries(world, 1)  # stored by the server; the page has no ack
        await first[0].close()  # the link drops
        for _ in range(100):
            if len(seen["adds"]) >= 2:
                break
            await asyncio.sleep(0.1)
        (s1, key1, text1), (s2, key2, text2) = seen["adds"][:2]
        assert (s1, s2) == (1, 2) and key1 == key2 and text1 == text2 == "Mất kết nối giữa chừng"
        await expect(page.locator("#save-status")).to_have_text("Đã lưu")
        await expect(page.locator("#entries textarea")).to_have_count(1)
        entries = await stored(world)
        assert [(e.text, e.add_key) for e in entries] == [("Mất kết nối giữa chừng", key1)]
    finally:
        await page.close()
