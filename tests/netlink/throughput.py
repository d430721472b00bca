"""An iperf-like TCP transfer: ``python -m tests.netlink.throughput sink|source HOST PORT [SECONDS]``.

The sink accepts one connection and prints the rate it received in kbit/s, leaving out the
first ``SKIP_S`` (tbf's burst and TCP's slow start); the source sends as fast as it can.
"""

from __future__ import annotations

import socket
import sys
import time

SKIP_S = 0.5


def sink(host: str, port: int) -> float:
    with socket.create_server((host, port)) as server:
        print("ready", flush=True)
        connection, _ = server.accept()
        with connection:
            start: float | None = None
            counted = 0
            while chunk := connection.recv(65536):
                now = time.monotonic()
                if start is None:
                    start = now + SKIP_S
                elif now >= start:
                    counted += len(chunk)
            end = time.monotonic()
    assert start is not None
    return counted * 8 / 1000 / (end - start)


def source(host: str, port: int, seconds: float) -> None:
    block = bytes(16384)
    with socket.create_connection((host, port), timeout=10) as connection:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            connection.sendall(block)


if __name__ == "__main__":
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "sink":
        print(f"{sink(host, port):.1f}", flush=True)
    else:
        source(host, port, float(sys.argv[4]))
