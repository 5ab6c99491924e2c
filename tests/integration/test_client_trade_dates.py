"""A 2021 replay read through reconnects on a 2026 machine: every trade keeps its own date.

Real sockets: the simulator replays the shared tick history, our Level 1 connection
reads it, and the simulator drops the connection mid-replay, right after a heartbeat,
so that the new socket streams trades for most of a second before its first heartbeat.
Those trades were once stamped with the local clock's date.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collectors.iqfeed.connections import Level1Connection
from events import Event, Heartbeat, Quote, System, Trade
from tests.integration._feed_support import Recorder, running_simulator, settings_for, wait_until

pytestmark = pytest.mark.timeout(90)

SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
NY = ZoneInfo("America/New_York")
RECONNECTS = 2


def replayed_ticks() -> dict[tuple[str, float, int, int], int]:
    """(Eastern time of day, price, size, total volume) -> the tick's UTC ns, for every row of the sample."""
    rows = [line.split(",") for line in SAMPLE.read_text(encoding="latin-1").splitlines() if line[:2] == "20"]
    ticks = {}
    for row in rows:
        wall = datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=NY)
        ticks[(row[0][11:], float(row[1]), int(row[2]), int(row[3]))] = int(wall.timestamp()) * 10**9 + wall.microsecond * 1000
    assert len(ticks) == len(rows) == 32_627, "the key must name one tick"
    return ticks


def time_of_day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 10**9, timezone.utc).astimezone(NY).strftime("%H:%M:%S.") + \
        f"{ts_ns % 10**9 // 1000:06d}"


def sockets(events: list[Event]) -> list[list[Event]]:
    """The events of each socket, split where a handshake answer starts a new one."""
    parts: list[list[Event]] = []
    for event in events:
        if isinstance(event, System) and event.name == "CURRENT PROTOCOL":
            parts.append([])
        if parts:
            parts[-1].append(event)
    return parts


def count(events: list[Event], kind: type) -> int:
    return sum(isinstance(e, kind) for e in events)


def trades_before_first_heartbeat(events: list[Event]) -> int:
    count = 0
    for event in events:
        if isinstance(event, Heartbeat):
            return count
        count += isinstance(event, Trade)
    return count


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")
def test_trades_replayed_through_reconnects_are_dated_by_the_feed_never_by_the_local_clock() -> None:
    ticks = replayed_ticks()
    recorder = Recorder()
    with running_simulator(replay=SAMPLE, speed=1000.0, symbols=["XYZ"]) as sim:
        conn = Level1Connection(settings_for(sim), recorder)
        conn.watch("XYZ")
        conn.start()
        try:
            assert conn.wait_ready(10)
            for _ in range(RECONNECTS):
                wanted = count(recorder.events, Trade) + 20
                assert recorder.wait_for(lambda events: count(events, Trade) >= wanted, 30), "the replay stalled"
                beats = count(recorder.events, Heartbeat)
                assert recorder.wait_for(lambda events: count(events, Heartbeat) > beats, 5)
                ready = conn.state.reconnects
                sim.faults.drop_connections()  # just after a heartbeat: the next one is most of a second away
                assert wait_until(lambda: conn.state.reconnects > ready, 10)
            wanted = count(recorder.events, Trade) + 20
            assert recorder.wait_for(lambda events: count(events, Trade) >= wanted, 30)
        finally:
            conn.stop()
        assert not sim.stats.replay_finished  # the reconnects happened mid-replay

    per_socket = sockets(recorder.events)
    assert len(per_socket) == RECONNECTS + 1
    early = [trades_before_first_heartbeat(events) for events in per_socket[1:]]
    assert sum(early) > 0, f"no trade came before a reconnected socket's first heartbeat {early}: nothing was tested"
    trades = [e for e in recorder.events if isinstance(e, Trade)]
    wrong = []
    for trade in trades:
        expected = ticks.get((time_of_day(trade.ts_ns), trade.price, trade.size, trade.total_volume))
        if expected is None or trade.ts_ns != expected:
            wrong.append((datetime.fromtimestamp(trade.ts_ns / 1e9, NY).isoformat(), trade.price, trade.size))
    assert wrong == [], f"{len(wrong)} of {len(trades)} trades not at their replayed tick's time: {wrong[:5]}"
    first_beat = next(i for i, e in enumerate(recorder.events) if isinstance(e, Heartbeat))
    quote_days = {datetime.fromtimestamp(e.ts_ns / 1e9, NY).date().isoformat()
                  for e in recorder.events[first_beat:] if isinstance(e, Quote)}
    assert quote_days and quote_days <= {"2021-03-01", "2021-03-02", "2021-03-03"}, quote_days
    assert conn.counters.snapshot().get("protocol_errors", 0) == 0
