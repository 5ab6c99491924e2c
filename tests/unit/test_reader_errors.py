"""A bug in our own code while reading is a counted, logged reader error, never a dead reader (no sockets)."""

from __future__ import annotations

import logging

import pytest

from events import (
    Event,
    FeedError,
    Heartbeat,
    Quote,
    SymbolNotFound,
    System,
    Trade,
)
from collectors.iqfeed.connections import (
    READER_ERROR_LOG_INTERVAL_S,
    Counters,
    Level1Connection,
    _Down,
)
from collectors.iqfeed.protocol import ProtocolVersionError
from config import FeedSettings
from tests.unit.test_protocol import FIELDNAMES, q_line

pytestmark = pytest.mark.timeout(30)

LOGGER = "collectors.iqfeed.connections"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def connection(**kwargs: object) -> tuple[Level1Connection, list[list[Event]], Counters, Clock]:
    batches: list[list[Event]] = []
    counters = Counters()
    clock = Clock()
    conn = Level1Connection(FeedSettings(), batches.append, counters=counters, clock=clock, **kwargs)  # type: ignore[arg-type]
    conn._handle_lines([FIELDNAMES, "T,20260310 10:00:00"], recv_ns=1)
    batches.clear()
    return conn, batches, counters, clock


def fail_once(real, exc: Exception):  # type: ignore[no-untyped-def]
    """A hook that raises ``exc`` on its first call and behaves like ``real`` afterwards."""
    calls = []

    def hook(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        if len(calls) == 1:
            raise exc
        return real(*args, **kwargs)

    hook.calls = calls  # type: ignore[attr-defined]
    return hook


def reader_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]


def test_a_failing_market_data_hook_loses_that_event_only_and_the_read_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    conn, batches, counters, _ = connection()
    conn._on_data = fail_once(conn._on_data, RuntimeError("bookkeeping bug"))  # type: ignore[method-assign]
    lines = [q_line(), q_line(time="10:00:00.000002"), "T,20260310 10:00:01"]
    conn._handle_lines(lines, recv_ns=2)  # no _Down: the socket stays up
    delivered = [e for batch in batches for e in batch]
    # The first line's trade hit the bug; its quote and the next line's trade and quote went on.
    assert [type(e) for e in delivered] == [Quote, Trade, Quote, Heartbeat]
    snapshot = counters.snapshot()
    assert snapshot["reader_errors"] == 1 and snapshot.get("protocol_errors", 0) == 0
    assert snapshot["lines"] == 2 + 3 and snapshot["events"] == 2 + 4  # after the set-up read's 2 lines, 2 events
    (record,) = reader_errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert (record.connection, record.stage, record.event_type, record.line) == (  # type: ignore[attr-defined]
        "level1", "event", "Trade", lines[0]
    )
    assert record.error == "RuntimeError: bookkeeping bug" and record.unlogged == 0  # type: ignore[attr-defined]


def test_a_failing_control_hook_delivers_the_whole_read_then_ends_the_socket() -> None:
    """A half-handled control event may leave state no later line repairs: reconnect after the read."""
    conn, batches, counters, _ = connection()
    conn._rejected = fail_once(conn._rejected, KeyError("message"))  # type: ignore[method-assign]
    with pytest.raises(_Down, match="^reader_error: KeyError handling SymbolNotFound$"):
        conn._handle_lines(["n,NOPE", q_line(), "T,20260310 10:00:01"], recv_ns=2)
    delivered = [e for batch in batches for e in batch]
    assert [type(e) for e in delivered] == [Trade, Quote, Heartbeat]  # the failed control event is not published
    snapshot = counters.snapshot()
    assert snapshot["reader_errors"] == 1 and snapshot["symbol_not_found"] == 1
    assert snapshot.get("rejected_symbols", 0) == 0  # the half-done part the reconnect re-does
    conn._handle_lines(["n,NOPE"], recv_ns=3)  # the next time the hook works and nothing is raised
    assert conn.subscriptions.rejected == {"NOPE": "symbol_not_found"}


