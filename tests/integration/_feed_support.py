"""Helpers shared by the FeedClient tests: a simulator, settings for it, an event recorder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from collectors.iqfeed.client import FeedClient
from collectors.iqfeed.simulator import IQFeedSimulator, SimulatorConfig
from config import FeedSettings
from events import Depth, Event, Quote, Trade

SYMBOLS = ("AAPL", "MSFT", "SPY")


@contextmanager
def running_simulator(**overrides: Any) -> Iterator[IQFeedSimulator]:
    """A simulator on ephemeral ports, stopped afterwards."""
    values: dict[str, Any] = dict(
        host="127.0.0.1", level1_port=0, level2_port=0, admin_port=0, lookup_port=0,
        symbols=list(SYMBOLS), rate=600.0, seed=7, replay=None, speed=1.0, shift_to_today=False,
        watch_limit=500, login_ok=True,
    )
    values.update(overrides)
    sim = IQFeedSimulator(SimulatorConfig(**values))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def settings_for(sim: IQFeedSimulator, **overrides: Any) -> FeedSettings:
    """Client settings pointing at ``sim``, with short timeouts so faults heal in seconds."""
    values: dict[str, Any] = dict(
        host="127.0.0.1", level1_port=sim.level1_port, level2_port=sim.level2_port,
        admin_port=sim.admin_port, lookup_port=sim.lookup_port, heartbeat_timeout_s=1.5,
        reconnect_initial_s=0.05, reconnect_max_s=0.5, symbol_silence_s=0, lookup_timeout_s=5.0,
    )
    values.update(overrides)
    return FeedSettings(**values)


def silence_in_every_session(seconds: float) -> dict[str, float]:
    """Per-symbol silence thresholds for every market session, so a test that needs silence
    detection does not depend on when it runs (the thresholds follow the NYSE calendar)."""
    return {"symbol_silence_s": seconds, "symbol_silence_extended_s": seconds, "symbol_silence_closed_s": seconds}


class Recorder:
    """A thread-safe sink that lets a test wait for the events it expects."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[Event] = []
        self.batches = 0

    def __call__(self, events: list[Event]) -> None:
        with self._cond:
            self.events.extend(events)
            self.batches += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def market_symbols_since(self, recv_ns: int, kinds: tuple[type, ...] = (Trade, Quote)) -> set[str]:
        with self._cond:
            return {e.symbol for e in self.events if isinstance(e, kinds) and e.recv_ns > recv_ns}  # type: ignore[union-attr]

    def wait_market_data(self, symbols: Iterable[str], since_ns: int, timeout_s: float = 10.0,
                         kinds: tuple[type, ...] = (Trade, Quote)) -> set[str]:
        """Wait until every symbol has data received after ``since_ns``; returns the ones missing."""
        wanted = set(symbols)

        def arrived(events: list[Event]) -> bool:
            seen = {e.symbol for e in events if isinstance(e, kinds) and e.recv_ns > since_ns}  # type: ignore[union-attr]
            return wanted <= seen

        self.wait_for(arrived, timeout_s)
        return wanted - self.market_symbols_since(since_ns, kinds)


DEPTH = (Depth,)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


@contextmanager
def running_client(settings: FeedSettings, recorder: Recorder, symbols: Iterable[str] = SYMBOLS) -> Iterator[FeedClient]:
    """A started client watching ``symbols`` and ready, stopped afterwards."""
    client = FeedClient(settings, sink=recorder)
    for symbol in symbols:
        client.watch(symbol)
    client.start()
    try:
        assert client.wait_ready(10), "client did not become ready"
        yield client
    finally:
        client.stop()
