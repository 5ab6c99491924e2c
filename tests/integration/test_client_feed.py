"""FeedClient against the simulator over real TCP: subscriptions, state, errors, threads."""

from __future__ import annotations

import threading
import time

import pytest

from collectors.events import Depth, FeedError, Quote, Trade
from collectors.iqfeed.client import FeedClient, InvalidSymbol, ProtocolVersionError, SymbolLimitReached
from collectors.iqfeed.connections import Backoff, OutageLog
from tests.integration._feed_support import (
    DEPTH,
    SYMBOLS,
    Recorder,
    running_client,
    running_simulator,
    settings_for,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

MANY = tuple(f"SYM{i}" for i in range(12))


def test_watched_symbols_stream_trades_and_quotes_stamped_on_receipt() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        assert client.watched() == frozenset(SYMBOLS)
        assert recorder.wait_for(lambda ev: any(isinstance(e, Trade) for e in ev), 5)
        now = time.time_ns()
        market = [e for e in list(recorder.events) if isinstance(e, (Trade, Quote))]
        assert all(0 < e.recv_ns <= now for e in market)
        # IQFeed's Eastern times came out as UTC ns close to the wall clock.
        trades = [e for e in market if isinstance(e, Trade)]
        assert all(abs(t.ts_ns - t.recv_ns) < 5 * 10**9 for t in trades[-20:])
        assert all(t.price > 0 and t.size > 0 and t.basis in "CEO" for t in trades)
        counters = client.counters
        assert counters["lines"] > 0 and counters["events"] >= len(market) and counters["protocol_errors"] == 0


def test_unwatch_stops_a_symbol_and_watch_brings_it_back() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        assert client.unwatch("msft")
        time.sleep(0.3)  # lines already in flight
        cut = time.time_ns()
        time.sleep(0.7)
        assert "MSFT" not in recorder.market_symbols_since(cut)
        assert client.watched() == frozenset({"AAPL", "SPY"})
        again = time.time_ns()
        assert client.watch("MSFT")
        assert not recorder.wait_market_data(["MSFT"], again, timeout_s=5)


def test_watch_from_many_threads_at_run_time() -> None:
    recorder = Recorder()
    with running_simulator(symbols=list(MANY)) as sim, running_client(settings_for(sim), recorder, symbols=()) as client:
        since = time.time_ns()
        threads = [threading.Thread(target=client.watch, args=(symbol,)) for symbol in MANY]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.watched() == frozenset(MANY)
        assert not recorder.wait_market_data(MANY, since, timeout_s=10)


def test_invalid_symbol_is_rejected_before_anything_is_sent() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        for bad in ("AAPL\r\nS,SET LOGINID,x", "AA PL", "A,B", "\x07", ""):
            with pytest.raises(InvalidSymbol):
                client.watch(bad)
            with pytest.raises(InvalidSymbol):
                client.watch_depth(bad)
        time.sleep(0.3)
        assert client.watched() == frozenset(SYMBOLS)
        assert sim.stats.watched_symbols == len(SYMBOLS)
        assert not [e for e in recorder.events if isinstance(e, FeedError)]  # no half command reached IQFeed


def test_configured_watch_limit_is_never_exceeded() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim, watch_limit=2), recorder, symbols=("AAPL", "MSFT")) as client:
        with pytest.raises(SymbolLimitReached, match="watch_limit"):
            client.watch("SPY")
        assert client.watched() == frozenset({"AAPL", "MSFT"})
        assert not client.watch("AAPL")  # already watched: no error, nothing sent


def test_symbol_limit_reached_and_symbol_not_found_are_reported_per_symbol() -> None:
    recorder = Recorder()
    with running_simulator(watch_limit=2) as sim, running_client(settings_for(sim), recorder, symbols=()) as client:
        for symbol in ("AAPL", "MSFT", "SPY", "NOPE"):
            client.watch(symbol)
        assert wait_until(lambda: len(client.rejected_symbols()) == 2, 5)
        assert client.rejected_symbols() == {"SPY": "symbol_limit_reached", "NOPE": "symbol_not_found"}
        counters = client.counters
        assert counters["rejected_symbols"] == 2 and counters["symbol_not_found"] == 1
        assert counters["symbol_limit_reached"] == 1
        client.unwatch("NOPE")
        assert "NOPE" not in client.rejected_symbols()


