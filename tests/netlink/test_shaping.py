"""``shapedlink``: the tbf limits really hold, each way, and change mid-run; teardown is complete."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from shapedlink import Link, shaped_link
from tests.netlink.harness import PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.netlink, pytest.mark.usefixtures("netns")]

SECONDS = 3.0


@pytest.fixture
def link() -> Iterator[Link]:
    with shaped_link(0, prefix=PREFIX) as made:
        yield made


def _transfer(link: Link, *, down: bool, port: int) -> float:
    """kbit/s through the link: downlink (host sends to the namespace) or uplink."""
    module = [sys.executable, "-m", "tests.netlink.throughput"]
    sink_host = link.address if down else link.host_address
    sink_cmd = [*module, "sink", sink_host, str(port)]
    source_cmd = [*module, "source", sink_host, str(port), str(SECONDS)]
    if down:
        sink_cmd = link.command(*sink_cmd)
    else:
        source_cmd = link.command(*source_cmd)
    with subprocess.Popen(sink_cmd, stdout=subprocess.PIPE, text=True) as sink:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "ready"
        subprocess.run(source_cmd, check=True, timeout=SECONDS + 20)
        out, _ = sink.communicate(timeout=20)
    return float(out.strip())


def test_tbf_limits_each_direction_within_a_quarter(link: Link) -> None:
    link.shape(down_kbit=1000, up_kbit=400)
    assert 750 <= _transfer(link, down=True, port=5201) <= 1250
    assert 300 <= _transfer(link, down=False, port=5202) <= 500


def test_rate_changes_mid_run_and_unlimited_is_fast(link: Link) -> None:
    link.shape(down_kbit=2000, up_kbit=None)
    assert 1500 <= _transfer(link, down=True, port=5203) <= 2500
    link.shape(down_kbit=250, up_kbit=None)
    assert 187 <= _transfer(link, down=True, port=5204) <= 313
    link.shape(down_kbit=None, up_kbit=None)
    assert _transfer(link, down=True, port=5205) > 20000


def test_teardown_leaves_nothing_even_after_a_failure() -> None:
    names: list[str] = []
    with pytest.raises(RuntimeError, match="inside"), shaped_link(1, down_kbit=300, prefix=PREFIX) as made:
        names += [made.namespace, made.host_device]
        raise RuntimeError("a failure inside")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert names[0] not in namespaces
    assert names[1] not in links