def test_a_failing_dtn_callback_is_a_control_failure_too() -> None:
    heard: list[bool] = []
    conn, batches, counters, _ = connection(on_dtn_change=fail_once(heard.append, RuntimeError("callback bug")))
    with pytest.raises(_Down, match="handling System"):
        conn._handle_lines(["S,SERVER CONNECTED", q_line()], recv_ns=2)
    assert counters.snapshot()["reader_errors"] == 1 and heard == []
    assert [type(e) for batch in batches for e in batch] == [Trade, Quote]


def test_the_readers_own_control_flow_is_no_reader_error_and_the_read_so_far_is_delivered() -> None:
    conn, batches, counters, _ = connection()
    with pytest.raises(ProtocolVersionError):
        conn._handle_lines([q_line(), "E,6.2 is not a valid protocol.,", q_line(time="10:00:00.000002")], recv_ns=2)
    assert [type(e) for batch in batches for e in batch] == [Trade, Quote]
    assert counters.snapshot().get("reader_errors", 0) == 0

    def send_fails(_command: bytes) -> None:
        raise OSError("broken pipe")

    conn._send_now = send_fails  # type: ignore[method-assign]
    conn.subscriptions.add("AAPL")
    conn._dtn_connected = False
    conn._ready = True
    with pytest.raises(OSError):  # resubscribe after DTN returns: the socket is gone, reconnect as usual
        conn._handle_lines(["S,SERVER CONNECTED"], recv_ns=3)
    assert counters.snapshot().get("reader_errors", 0) == 0


def test_an_error_on_every_line_is_counted_every_time_but_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, batches, counters, clock = connection()

    def always_broken(_event: Event, _recv_ns: int, _summary: bool) -> bool:
        raise RuntimeError("bug on every line")

    conn._on_data = always_broken  # type: ignore[method-assign]
    conn._handle_lines([q_line()] * 5, recv_ns=2)  # 10 events, 10 errors
    clock.now += READER_ERROR_LOG_INTERVAL_S
    conn._handle_lines([q_line()], recv_ns=3)
    assert counters.snapshot()["reader_errors"] == 12 and batches == []
    logged = reader_errors(caplog)
    assert [r.unlogged for r in logged] == [0, 9]  # type: ignore[attr-defined]
    assert all(r.exc_info is not None for r in logged)


def test_a_feed_error_line_logs_without_colliding_with_log_record_attributes(caplog: pytest.LogCaptureFixture) -> None:
    """Regression for the bug that killed the reader: ``extra={"message": ...}`` raises KeyError in logging."""
    conn, batches, counters, _ = connection()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        conn._handle_lines(["E,Disconnected from server"], recv_ns=2)
    assert counters.snapshot().get("reader_errors", 0) == 0
    assert [e for batch in batches for e in batch] == [FeedError(message="Disconnected from server", recv_ns=2)]


def test_reader_error_log_fields_are_not_log_record_attributes() -> None:
    reserved = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
    conn, _, _, _ = connection()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        conn._reader_error(RuntimeError("x"), "event", "Q,AAPL", System(name="X", fields=()))
    finally:
        logger.removeHandler(handler)
    (record,) = seen
    extras = {"connection", "stage", "error", "line", "event_type", "unlogged"}
    assert extras <= set(vars(record)) and not extras & reserved
    assert record.event_type == "System"  # type: ignore[attr-defined]


def test_symbol_not_found_still_works_when_nothing_fails() -> None:
    conn, batches, counters, _ = connection()
    conn._handle_lines(["n,NOPE"], recv_ns=2)
    assert [e for batch in batches for e in batch] == [SymbolNotFound(symbol="NOPE", recv_ns=2)]
    assert counters.snapshot().get("reader_errors", 0) == 0
