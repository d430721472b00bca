"""A minutes viewer too slow to follow is closed (1001, reload); the other viewers keep receiving."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import World
from tests.minutes.helpers import make_day
from tests.minutes.test_web import Socket, open_minutes, signed_in
from tests.rtc.clients import wait_for
from web import keys
from web.minutes_live import SEND_QUEUE


async def test_a_slow_minutes_viewer_is_closed_and_the_others_keep_receiving(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    url = world.client.make_url(f"/minutes/{minutes_id}/ws")
    origin = str(world.client.make_url("/")).rstrip("/")
    hub = world.app[keys.MINUTES_HUB]
    async with signed_in(world, day.chair.email) as chair_http:
        secretary = Socket(await world.client.session.ws_connect(url, headers={"Origin": origin}))
        assert await wait_for(lambda: hub.count(minutes_id) == 1, 5)
        chair = Socket(await chair_http.ws_connect(url, headers={"Origin": origin}))
        assert await wait_for(lambda: hub.count(minutes_id) == 2, 5)
        try:
            slow = next(v for v in hub.viewers[minutes_id] if v.person_id == day.chair.id)
            # More than the queue holds, without giving the writer a turn: the chair's page lags.
            for n in range(SEND_QUEUE + 50):
                slow.post(json.dumps({"type": "status", "n": n}))
            answer = await secretary.ask(1, op="add", kind="note", text="Vẫn nhận được")
            assert answer["type"] == "ack"
            assert await wait_for(lambda: any(p.get("type") == "entry" for p in secretary.pushes), 5)
            await chair.reader
            assert chair.ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
            assert len(chair.pushes) < SEND_QUEUE
        finally:
            await secretary.close()
            await chair.close()
