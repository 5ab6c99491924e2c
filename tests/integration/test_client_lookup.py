"""Lookup and backfill against the simulator: ids, errors, timeouts, rate limit."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc

import pytest

from collectors.iqfeed.client import LookupFailed, LookupTimeout, NoData
from collectors.iqfeed.lookup import LookupClient, TokenBucket
from config import FeedSettings
from events import Trade
from tests.integration._feed_support import Recorder, running_client, running_simulator, settings_for, wait_until

pytestmark = pytest.mark.timeout(60)

DAY_NS = 86_400 * 10**9


def streamed_trades(recorder: Recorder, symbol: str) -> list[Trade]:
    return [e for e in list(recorder.events) if isinstance(e, Trade) and e.symbol == symbol]


def test_backfill_returns_exactly_the_trades_of_a_window_marked_backfilled() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert recorder.wait_for(lambda ev: len([e for e in ev if isinstance(e, Trade) and e.symbol == "AAPL"]) >= 30, 10)
        trades = streamed_trades(recorder, "AAPL")
        start, end = trades[5].ts_ns, trades[-5].ts_ns
        backfilled = client.backfill("AAPL", start, end)
        assert backfilled and all(t.backfilled and start <= t.ts_ns <= end for t in backfilled)
        window = {(t.ts_ns, t.price, t.size) for t in trades if start <= t.ts_ns <= end}
        assert {(t.ts_ns, t.price, t.size) for t in backfilled} == window
        assert client.counters["lookup_requests"] == 1


def test_backfill_of_a_dtn_outage_recovers_the_trades_the_stream_missed() -> None:
    recorder = Recorder()
    with running_simulator() as sim, running_client(settings_for(sim), recorder) as client:
        assert recorder.wait_for(lambda ev: any(isinstance(e, Trade) for e in ev), 5)
        sim.faults.server_disconnect()
        before = {(t.ts_ns, t.price) for t in streamed_trades(recorder, "AAPL")}
        time.sleep(1.5)
        sim.faults.server_reconnect()
        assert wait_until(lambda: any(w.end_ns for w in client.outages), 5)
        window = next(w for w in client.outages if w.end_ns)
        streamed = {(t.ts_ns, t.price) for t in streamed_trades(recorder, "AAPL")}
        missed = client.backfill("AAPL", window.start_ns, window.end_ns)
        assert all(window.start_ns <= t.ts_ns <= window.end_ns and t.backfilled for t in missed)
        recovered = {(t.ts_ns, t.price) for t in missed} - streamed
        assert recovered, "the market moved on during the outage: backfill must return what the stream missed"
        # A loaded machine may stream a few post-reconnect trades before the window's end is
        # stamped; those may come back from the backfill too (the engine skips what it has
        # stored), but nothing streamed before the outage ever does.
        assert not {(t.ts_ns, t.price) for t in missed} & before


def test_lookup_errors_map_to_types_and_the_connection_stays_usable() -> None:
    with running_simulator() as sim:
        lookup = LookupClient(settings_for(sim))
        try:
            now = time.time_ns()
            with pytest.raises(NoData):
                lookup.history_ticks("AAPL", now - 30 * DAY_NS, now - 29 * DAY_NS)
            assert lookup.backfill("AAPL", now - 30 * DAY_NS, now - 29 * DAY_NS) == []
            with pytest.raises(LookupFailed, match="does not know symbol"):
                lookup.history_ticks("ZZZZ", now - DAY_NS, now)
            time.sleep(0.5)
            lookup.history_ticks("AAPL", now - DAY_NS, time.time_ns())  # the same socket still answers
            assert (lookup.requests, lookup.failures) == (4, 1)  # no data is an answer, not a failure
        finally:
            lookup.close()


def test_a_stalled_lookup_times_out_and_the_next_request_starts_clean() -> None:
    with running_simulator() as sim:
        lookup = LookupClient(settings_for(sim, lookup_timeout_s=0.5))
        try:
            time.sleep(0.5)
            lookup.history_ticks("AAPL", time.time_ns() - DAY_NS, time.time_ns())
            sim.faults.stall(1.5)
            started = time.monotonic()
            with pytest.raises(LookupTimeout, match="lookup_timeout_s"):
                lookup.history_ticks("AAPL", time.time_ns() - DAY_NS, time.time_ns())
            assert time.monotonic() - started < 1.4
            time.sleep(1.2)
            assert lookup.history_ticks("AAPL", time.time_ns() - DAY_NS, time.time_ns())
        finally:
            lookup.close()


def test_token_bucket_spaces_requests_at_the_configured_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    assert TokenBucket(50).capacity == 25  # half a second of burst by default
    bucket = TokenBucket(5, capacity=5, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(0.2) and waits[6] == pytest.approx(0.2)
    now[0] += 10  # a long pause refills to the burst size, not beyond
    assert [bucket.acquire() for _ in range(5)] == [0.0] * 5
    assert bucket.acquire() == pytest.approx(0.2)


def test_backfill_burst_stays_under_iqfeeds_rate_limit() -> None:
    with running_simulator(lookup_rate_limit=50) as sim:
        lookup = LookupClient(settings_for(sim, lookup_rate_per_s=50))
        try:
            time.sleep(0.3)
            start = time.monotonic()
            errors: list[Exception] = []

            def burst() -> None:
                for _ in range(20):
                    try:
                        lookup.history_ticks("MSFT", time.time_ns() - DAY_NS, time.time_ns())
                    except Exception as exc:  # noqa: BLE001 - collected for the assertion
                        errors.append(exc)

            threads = [threading.Thread(target=burst) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors
            assert time.monotonic() - start >= 1.0  # 80 requests at 50/s after a burst of 25
            assert sim.stats.lookup_rate_limited == 0
        finally:
            lookup.close()


def test_a_throttled_request_is_retried_after_a_pause() -> None:
    with running_simulator(lookup_rate_limit=1) as sim:
        lookup = LookupClient(settings_for(sim, lookup_rate_per_s=1000))
        try:
            time.sleep(1.1)
            for _ in range(3):
                assert lookup.history_ticks("SPY", time.time_ns() - DAY_NS, time.time_ns())
            assert sim.stats.lookup_rate_limited >= 1
        finally:
            lookup.close()


class EndlessLineServer:
    """Stands in for a broken IQConnect lookup port: it answers the protocol handshake, then replies
    to the first request with one line that never ends, until the client hangs up or ``total`` is sent."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.client_hung_up = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            self._read_line(conn)  # S,SET PROTOCOL,6.2
            conn.sendall(b"S,CURRENT PROTOCOL,6.2\r\n")
            self._read_line(conn)  # the history request
            chunk = b"A" * 65536
            try:
                while self.sent < self.total:
                    conn.sendall(chunk)
                    self.sent += len(chunk)
                conn.settimeout(30)
                conn.recv(1)  # hold the connection open until the client gives up
            except OSError:
                self.client_hung_up = True

    @staticmethod
    def _read_line(conn: socket.socket) -> None:
        data = b""
        while not data.endswith(b"\n"):
            data += conn.recv(1)

    def close(self) -> None:
        self._listener.close()
        self._thread.join(10)


def test_a_lookup_line_that_never_ends_is_a_protocol_error_that_resets_the_connection_and_bounds_memory() -> None:
    server = EndlessLineServer(total=16 << 20)
    lookup = LookupClient(FeedSettings(host="127.0.0.1", lookup_port=server.port, lookup_timeout_s=1.0))
    tracemalloc.start()
    try:
        with pytest.raises(LookupFailed) as raised:
            lookup.history_ticks("AAPL", time.time_ns() - DAY_NS, time.time_ns())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        lookup.close()
        server.close()
    assert peak < 6 << 20, f"the client buffered {peak >> 20} MiB of one unterminated line"
    assert not isinstance(raised.value, LookupTimeout) and "without a newline" in str(raised.value)
    assert server.client_hung_up and server.sent < server.total
    assert (lookup.protocol_errors, lookup.failures) == (1, 1)
