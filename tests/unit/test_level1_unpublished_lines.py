"""Level 1 lines that yield no event (F/R/N/C), as the connection counts and logs them (no sockets)."""

from __future__ import annotations

import logging

import pytest

from collectors.iqfeed.connections import Counters, Level1Connection
from collectors.iqfeed.protocol import SKIPPED_LEVEL1_COUNTERS
from config import FeedSettings
from events import Event, FeedError
from tests.unit.test_protocol import FIELDNAMES, UNPUBLISHED_LEVEL1

pytestmark = pytest.mark.timeout(30)


def connection() -> tuple[Level1Connection, list[list[Event]], Counters]:
    batches: list[list[Event]] = []
    counters = Counters()
    conn = Level1Connection(FeedSettings(), batches.append, counters=counters)
    conn._handle_lines([FIELDNAMES, "T,20260310 10:00:00"], recv_ns=1)
    batches.clear()
    return conn, batches, counters


def test_each_unpublished_kind_is_counted_and_logged_once_with_a_sample(caplog: pytest.LogCaptureFixture) -> None:
    conn, batches, counters = connection()
    lines = [line for line in UNPUBLISHED_LEVEL1.values() for _ in range(3)]
    with caplog.at_level(logging.DEBUG, logger="collectors.iqfeed.connections"):
        conn._handle_lines(lines, recv_ns=2)
        conn._handle_lines(list(UNPUBLISHED_LEVEL1.values()), recv_ns=3)
    snapshot = counters.snapshot()
    assert {name: snapshot[name] for name in SKIPPED_LEVEL1_COUNTERS} == dict.fromkeys(UNPUBLISHED_LEVEL1, 4)
    assert snapshot["lines"] == 2 + 16 and snapshot.get("protocol_errors", 0) == 0
    assert batches == []  # nothing reached the sink: counted, not published
    samples = [r for r in caplog.records if getattr(r, "counter", None) in UNPUBLISHED_LEVEL1]
    assert [(r.levelno, r.counter, r.line) for r in samples] == [  # type: ignore[attr-defined]
        (logging.DEBUG, counter, line) for counter, line in UNPUBLISHED_LEVEL1.items()
    ]


def test_the_sample_log_is_once_per_kind_for_the_connection_not_per_socket(caplog: pytest.LogCaptureFixture) -> None:
    conn, _, counters = connection()
    line = UNPUBLISHED_LEVEL1["fundamentals_skipped"]
    with caplog.at_level(logging.DEBUG, logger="collectors.iqfeed.connections"):
        conn._handle_lines([line], recv_ns=2)
        conn._begin_socket()  # a reconnect: a new socket, IQFeed's default field list again
        conn._handle_lines([FIELDNAMES, line], recv_ns=3)
    assert counters.snapshot()["fundamentals_skipped"] == 2
    assert sum(getattr(r, "counter", None) == "fundamentals_skipped" for r in caplog.records) == 1


def test_a_garbled_unpublished_line_is_a_protocol_error_and_the_rest_of_the_read_goes_on() -> None:
    conn, batches, counters = connection()
    conn._handle_lines(["R,AAPL,X,1.23", "F,", "C", UNPUBLISHED_LEVEL1["news_skipped"], "T,20260310 10:00:01"], recv_ns=2)
    snapshot = counters.snapshot()
    assert snapshot["protocol_errors"] == 3 and snapshot["news_skipped"] == 1
    assert snapshot.get("regionals_skipped", 0) == snapshot.get("fundamentals_skipped", 0) == 0
    assert [type(e).__name__ for batch in batches for e in batch] == ["Heartbeat"]


def test_an_iqfeed_error_line_is_counted_and_logged_without_breaking_the_reader(caplog: pytest.LogCaptureFixture) -> None:
    """Regression: logging it with ``extra={"message": ...}`` raised KeyError and killed the reader thread."""
    conn, batches, counters = connection()
    with caplog.at_level(logging.WARNING, logger="collectors.iqfeed.connections"):
        conn._handle_lines(["E,Disconnected from server", "T,20260310 10:00:01"], recv_ns=2)
    assert counters.snapshot()["feed_errors"] == 1
    assert [e for batch in batches for e in batch if isinstance(e, FeedError)] == [
        FeedError(message="Disconnected from server", recv_ns=2)
    ]
    assert [getattr(r, "error", None) for r in caplog.records] == ["Disconnected from server"]
