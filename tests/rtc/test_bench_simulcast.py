"""The simulcast publisher of ``bench/sfu.py`` (``python -m bench simulcast``) really publishes three
layers the SFU accepts, so that benchmark cannot silently measure a single-layer stream."""

from __future__ import annotations

from bench.sfu import SIMULCAST_LAYERS, _Endpoint, _Load, _Spec, preencode_simulcast
from meetings.rtc import internals
from meetings.rtc.sfu import Sfu, SfuConfig
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
