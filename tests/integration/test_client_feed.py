"""FeedClient against the simulator over real TCP: subscriptions, state, errors, threads."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request

import pytest

from bus.breaker import BreakerSnapshot, BreakerState
from bus.latency import HistogramSnapshot
from bus.producer import ProducerStats
from bus.spool import SpoolStats
from runtime.status import EngineStatus
from events import Depth, FeedError, Quote, Trade
from collectors.iqfeed.client import FeedClient, InvalidSymbol, ProtocolVersionError, SymbolLimitReached
from collectors.iqfeed.connections import Backoff, Counters, Level2Connection, OutageLog
from config import FeedSettings
from runtime.metrics import start_monitoring
from runtime.validation import ValidationSnapshot
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


def test_fundamentals_sent_on_watch_are_counted_logged_once_and_shown_on_metrics(caplog) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.DEBUG, logger="collectors.iqfeed.connections"), running_simulator() as sim, \
            running_client(settings_for(sim), recorder) as client:
        # IQConnect (and the simulator) answers each watch with an F line, then a P summary.
        assert wait_until(lambda: client.counters["fundamentals_skipped"] >= len(SYMBOLS), 5)
        assert not recorder.wait_market_data(SYMBOLS, 0)
        counters = client.counters
        assert counters["protocol_errors"] == 0
        assert counters["regionals_skipped"] == counters["news_skipped"] == counters["trade_corrections_skipped"] == 0
        samples = [r for r in caplog.records if getattr(r, "counter", None) == "fundamentals_skipped"]
        assert len(samples) == 1 and samples[0].levelno == logging.DEBUG
        assert samples[0].line.split(",")[:2] in (["F", symbol] for symbol in SYMBOLS)  # type: ignore[attr-defined]
        metrics = _scrape_metrics(client.counters)
    shown = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
             if line.startswith("tickops_feed_") and line.split()[0].endswith("_skipped_total")}
    assert shown["tickops_feed_fundamentals_skipped_total"] >= len(SYMBOLS)
    assert shown["tickops_feed_regionals_skipped_total"] == shown["tickops_feed_news_skipped_total"] == 0
    assert shown["tickops_feed_trade_corrections_skipped_total"] == 0


def _scrape_metrics(feed_counters: dict[str, int]) -> str:
    """/metrics as served over HTTP for an engine status around these feed counters."""
    server = start_monitoring(lambda: _status_with(feed_counters), "127.0.0.1", 0)
    assert server is not None
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.stop()


def _status_with(feed_counters: dict[str, int]) -> EngineStatus:
    """An idle engine's status around real feed counters: what /metrics renders them from."""
    latency = HistogramSnapshot()
    producer = ProducerStats(0, 0, 0, 0, 0, 0, 0, SpoolStats(0, 0, 0, 0, 0),
                             BreakerSnapshot(BreakerState.CLOSED, 0, 0, 0.0, 30.0), latency)
    return EngineStatus(
        source="test", started_ns=0, feed=None, feed_counters=feed_counters, outages=[], rejected_symbols={},
        producer=producer, writer=None, backup=None,
        validation=ValidationSnapshot(checked=0, counts={}, missing=0, recent=[], gaps=[]),
        jobs=[], host=None, ingested=0,
    )


def test_an_iqfeed_error_line_is_counted_and_level1_keeps_streaming() -> None:
    """Regression: an ``E,`` line used to raise KeyError in its log call and kill the Level 1 reader."""
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        assert client.level1.send(b"S,NO SUCH COMMAND\r\n")  # the simulator answers with an E, line
        assert recorder.wait_for(lambda ev: any(isinstance(e, FeedError) for e in ev), 5)
        after = time.time_ns()
        assert not recorder.wait_market_data(SYMBOLS, after, timeout_s=5)
        assert client.counters["feed_errors"] == 1 and client.state.level1.connected
        assert any(t.name == "feedclient-level1" for t in threading.enumerate())


def test_level2_market_maker_names_and_empty_quotes_are_counted_logged_once_and_shown_on_metrics(caplog) -> None:
    recorder = Recorder()
    # A one-level book makes market makers leave both sides often: IQFeed's F,F quotes.
    with caplog.at_level(logging.DEBUG, logger="collectors.iqfeed.connections"), \
            running_simulator(book_depth=1) as sim, \
            running_client(settings_for(sim), recorder, symbols=("AAPL",)) as client:
        assert wait_until(lambda: client.state.level2.connected, 5)
        # The market-maker view (w<SYM> on the Level 2 port) and two market-maker name queries.
        assert client.level2.send(b"wAAPL\r\nmNSDQ\r\nmGSCO\r\n")
        assert wait_until(lambda: client.counters["market_maker_names_skipped"] == 2
                          and client.counters["market_maker_empty_quotes_skipped"] >= 1, 10)
        after = time.time_ns()
        assert not recorder.wait_market_data(["AAPL"], after, kinds=DEPTH, timeout_s=5)  # depth goes on
        assert any(isinstance(e, Depth) and e.mmid for e in list(recorder.events))
        counters = client.counters
        assert counters["protocol_errors"] == 0 and counters["reader_errors"] == 0
        samples = {r.counter: r for r in caplog.records  # type: ignore[attr-defined]
                   if getattr(r, "connection", None) == "level2" and hasattr(r, "counter")}
        assert set(samples) == {"market_maker_names_skipped", "market_maker_empty_quotes_skipped"}
        assert all(r.levelno == logging.DEBUG for r in samples.values())
        assert samples["market_maker_names_skipped"].line == "M,NSDQ,Nasdaq Execution Services"  # type: ignore[attr-defined]
        empty = samples["market_maker_empty_quotes_skipped"].line.split(",")  # type: ignore[attr-defined]
        assert empty[:2] in (["Z", "AAPL"], ["2", "AAPL"]) and empty[11:13] == ["F", "F"]
        metrics = _scrape_metrics(client.counters)
    shown = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith("tickops_feed_")}
    assert shown["tickops_feed_market_maker_names_skipped_total"] == 2
    assert shown["tickops_feed_market_maker_empty_quotes_skipped_total"] >= 1
    assert shown["tickops_feed_reader_errors_total"] == 0


