"""The simulator's trade log over real sockets: every trade, as Level 1 and the lookup port show it.

A pipeline test compares what it stored with this record, so it must hold the very
trades the wire carried (price, size, time, total volume), replayed ones too, and agree
with the tick history the lookup port serves for backfills.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from collectors.iqfeed.simulator import IQFeedSimulator, SimulatorStartError
from collectors.iqfeed.simulator.trade_log import LoggedTrade, read_trade_log
from collectors.iqfeed.simulator.wire import EASTERN, EasternClock
from tests.integration.simulator_client import config, connect, fields, running, wait_for
from tests.integration.test_simulator_cli import _launch

pytestmark = pytest.mark.timeout(90)
SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

Wire = tuple[str, str, str, str]  # time of day, price, size, total volume: a Q trade's own text


def _utc_ns(eastern: str) -> int:
    """UTC epoch ns of an Eastern ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (the first of a repeated hour)."""
    return (datetime.fromisoformat(eastern).replace(tzinfo=EASTERN) - EPOCH) // timedelta(microseconds=1) * 1000


def _as_wire(row: LoggedTrade) -> Wire:
    eastern = (EPOCH + timedelta(microseconds=row.ts_ns // 1000)).astimezone(EASTERN)
    return eastern.strftime("%H:%M:%S.%f"), f"{row.price:.4f}", str(row.size), str(row.total_volume)


def _wire_trades(lines: list[str], symbol: str) -> list[Wire]:
    return [
        (f[4], f[2], f[3], f[6]) for f in (fields(x) for x in lines)
        if f[0] == "Q" and f[1] == symbol and f[15][:1] in ("C", "E", "O")
    ]


def _logged_from_first_wire_trade(path: Path, symbol: str, wire: list[Wire]) -> list[Wire]:
    """The log's trades of ``symbol`` from the first one the client received on."""
    logged = [_as_wire(r) for r in read_trade_log(path) if r.symbol == symbol]
    assert wire and wire[0] in logged, "the first streamed trade is not in the trade log"
    return logged[logged.index(wire[0]):]


