"""Backfill of feed outages through the whole engine, over real TCP against our simulator.

Each test makes outages with simulator faults and ends with the reconciliation against
the simulator's own record of the trades it made (`_backfill_support`): each trade stored
exactly once, counted with ``count()`` without FINAL, plus the pipeline's (source, seq)
check. Replays of the shared 2021 tick sample give real prints (many share time, price
and size) and a feed clock that runs ahead of or behind ours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest
from prometheus_client import generate_latest

from runtime.engine import BACKFILL_INTERVAL_S, Engine
from events import Trade
from collectors.iqfeed.client import FeedClient
from collectors.iqfeed.connections import MAX_OUTAGE_WINDOWS
from config import load_settings
from runtime.metrics import engine_registry
from tests.integration._backfill_support import (
    SAMPLE,
    US,
    EngineRun,
    Print,
    assert_each_trade_stored_once,
    drop_feed,
    level1_windows,
    replaying,
    running_engine,
    sample_prints,
    shifted,
    stored_trades,
    wait_for_backfills,
    wait_for_trades,
)
from tests.integration._feed_support import running_simulator, silence_in_every_session
from tests.integration.pipeline import assert_stored_exactly_once, wait_until

pytestmark = pytest.mark.timeout(180)
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")

SYMBOL = "SMPL"
SYNTHETIC = ("AAPL", "MSFT", "SPY")


def _sample() -> list[Print]:
    """20 minutes of the sample's busiest morning, 20 times as dense: about 33 trades a second."""
    return sample_prints("2021-03-02 09:30", "2021-03-02 09:50", speedup=20)


