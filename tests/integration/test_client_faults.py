"""Every fault the simulator can inject, over real TCP: the client heals by itself.

Each test watches three symbols, injects one fault, and then asserts that data for
every watched symbol arrives again within 10 s and that the outage was recorded as a
window (start, end, cause) for gap detection and backfill.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from collectors.iqfeed.client import FeedClient
from collectors.iqfeed.simulator import IQFeedSimulator
from tests.integration._feed_support import (
    DEPTH,
    SYMBOLS,
    Recorder,
    running_client,
    running_simulator,
    settings_for,
    silence_in_every_session,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sim() -> Iterator[IQFeedSimulator]:
    with running_simulator() as simulator:
        yield simulator


def assert_recovers(client: FeedClient, recorder: Recorder, since_ns: int) -> None:
    missing = recorder.wait_market_data(SYMBOLS, since_ns, timeout_s=10)
    assert not missing, f"no data again for {missing}; state={client.state}"


def closed_window(client: FeedClient, connection: str, symbol: str = ""):
    for window in client.outages:
        if window.connection == connection and window.symbol == symbol and window.end_ns is not None:
            return window
    return None


def test_dropped_connections_reconnect_resubscribe_and_record_the_outage(sim: IQFeedSimulator) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim), recorder) as client:
        client.watch_depth("AAPL")
        assert not recorder.wait_market_data(SYMBOLS, 0)
        assert not recorder.wait_market_data(["AAPL"], 0, kinds=DEPTH)
        before = time.time_ns()
        sim.faults.drop_connections()
        assert wait_until(lambda: closed_window(client, "level1") is not None, 10)
        assert_recovers(client, recorder, before)
        assert not recorder.wait_market_data(["AAPL"], before, kinds=DEPTH), "depth did not come back"
        window = closed_window(client, "level1")
        assert window.cause in ("connection_closed", "socket_error")
        assert window.start_ns <= before + 10**9 <= window.end_ns + 10**9
        assert client.state.level1.reconnects >= 1 and client.counters["reconnects"] >= 1
        assert closed_window(client, "level2") is not None


def test_stalled_feed_is_declared_dead_by_the_heartbeat_watchdog(sim: IQFeedSimulator) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim, heartbeat_timeout_s=1.0), recorder) as client:
        client.watch_depth("SPY")
        assert not recorder.wait_market_data(SYMBOLS, 0)
        before = time.time_ns()
        sim.faults.stall(2.5)
        assert wait_until(lambda: closed_window(client, "level1") is not None, 10)
        assert_recovers(client, recorder, before)
        assert not recorder.wait_market_data(["SPY"], before, kinds=DEPTH), "depth did not come back"
        window = closed_window(client, "level1")
        assert window.cause == "heartbeat_timeout"
        # Level 2 went with it: by its own heartbeat watchdog or tied to Level 1's.
        assert closed_window(client, "level2").cause in ("heartbeat_timeout", "level1_heartbeat_timeout")
        # The window starts at the last data before the stall, not when the watchdog fired.
        assert window.start_ns <= before + 200_000_000
        assert client.counters["heartbeat_timeouts"] >= 1


def test_server_disconnected_is_a_state_with_an_outage_until_server_connected(sim: IQFeedSimulator) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        assert wait_until(lambda: client.state.dtn_connected is True, 5)
        sim.faults.server_disconnect()
        assert wait_until(lambda: client.state.dtn_connected is False, 5)
        assert any(w.cause == "server_disconnected" and w.end_ns is None for w in client.outages)
        assert not client.state.connected and client.state.level1.connected  # socket up, no DTN
        assert wait_until(lambda: client.state.admin.dtn_connected is False, 5)  # S,STATS Not Connected
        before = time.time_ns()
        sim.faults.server_reconnect()
        assert wait_until(lambda: client.state.dtn_connected is True, 5)
        assert_recovers(client, recorder, before)
        window = closed_window(client, "level1")
        assert window is not None and window.cause == "server_disconnected"
        assert window.end_ns >= before
        # The admin port saw the same outage through S,STATS Status=Not Connected.
        assert wait_until(lambda: closed_window(client, "admin") is not None, 5)
        assert closed_window(client, "admin").cause == "dtn_not_connected"


def test_malformed_lines_are_counted_and_logged_without_breaking_the_feed(
    sim: IQFeedSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        before = time.time_ns()
        sim.faults.malformed(50)
        assert wait_until(lambda: client.counters["protocol_errors"] >= 5, 10)
        assert_recovers(client, recorder, before)
        sim.faults.clear()
        logged = [r for r in caplog.records if r.getMessage() == "protocol error"]
        assert logged and all(getattr(r, "line", None) is not None for r in logged)
        assert client.state.level1.reconnects == 0
        assert not [w for w in client.outages if w.connection == "level1" and not w.symbol]


def test_refused_connections_are_retried_with_backoff_until_the_ports_reopen(sim: IQFeedSimulator) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        before = time.time_ns()
        sim.faults.refuse_connections(2.0)
        sim.faults.drop_connections()
        assert wait_until(lambda: closed_window(client, "level1") is not None, 10)
        assert_recovers(client, recorder, before)
        window = closed_window(client, "level1")
        assert (window.end_ns - window.start_ns) >= 1_500_000_000  # nothing got through while refused


def test_silent_symbol_gets_a_window_of_its_own_and_is_rewatched(sim: IQFeedSimulator) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim, **silence_in_every_session(0.8)), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        sim.faults.silence_symbol("MSFT", 2.5)
        assert wait_until(lambda: any(w.symbol == "MSFT" for w in client.outages), 5)
        before = time.time_ns()
        assert_recovers(client, recorder, before)
        assert wait_until(lambda: closed_window(client, "level1", "MSFT") is not None, 10)
        window = closed_window(client, "level1", "MSFT")
        assert window.cause == "symbol_silent"
        assert window.end_ns - window.start_ns >= 2_000_000_000
        assert client.counters["silent_symbols"] >= 1
        assert client.state.level1.reconnects == 0  # one symbol's silence does not recycle the feed



def test_a_silent_symbols_window_closes_on_its_next_data_even_after_a_reconnect(sim: IQFeedSimulator) -> None:
    recorder = Recorder()
    with running_client(settings_for(sim, **silence_in_every_session(1.0)), recorder) as client:
        assert not recorder.wait_market_data(SYMBOLS, 0)
        sim.faults.silence_symbol("MSFT")
        assert wait_until(lambda: any(w.symbol == "MSFT" for w in client.outages), 5), "no window for the silence"
        sim.faults.drop_connections()  # the reconnect re-watches every symbol
        assert wait_until(lambda: closed_window(client, "level1") is not None, 10)
        resumed = time.time_ns()
        sim.faults.clear()  # MSFT trades again right after the reconnect, before any silence check
        assert not recorder.wait_market_data(["MSFT"], resumed, timeout_s=10), "MSFT data did not come back"
        assert wait_until(lambda: closed_window(client, "level1", "MSFT") is not None, 5), (
            f"MSFT's window is still open after its data resumed: {client.outages}")
        assert closed_window(client, "level1", "MSFT").end_ns >= resumed
        # Later silences are recorded again: a second window of its own, which closes too.
        sim.faults.silence_symbol("MSFT", 2.5)
        assert wait_until(lambda: len([w for w in client.outages if w.symbol == "MSFT"]) == 2, 5)
        assert wait_until(lambda: all(w.end_ns for w in client.outages if w.symbol == "MSFT"), 10)
        assert client.counters["silent_symbols"] == 2
