"""The catch-up when a symbol starts being watched, through the whole engine over real TCP against
our simulator (runtime/catchup.py). The headless SIGKILL-and-restart case with Kafka and the
ClickHouse server is tests/integration/test_restart_gap_free.py."""

from __future__ import annotations

import time

import pytest

from storage.outages import recent_outages
from tests.integration._backfill_support import (
    SAMPLE,
    assert_each_trade_stored_once,
    replaying,
    running_engine,
    sample_prints,
    stored_trades,
    wait_for_trades,
)
from tests.integration.pipeline import assert_stored_exactly_once, wait_until

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")]

SYMBOL = "SMPL"


def test_a_symbol_stopped_then_started_again_is_caught_up_from_its_watermark_and_its_gap_recorded(
        chdb_store, tmp_path):
    """The operator stops the symbol for a few seconds, then starts it; the fleet's takeover hook
    (``Engine.catch_up``) names the pending catch-up. Every trade made between the first and the
    last live trade is stored once, and the span without quotes is an outage window in storage."""
    prints = sample_prints("2021-03-02 09:30", "2021-03-02 09:50", speedup=20)  # about 33 trades a second
    with replaying(tmp_path / "replay.csv", prints, SYMBOL, offset_s=0.0) as (sim, _):
        with running_engine(chdb_store, tmp_path, sim, [SYMBOL]) as run:
            engine = run.engine
            wait_for_trades(chdb_store, SYMBOL, 0)
            wait_until(lambda: engine.status().catch_up.symbols_done == 1, 30, "the first start's catch-up")
            engine.stop_symbol(SYMBOL, by="test")
            time.sleep(3)  # about a hundred trades nobody receives
            restarted_ns = time.time_ns()
            engine.start_symbol(SYMBOL, by="test")
            engine.catch_up([SYMBOL])
            wait_until(lambda: engine.status().catch_up.symbols_done == 2, 40, "the catch-up after the start")
            wait_for_trades(chdb_store, SYMBOL, restarted_ns + 3_000_000_000)
            stats = engine.status().catch_up
        assert_each_trade_stored_once(chdb_store, sim, [SYMBOL])
    assert_stored_exactly_once(chdb_store, run.ingested)
    assert stats.symbols_pending == 0 and stats.symbols_failed == 0 and stats.trades_recovered > 50, stats
    backfilled = [row[0] for row in stored_trades(chdb_store, SYMBOL) if row[4] and row[0] > restarted_ns - 10**10]
    gaps = [o for o in recent_outages(chdb_store) if o.symbol == SYMBOL and o.cause == "takeover"]
    assert len(gaps) == 1, recent_outages(chdb_store)
    assert gaps[0].end_ns is not None and gaps[0].start_ns <= min(backfilled) < gaps[0].end_ns, (gaps, min(backfilled))


def test_a_symbol_unwatched_before_its_catch_up_ran_is_cancelled_not_fetched(chdb_store, tmp_path):
    prints = sample_prints("2021-03-02 09:30", "2021-03-02 09:35", speedup=20)
    with replaying(tmp_path / "replay.csv", prints, SYMBOL, offset_s=0.0) as (sim, _):
        with running_engine(chdb_store, tmp_path, sim, [SYMBOL]) as run:
            engine = run.engine
            engine.stop_symbol(SYMBOL, by="test")  # before the catch-up's range could settle
            stats = engine.status().catch_up
            requests = engine.status().feed_counters["lookup_requests"]
            time.sleep(9)  # past the margin and the settling time, and a few backfill job runs
            after = engine.status()
    assert stats.symbols_total == 1 and stats.symbols_cancelled == 1 and stats.symbols_pending == 0, stats
    assert after.catch_up.symbols_done == 0 and after.feed_counters["lookup_requests"] == requests