def _reader_error_records(caplog) -> list[logging.LogRecord]:  # type: ignore[no-untyped-def]
    return [r for r in caplog.records if r.levelno == logging.ERROR and hasattr(r, "stage")]


def test_a_market_data_hook_failing_once_is_counted_and_level1_streams_on_without_reconnecting(caplog) -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        real = client.level1._on_data
        failed: list[object] = []

        def fails_once(event, recv_ns, summary):  # type: ignore[no-untyped-def]
            if not failed:
                failed.append(event)
                raise RuntimeError("injected hook bug")
            return real(event, recv_ns, summary)

        client.level1._on_data = fails_once  # type: ignore[method-assign]
        assert wait_until(lambda: client.counters["reader_errors"] == 1, 5)
        after = time.time_ns()
        assert not recorder.wait_market_data(SYMBOLS, after, timeout_s=5)
        assert client.counters["reader_errors"] == 1
        state = client.state.level1
        assert state.connected and state.reconnects == 0 and client.outages == []
        assert any(t.name == "feedclient-level1" for t in threading.enumerate())
    (record,) = _reader_error_records(caplog)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert (record.connection, record.stage, record.event_type) == ("level1", "event", type(failed[0]).__name__)  # type: ignore[attr-defined]


def test_a_control_hook_failing_once_reconnects_level1_which_redoes_what_was_left_half_done(caplog) -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        real = client.level1._rejected
        calls: list[str] = []

        def fails_once(symbol: str, reason: str) -> None:
            calls.append(symbol)
            if len(calls) == 1:
                raise KeyError("injected hook bug")
            real(symbol, reason)

        client.level1._rejected = fails_once  # type: ignore[method-assign]
        client.watch("NOPE")  # n,NOPE: its handling fails once, then the reconnect's re-watch gets it right
        assert wait_until(lambda: client.rejected_symbols() == {"NOPE": "symbol_not_found"}, 10)
        after = time.time_ns()
        assert not recorder.wait_market_data(SYMBOLS, after, timeout_s=10)
        counters = client.counters
        assert counters["reader_errors"] == 1 and counters["reconnects"] == 1 and calls == ["NOPE", "NOPE"]
        (window,) = client.outages
        assert (window.connection, window.cause) == ("level1", "reader_error") and window.end_ns is not None
        assert client.state.level1.connected and client.state.level2.reconnects == 0
    (record,) = _reader_error_records(caplog)
    assert (record.stage, record.event_type, record.line) == ("event", "SymbolNotFound", "n,NOPE")  # type: ignore[attr-defined]


def test_a_bug_outside_the_per_line_handling_reconnects_level2_instead_of_ending_its_thread(caplog) -> None:
    recorder = Recorder()
    with running_simulator() as sim:
        client = FeedClient(settings_for(sim), sink=recorder)
        real = client.level2._begin_socket
        calls: list[int] = []

        def fails_once() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("injected set-up bug")
            real()

        client.level2._begin_socket = fails_once  # type: ignore[method-assign]
        client.watch_depth("AAPL")
        client.start()
        try:
            assert not recorder.wait_market_data(["AAPL"], 0, kinds=DEPTH, timeout_s=10)
            assert client.counters["reader_errors"] == 1 and len(calls) == 2
            assert client.state.level2.connected
        finally:
            client.stop()
    (record,) = _reader_error_records(caplog)
    assert (record.connection, record.stage) == ("level2", "serve")  # type: ignore[attr-defined]


def test_a_bug_in_the_bookkeeping_between_sockets_does_not_end_the_reader_thread() -> None:
    with socket.socket() as probe:  # a port nobody listens on: every connect fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    counters = Counters()
    conn = Level2Connection(
        FeedSettings(host="127.0.0.1", level2_port=port, reconnect_initial_s=0.02, reconnect_max_s=0.05),
        lambda events: None, counters=counters,
    )
    real = conn._went_down
    causes: list[str] = []

    def fails_once(cause: str) -> None:
        causes.append(cause)
        if len(causes) == 1:
            raise RuntimeError("injected bookkeeping bug")
        real(cause)

    conn._went_down = fails_once  # type: ignore[method-assign]
    conn.start()
    try:
        assert wait_until(lambda: len(causes) >= 3, 5)
        assert counters.snapshot()["reader_errors"] == 1
        assert conn._thread is not None and conn._thread.is_alive()
        assert conn.state.last_error.startswith("connect_failed")
    finally:
        conn.stop()


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
