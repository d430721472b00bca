"""A loopback SMTP sink in a child process: counts messages and bytes, keeps nothing.

It runs in its own process so that its CPU time and its hold on the GIL do not count against
the code being measured (the machine has two cores: the sink takes one, the benchmark the other).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import socket
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

HOST = "127.0.0.1"
START_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class _Counter:
    """The aiosmtpd handler: count, then drop the message."""

    def __init__(self, messages: Synchronized[int], octets: Synchronized[int]) -> None:
        self.messages = messages
        self.octets = octets

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        size = len(envelope.original_content or envelope.content or b"")
        with self.messages.get_lock():
            self.messages.value += 1
            self.octets.value += size
        return "250 OK discarded"


def _serve(
    port: int,
    messages: Synchronized[int],
    octets: Synchronized[int],
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(
        _Counter(messages, octets),
        hostname=HOST,
        port=port,
        data_size_limit=64 * 1024 * 1024,
        ready_timeout=START_SECONDS,
    )
    controller.start()
    ready.set()
    try:
        stop.wait()
    finally:
        controller.stop()


@dataclass
class Sink:
    """A running sink: its port and its counters (read them from the parent process)."""

    port: int
    _messages: Synchronized[int]
    _octets: Synchronized[int]
    _stop: multiprocessing.synchronize.Event
    _process: multiprocessing.process.BaseProcess

    @property
    def messages(self) -> int:
        """Messages accepted so far."""
        with self._messages.get_lock():
            return int(self._messages.value)

    @property
    def octets(self) -> int:
        """Bytes of message data accepted so far."""
        with self._messages.get_lock():
            return int(self._octets.value)

    def reset(self) -> None:
        """Set both counters to zero."""
        with self._messages.get_lock():
            self._messages.value = 0
            self._octets.value = 0

    def close(self) -> None:
        """Stop the child process (it is ours; it gets a few seconds, then is terminated)."""
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


def start_sink() -> Sink:
    """Start the sink on a free loopback port and wait until it accepts connections."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
    messages: Synchronized[int] = ctx.Value("q", 0)
    octets: Synchronized[int] = ctx.Value("q", 0)  # guarded by the lock of messages
    ready = ctx.Event()
    stop = ctx.Event()
    port = free_port()
    process = ctx.Process(
        target=_serve, args=(port, messages, octets, ready, stop), name="bench-smtp-sink", daemon=True
    )
    process.start()
    if not ready.wait(START_SECONDS):
        stop.set()
        process.terminate()
        raise RuntimeError("the SMTP sink did not start")
    return Sink(port=port, _messages=messages, _octets=octets, _stop=stop, _process=process)
