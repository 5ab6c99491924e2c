"""Deterministic event streams for backup, restore and reconciliation tests.

One source's events with strictly increasing ``seq``, spread over several symbols and
minutes of ``ts_ns``, mixing every stored kind and a non-stored heartbeat, so that each
test exercises the full mapping of :mod:`storage.rows`.
"""

from __future__ import annotations

import random

from events import Depth, Event, Heartbeat, Quote, System, Trade

T0_NS = 1_795_000_000_000_000_000  # 2026-11-18, a fixed day so partitions are predictable
SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "TSLA")


def make_events(
    count: int,
    *,
    source: str = "test-1",
    start_seq: int = 1,
    t0_ns: int = T0_NS,
    step_ns: int = 50_000_000,
    seed: int = 7,
    heartbeats: bool = True,
) -> list[Event]:
    """``count`` events; event i has ts_ns = t0 + i*step (20 per second by default: 3 minutes per 3,600)."""
    rng = random.Random(seed + start_seq)
    events: list[Event] = []
    for index in range(count):
        seq = start_seq + index
        ts = t0_ns + (seq - 1) * step_ns
        envelope = {"source": source, "seq": seq, "recv_ns": ts + rng.randint(100_000, 3_000_000)}
        symbol = SYMBOLS[seq % len(SYMBOLS)]
        price = round(100 + rng.uniform(-5, 5), 2)
        pick = seq % 20
        if pick == 0 and heartbeats:
            events.append(Heartbeat(ts_ns=ts, **envelope))
        elif pick == 1:
            events.append(System(name="SERVER CONNECTED", connected=True, ts_ns=ts, **envelope))
        elif pick < 8:
            events.append(Trade(symbol=symbol, price=price, size=rng.choice((1, 100, 200, 500)), ts_ns=ts,
                                conditions=("01",), market_center=11, tick_id=seq, total_volume=seq * 10, basis="C",
                                **envelope))
        elif pick < 16:
            events.append(Quote(symbol=symbol, bid=price - 0.01, bid_size=rng.randint(1, 40) * 100,
                                ask=price + 0.01, ask_size=rng.randint(1, 40) * 100, ts_ns=ts, **envelope))
        else:
            events.append(Depth(symbol=symbol, action="update", side="bid", price=price - 0.02,
                                size=rng.randint(1, 9) * 100, mmid="NSDQ", ts_ns=ts, **envelope))
    return events


class FakeClock:
    """Wall-clock epoch ns that only moves when a test says so."""

    def __init__(self, now_ns: int = T0_NS) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> int:
        self.now_ns += int(seconds * 1_000_000_000)
        return self.now_ns