def test_depth_watch_streams_book_changes_for_both_sides() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder, symbols=()) as client:
        client.watch_depth("SPY")
        assert client.watched_depth() == frozenset({"SPY"})
        assert recorder.wait_for(lambda ev: {e.side for e in ev if isinstance(e, Depth)} >= {"bid", "ask"}, 5)
        depth = [e for e in recorder.events if isinstance(e, Depth)]
        assert {e.symbol for e in depth} == {"SPY"} and {e.action for e in depth} >= {"summary"}
        assert client.unwatch_depth("SPY")
        time.sleep(0.3)
        cut = time.time_ns()
        time.sleep(0.5)
        assert not recorder.market_symbols_since(cut, DEPTH)


def test_state_reports_each_connection_and_the_dtn_status() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert wait_until(lambda: client.state.admin.connected and client.state.level2.connected, 5)
        assert wait_until(lambda: client.state.dtn_connected is True, 5)
        state = client.state
        assert state.connected and state.level1.connected
        assert state.level1.last_heartbeat is not None and time.monotonic() - state.level1.last_heartbeat < 3
        assert (state.level1.reconnects, state.level2.reconnects, state.admin.reconnects) == (0, 0, 0)
        assert client.outages == []


def test_old_iqconnect_gives_a_clear_protocol_version_error() -> None:
    with running_simulator(protocol_versions=("6.1",)) as sim:
        client = FeedClient(settings_for(sim), sink=Recorder())
        client.start()
        try:
            with pytest.raises(ProtocolVersionError, match="upgrade IQConnect"):
                client.wait_ready(5)
            assert "6.2" in client.state.level1.last_error
            assert not client.state.level1.connected
        finally:
            client.stop()


def test_a_failing_sink_is_counted_and_the_feed_goes_on() -> None:
    recorder = Recorder()
    calls = {"n": 0}

    def flaky(events) -> None:
        calls["n"] += 1
        if calls["n"] % 2:
            raise RuntimeError("downstream hiccup")
        recorder(events)

    with running_simulator() as sim:
        client = FeedClient(settings_for(sim), sink=flaky)
        for symbol in SYMBOLS:
            client.watch(symbol)
        client.start()
        try:
            assert not recorder.wait_market_data(SYMBOLS, 0)
            assert client.counters["sink_errors"] >= 1
        finally:
            client.stop()


def test_stop_joins_every_reader_thread() -> None:
    with running_simulator() as sim:
        with running_client(settings_for(sim), Recorder()):
            assert any(t.name.startswith("feedclient-") for t in threading.enumerate())
        assert not [t for t in threading.enumerate() if t.name.startswith("feedclient-")]


def test_backoff_grows_exponentially_with_jitter_and_resets() -> None:
    high = Backoff(0.2, 1.0, rng=lambda: 1.0)
    assert [round(high.next_delay(), 3) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    high.reset()
    assert high.next_delay() == 0.2
    low = Backoff(0.2, 1.0, rng=lambda: 0.0)
    assert [round(low.next_delay(), 3) for _ in range(3)] == [0.1, 0.2, 0.4]


def test_outage_log_keeps_one_open_window_per_connection_and_symbol() -> None:
    log = OutageLog()
    assert log.open("level1", "connection_closed", 100)
    assert not log.open("level1", "heartbeat_timeout", 150)
    assert log.open("level1", "symbol_silent", 120, symbol="AAPL")
    closed = log.close("level1", 200)
    assert closed is not None and (closed.start_ns, closed.end_ns, closed.cause) == (100, 200, "connection_closed")
    assert log.close("level1", 300) is None
    assert [w.end_ns for w in log.windows()] == [200, None]
