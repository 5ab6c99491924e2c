"""Test helpers for the IQFeed simulator: a raw-socket line client and a running simulator.

The client is deliberately independent of our IQFeed client code: it speaks the wire
protocol with plain sockets, so these tests prove the simulator, not our parser.
"""

from __future__ import annotations

import socket
from collections import deque
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from collectors.iqfeed.simulator import IQFeedSimulator, SimulatorConfig

HOST = "127.0.0.1"


class LineClient:
    """A blocking TCP client that reads CRLF-terminated lines."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.timeout = timeout
        self._buffer = b""
        self._lines: deque[str] = deque()
        self.bad_endings = 0  # lines that did not end in CRLF
        self.closed_by_peer = False

    def send(self, *commands: str) -> None:
        self.sock.sendall("".join(c + "\r\n" for c in commands).encode("latin-1"))

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return False
        if not data:
            self.closed_by_peer = True
            return False
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        for raw in complete:
            if not raw.endswith(b"\r"):
                self.bad_endings += 1
            self._lines.append(raw.rstrip(b"\r").decode("latin-1"))
        return True

    def read_line(self, timeout: float | None = None) -> str:
        """The next line without its line ending; TimeoutError when none comes in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._lines:
            if not self._fill(deadline):
                if self.closed_by_peer:
                    raise ConnectionError("connection closed by the simulator")
                raise TimeoutError("no complete line in time")
        return self._lines.popleft()

    def read_until(self, predicate: Callable[[str], bool], timeout: float | None = None) -> list[str]:
        """Lines up to and including the first that satisfies ``predicate``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines = []
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            lines.append(line)
            if predicate(line):
                return lines

    def expect(self, prefix: str, timeout: float | None = None) -> str:
        """The first line starting with ``prefix`` (earlier lines are skipped)."""
        return self.read_until(lambda line: line.startswith(prefix), timeout)[-1]

    def lines_for(self, seconds: float) -> list[str]:
        """Every line received during ``seconds``."""
        deadline = time.monotonic() + seconds
        lines = []
        while True:
            try:
                lines.append(self.read_line(max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                return lines
            except ConnectionError:
                return lines

    def drain(self, quiet: float = 0.3, limit: float = 5.0) -> list[str]:
        """Read until nothing arrives for ``quiet`` seconds (at most ``limit`` seconds)."""
        deadline = time.monotonic() + limit
        lines = []
        while time.monotonic() < deadline:
            try:
                lines.append(self.read_line(quiet))
            except TimeoutError:
                return lines
        raise TimeoutError(f"the connection did not go quiet within {limit}s")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def config(**overrides: object) -> SimulatorConfig:
    """A test config: ephemeral ports, two symbols, a gentle synthetic rate."""
    values: dict[str, object] = {
        "level1_port": 0,
        "level2_port": 0,
        "admin_port": 0,
        "lookup_port": 0,
        "symbols": ("AAPL", "MSFT"),
        "rate": 500.0,
        "seed": 7,
    }
    values.update(overrides)
    return SimulatorConfig(**values)  # type: ignore[arg-type]


@contextmanager
def running(**overrides: object) -> Iterator[IQFeedSimulator]:
    """A started simulator (see :func:`config`), always stopped afterwards."""
    sim = IQFeedSimulator(config(**overrides))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def connect(port: int, protocol: str | None = "6.2", timeout: float = 5.0) -> LineClient:
    """A client that has set the protocol (and read the acknowledgement) when ``protocol`` is given."""
    client = LineClient(port, timeout)
    if protocol is not None:
        client.send(f"S,SET PROTOCOL,{protocol}")
        client.expect("S,CURRENT PROTOCOL,")
    return client


def fields(line: str) -> list[str]:
    return line.split(",")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)