def test_trade_log_holds_every_trade_the_market_made_exactly_as_level1_sent_it(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    with running(rate=2000, symbols=("AAPL", "MSFT"), trade_log=path) as sim, connect(sim.level1_port) as l1:
        l1.send("wAAPL")
        l1.expect("P,AAPL")
        lines = l1.lines_for(1.5)
        sim.stop()  # the market stops; what it made since the last periodic write is written now
        made = [(symbol, tick) for symbol, st in sim.hub.states.items() for tick in st.history]
    wire = _wire_trades(lines, "AAPL")
    assert len(wire) >= 20, "too few trades on the wire to compare"
    assert _logged_from_first_wire_trade(path, "AAPL", wire)[:len(wire)] == wire
    logged = read_trade_log(path)
    # every trade, watched or not: the same ones the tick history holds (it kept them all here)
    assert sorted((r.symbol, r.total_volume, r.tick_id) for r in logged) == sorted(
        (symbol, t.total_volume, t.tick_id) for symbol, t in made)
    assert {r.symbol for r in logged} == {"AAPL", "MSFT"}
    assert sim.stats.trades_logged == len(logged) and sim.stats.trade_log_failures == 0


def test_tick_history_and_trade_log_agree_for_a_symbol(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    with running(rate=3000, symbols=("AAPL", "MSFT"), trade_log=path) as sim, connect(sim.lookup_port) as lookup:
        time.sleep(2.5)  # the market trades, watched or not
        end_s = EasternClock().now() // 1_000_000 - 1
        begin, end = (datetime(1970, 1, 1) + timedelta(seconds=s) for s in (end_s - 1, end_s))
        lookup.send(f"HTT,AAPL,{begin:%Y%m%d %H%M%S},{end:%Y%m%d %H%M%S},,,,1,req")
        rows = [fields(x) for x in lookup.read_until(lambda x: x == "req,!ENDMSG!,", timeout=20)[:-1]]
    history = [
        LoggedTrade("AAPL", _utc_ns(f[2]), float(f[3]), int(f[4]), int(f[5]), int(f[8]), int(f[10]), f[11], f[9])
        for f in rows
    ]
    lo, hi = _utc_ns(f"{begin:%Y-%m-%d %H:%M:%S}"), _utc_ns(f"{end:%Y-%m-%d %H:%M:%S}") + 1_000_000_000
    logged = [r for r in read_trade_log(path) if r.symbol == "AAPL" and lo <= r.ts_ns < hi]
    assert len(history) > 50
    assert history == logged


def test_once_its_bound_is_reached_the_tick_history_is_the_trade_logs_newest_trades(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    with running(rate=3000, symbols=("AAPL", "MSFT"), history_ticks=200, trade_log=path) as sim, \
            connect(sim.lookup_port) as lookup:
        wait_for(lambda: sim.hub.states["AAPL"].trades > 300)  # far more than the 100 kept per symbol
        lookup.send("HTX,AAPL,0,1,req")
        history = [(int(f[5]), int(f[8])) for f in
                   (fields(x) for x in lookup.read_until(lambda x: x == "req,!ENDMSG!,", timeout=20)[:-1])]
    logged = [(r.total_volume, r.tick_id) for r in read_trade_log(path) if r.symbol == "AAPL"]
    assert len(history) == 100 and history[0] in logged
    start = logged.index(history[0])
    assert start >= 200 and logged[start:start + 100] == history  # a backfill cannot reach the older ones


@needs_sample
def test_trade_log_records_every_replayed_tick_as_streamed(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    rows = [line.split(",") for line in SAMPLE.read_text(encoding="latin-1").splitlines() if line[:2] == "20"]
    with running(replay=SAMPLE, speed=None, symbols=("XYZ",), trade_log=path) as sim, \
            connect(sim.level1_port) as l1:
        l1.send("wXYZ")
        l1.expect("P,XYZ")
        wait_for(lambda: sim.stats.replay_finished, timeout=30)
        wire = _wire_trades(l1.drain(0.5, limit=30), "XYZ")
    logged = read_trade_log(path)
    assert len(logged) == len(rows) == len(wire) == 32_627
    assert [_as_wire(r) for r in logged] == wire
    assert [(r.symbol, r.ts_ns, f"{r.price:.4f}", r.size, r.total_volume, r.tick_id, r.basis, r.market_center,
             r.conditions) for r in logged] == [
        ("XYZ", _utc_ns(w[0]), w[1], int(w[2]), int(w[3]), int(w[6]), w[7], int(w[8]), w[9]) for w in rows]


def test_simulator_process_flushes_its_trade_log_while_running_and_at_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    proc, ports = _launch("--symbols", "AAPL", "--rate", "2000", "--trade-log", str(path))
    try:
        with connect(ports["level1"]) as l1:
            l1.send("wAAPL")
            l1.expect("P,AAPL")
            lines = l1.read_until(lambda x: bool(_wire_trades([x], "AAPL")), timeout=10)
            first = _wire_trades(lines[-1:], "AAPL")[0]
            # flushed at least once a second: readable while the process runs
            wait_for(lambda: first in [_as_wire(r) for r in read_trade_log(path) if r.symbol == "AAPL"], timeout=5)
            lines += l1.lines_for(1.0)
            proc.send_signal(signal.SIGTERM)
            lines += l1.lines_for(2.0)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
    wire = _wire_trades(lines, "AAPL")
    assert len(wire) > 10
    # after SIGTERM the simulator may still make a trade or two that never reached the client
    assert _logged_from_first_wire_trade(path, "AAPL", wire)[:len(wire)] == wire


def test_a_file_that_is_not_a_trade_log_stops_the_simulator_from_starting(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    with pytest.raises(SimulatorStartError, match="not a simulator trade log"):
        IQFeedSimulator(config(trade_log=path)).start()
    assert path.read_text() == "my notes\n"
