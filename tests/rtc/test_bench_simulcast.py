"""The simulcast publisher of ``bench/sfu.py`` (``python -m bench simulcast``) really publishes three
layers the SFU accepts, so that benchmark cannot silently measure a single-layer stream."""

from __future__ import annotations

from bench.sfu import (
    SIMULCAST_LAYERS,
    _Endpoint,
    _Load,
    _Spec,
    deliver_push,
    preencode_simulcast,
    push_message,
)
from meetings.rtc import internals
from meetings.rtc.sfu import LayersWanted, Sfu, SfuConfig, SfuEvent
from tests.rtc.clients import LOOPBACK, wait_for


async def test_the_bench_simulcast_publisher_gets_three_layers_accepted() -> None:
    sfu = Sfu(SfuConfig())
    endpoint = _Endpoint(
        _Spec("e001", True, None, simulcast=True), _Load(), [], preencode_simulcast(frames=10)
    )
    internals.gather_host_candidates_on(endpoint.pc, LOOPBACK)
    answers: list[str] = []

    async def join(name: str, sdp: str) -> str:
        assert "a=simulcast:send q;h;f" in sdp and internals.RID_URI in sdp
        answers.append(await sfu.join(name, sdp, {}))
        return answers[-1]

    try:
        await endpoint.join(join)
        assert "a=simulcast:recv q;h;f" in answers[0]
        camera = endpoint.camera
        assert camera is not None and endpoint.camera_transceiver is not None
        mid = endpoint.camera_transceiver.mid or ""

        def three_active() -> bool:
            layers = sfu.layers("e001").get(mid, ())
            return len(layers) == 3 and all(layer.active and layer.width for layer in layers)

        assert await wait_for(three_active, within=15.0), sfu.layers("e001")
        layers = sfu.layers("e001")[mid]
        assert [layer.rid for layer in layers] == ["q", "h", "f"]
        assert [(layer.width, layer.height) for layer in layers] == [
            (w, h) for _, w, h, _ in SIMULCAST_LAYERS
        ]
        assert {layer.ssrc for layer in layers} == set(camera.ssrcs)
        # Chromium's behaviour: the rid goes once the SFU's receiver reports name the layer.
        assert await wait_for(lambda: all(camera.acked), within=10.0)
    finally:
        await endpoint.close()
        await sfu.close()


async def test_the_bench_simulcast_publisher_stops_and_resumes_the_layers_the_sfu_asks_for() -> None:
    """Dynacast as Chromium does it: the SFU's own LayersWanted, relayed as the bench relays it
    (``push_message`` in the server, ``deliver_push`` in a load generator), stops the layers
    nobody may get and starts them again when a receiver may step up to them."""
    endpoints: dict[str, _Endpoint] = {}
    wanted: list[LayersWanted] = []

    def on_event(event: SfuEvent) -> None:
        if isinstance(event, LayersWanted):
            wanted.append(event)
        message = push_message(event)
        if message is not None:
            deliver_push(endpoints, message[1:])

    sfu = Sfu(SfuConfig(), on_event=on_event)  # adaptive: the allocation decides what is wanted
    loops = preencode_simulcast(frames=10)
    publisher = endpoints["e000"] = _Endpoint(_Spec("e000", True, None, simulcast=True), _Load(), [], loops)
    receiver = endpoints["e001"] = _Endpoint(_Spec("e001", False, None), _Load(), [])
    for endpoint in endpoints.values():
        internals.gather_host_candidates_on(endpoint.pc, LOOPBACK)

    async def join(name: str, sdp: str) -> str:
        return await sfu.join(name, sdp, {})

    try:
        await publisher.join(join)
        camera = publisher.camera
        assert camera is not None and publisher.camera_transceiver is not None
        mid = publisher.camera_transceiver.mid or ""
        # Nobody receives it: the lowest layer only (a receiver that comes gets it at once).
        assert await wait_for(lambda: camera.active == [True, False, False], within=15.0), wanted
        assert LayersWanted("e000", mid, ("q",)) in wanted
        assert await wait_for(
            lambda: [layer.active for layer in sfu.layers("e000")[mid]] == [True, False, False], within=15.0
        ), sfu.layers("e000")
        sent = list(camera.sent)
        assert await wait_for(lambda: camera.sent[0] > sent[0])
        assert camera.sent[1:] == sent[1:], "a stopped layer sends nothing"

        # A receiver with large tiles: it may step up, so the next layer runs again.
        await receiver.join(join)
        slots = [t.mid or "" for t in receiver.slots if t.kind == "video"]
        sfu.set_tile_sizes("e001", dict.fromkeys(slots, (640, 360)))
        assert await wait_for(lambda: camera.active[:2] == [True, True], within=15.0), wanted
        assert await wait_for(lambda: sfu.layers("e000")[mid][1].active, within=15.0), sfu.layers("e000")
        assert camera.sent[1] > sent[1]
        assert camera.set_layers("not-the-camera", ()) is False and camera.active[:2] == [True, True]
    finally:
        for endpoint in endpoints.values():
            await endpoint.close()
        await sfu.close()