def _twins_reported_apart() -> tuple[list[Print], int, int]:
    """Sample prints around a real pair sharing time, price and size (A and B).

    A comes 1.5 s after the print before it (room to drop the feed in between); B keeps
    A's time but is reported 1.7 s after A, a late report, which is how one print of such
    a pair reaches us live while the other falls in an outage. Returns the prints in
    report order and the indexes of A and B among them.
    """
    prints = _sample()
    a = next(i for i in range(len(prints) - 1) if prints[i].at_us >= 12 * US
             and (prints[i].at_us, prints[i].price, prints[i].size)
             == (prints[i + 1].at_us, prints[i + 1].price, prints[i + 1].size))
    begin = prints[a].at_us - 6 * US
    before = shifted([p for p in prints[:a] if p.at_us >= begin], -begin)
    twin_a = replace(prints[a], at_us=prints[a].at_us - begin + 3 * US // 2)
    after = shifted(prints[a + 2:], -begin + 3 * US // 2)
    late_us = twin_a.at_us + 17 * US // 10
    q = max(i for i, p in enumerate(after) if p.at_us <= late_us)
    after = after[:q] + shifted(after[q:], late_us - after[q].at_us)  # after[q] is reported at late_us
    twin_b = replace(prints[a + 1], at_us=twin_a.at_us)
    ordered = [*before, twin_a, *after[: q + 1], twin_b, *after[q + 1:]]
    return ordered, len(before), len(before) + 2 + q


def _ingested_volume(run: EngineRun, volume: int) -> bool:
    return any(type(e) is Trade and e.total_volume == volume for e in list(run.ingested))


@needs_sample
def test_prints_sharing_time_price_and_size_are_told_apart_by_total_volume_and_each_recovered(chdb_store, tmp_path):
    prints, a, b = _twins_reported_apart()
    with replaying(tmp_path / "replay.csv", prints, SYMBOL, offset_s=0.0) as (sim, volumes):
        with running_engine(chdb_store, tmp_path, sim, [SYMBOL], reconnect_max_s=0.2) as run:
            wait_until(lambda: _ingested_volume(run, volumes[a - 1]), 30, "the print before twin A, live")
            drop_feed(sim, 2.0)  # A falls in the outage; B, reported later, arrives live
            wait_for_backfills(run.engine)
        assert_each_trade_stored_once(chdb_store, sim, [SYMBOL])
    assert_stored_exactly_once(chdb_store, run.ingested)
    stored = {row[1]: row for row in stored_trades(chdb_store, SYMBOL)}
    assert stored[volumes[b]][4] == 0 and stored[volumes[a]][4] == 1, "the test needs B live and A backfilled"
    assert stored[volumes[a]][:1] + stored[volumes[a]][2:4] == stored[volumes[b]][:1] + stored[volumes[b]][2:4]


@needs_sample
@pytest.mark.parametrize("offset_s", [-1.5, 1.5], ids=["feed_clock_behind_ours", "feed_clock_ahead_of_ours"])
def test_trades_in_flight_at_the_window_edges_are_neither_lost_nor_doubled(chdb_store, tmp_path, offset_s):
    """Feed clock behind ours: trades printed before the window's start (our receive time)
    were still on their way. Ahead: trades printed before our re-watch took effect carry
    times after the window's end."""
    with replaying(tmp_path / "replay.csv", _sample(), SYMBOL, offset_s) as (sim, _):
        with running_engine(chdb_store, tmp_path, sim, [SYMBOL]) as run:
            wait_for_trades(chdb_store, SYMBOL, 0)
            time.sleep(2)
            drop_feed(sim, 2.0)
            wait_for_backfills(run.engine)
        assert_each_trade_stored_once(chdb_store, sim, [SYMBOL])
    assert_stored_exactly_once(chdb_store, run.ingested)
    (window,) = level1_windows(run.engine)
    backfilled = [row[0] for row in stored_trades(chdb_store, SYMBOL) if row[4]]
    outside = [ts for ts in backfilled if (ts < window.start_ns if offset_s < 0 else ts > window.end_ns)]
    assert outside, "no trade beyond the window's edge was backfilled: the test did not reach the edge"


@needs_sample
@pytest.mark.parametrize("bus", [{}, {"memory_capacity": 40}], ids=["writer_held", "bus_full_and_spooling"])
def test_a_backfill_while_storage_lags_behind_the_feed_does_not_double_live_trades(chdb_store, tmp_path, bus):
    """The feed clock runs ahead of ours, so live trades sit inside the fetched range while
    storage has not got them: the writer is held, or the bus is full and the producer spools."""
    with replaying(tmp_path / "replay.csv", _sample(), SYMBOL, offset_s=1.5) as (sim, _):
        with running_engine(chdb_store, tmp_path, sim, [SYMBOL], bus=bus) as run:
            wait_for_trades(chdb_store, SYMBOL, 0)
            run.writer.hold()
            time.sleep(1.5)  # live trades the store does not have
            drop_feed(sim, 2.0)
            wait_for_backfills(run.engine)
            run.writer.release()
            wait_until(lambda: run.engine.producer.stats().spool.unacked == 0, 30, "the spool to drain")
            time.sleep(2 * BACKFILL_INTERVAL_S + 1)  # a backfill that waited for the spool runs now
        assert_each_trade_stored_once(chdb_store, sim, [SYMBOL])
    assert_stored_exactly_once(chdb_store, run.ingested)
    stats = run.engine.status().backfill
    assert stats.windows_backfilled == 1 and stats.trades_already_there > 0
    assert (stats.deferred > 0) == bool(bus), "a backfill waits while the bus spools, and only then"
    metrics = generate_latest(engine_registry(run.engine.status)).decode()
    assert "tickops_backfill_windows_total 1.0" in metrics and "tickops_backfill_recent_trades " in metrics


@pytest.mark.parametrize("hold_writer", [False, True], ids=["storage_current", "writer_held"])
def test_a_symbol_silent_across_a_reconnect_has_its_window_closed_and_its_trades_backfilled_once(
        chdb_store, tmp_path, hold_writer):
    """MSFT's own window (silence) overlaps the whole connection's (drop, reconnect): both
    are backfilled and each missed trade is stored once, also with the writer held, when
    only the engine's record of what it ingested can tell the two backfills apart."""
    with running_simulator(symbols=list(SYNTHETIC), rate=600) as sim:
        with running_engine(chdb_store, tmp_path, sim, SYNTHETIC, **silence_in_every_session(1.0)) as run:
            for symbol in SYNTHETIC:
                wait_for_trades(chdb_store, symbol, 0)
            if hold_writer:
                run.writer.hold()
            sim.faults.silence_symbol("MSFT")
            wait_until(lambda: any(w.symbol == "MSFT" for w in level1_windows(run.engine)), 10, "MSFT's window")
            drop_feed(sim, 1.0)
            wait_until(lambda: any(not w.symbol and w.end_ns for w in level1_windows(run.engine)), 15,
                       "the reconnect")
            sim.faults.clear()  # MSFT trades again right after the reconnect, before a silence check
            wait_for_backfills(run.engine)
            run.writer.release()
        assert_each_trade_stored_once(chdb_store, sim, SYNTHETIC)
    assert_stored_exactly_once(chdb_store, run.ingested)
    (msft,) = [w for w in level1_windows(run.engine) if w.symbol == "MSFT"]
    (whole,) = [w for w in level1_windows(run.engine) if not w.symbol]
    assert msft.start_ns < whole.start_ns < whole.end_ns <= msft.end_ns, "the windows should overlap"
    assert run.engine.status().backfill.windows_backfilled == 2


def test_outage_bookkeeping_stays_bounded_by_the_outage_log_over_many_windows(chdb_store, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="collectors.iqfeed.connections")  # two log lines per window
    settings = load_settings(data_dir=tmp_path, storage={"database": chdb_store.database})
    engine = Engine(settings, store=chdb_store)
    engine.storage.step()  # migrations, as start() runs them: outages are stored once storage is ready
    engine.feed = FeedClient(settings.feed, sink=engine.ingest)  # never started: windows go into its log here
    outages = engine.feed.level1.outages
    total = MAX_OUTAGE_WINDOWS * 5 // 2
    first_ns = 1_600_000_000 * 10**9  # long past: each window is due for backfill at once
    try:
        for index in range(total):
            start_ns = first_ns + index * 10**9
            outages.open("level1", "connection_closed", start_ns)
            outages.close("level1", start_ns + 10**8)
            if (index + 1) % 1_000 == 0:  # what the outage and backfill jobs do every 2 s
                engine._persist_outages()
                engine._backfill_outages()
        assert len(engine._persisted_outages) <= MAX_OUTAGE_WINDOWS
        assert engine.backfill.tracked_windows <= MAX_OUTAGE_WINDOWS
        (stored,), = chdb_store.query(f"SELECT count() FROM {chdb_store.table('feed_outages')}")
        assert stored == total, "each window is persisted once, also after the engine forgot it"
        assert engine.status().backfill.windows_backfilled == total
    finally:
        engine.producer.close()
        if engine.backup is not None:
            engine.backup.close()
