"""Level 2 lines that yield no event (``M`` names, market-maker quotes with no valid side): decoded and counted (no sockets)."""

from __future__ import annotations

import logging

import pytest

from events import Depth, Event
from collectors.iqfeed.connections import Counters, Level2Connection
from collectors.iqfeed.protocol import (
    EMPTY_MARKET_MAKER_QUOTES,
    MARKET_MAKER_NAMES,
    SKIPPED_LEVEL2_COUNTERS,
    ProtocolError,
    decode_level2,
)
from config import FeedSettings
from tests.unit.test_protocol import eastern_ns

pytestmark = pytest.mark.timeout(30)

NAMES = MARKET_MAKER_NAMES.counter
EMPTY = EMPTY_MARKET_MAKER_QUOTES.counter

# Format-exact lines: IQFeed.CSharpApiClient's Level 2 tests (the M line, the Z quote)
# and our simulator's market-maker view (a maker that left both sides: zeros, F,F).
CSHARP_NAME = "M,MD02,Market depth 2"
CSHARP_QUOTE = "Z,@ES#,MD01,2982.25,2982.5,99,238,12:49:52.696621,2019-10-18,52,12:49:52.541104,T,T,F,"
EMPTY_UPDATE = "2,AAPL,EDGX,0.00,0.00,0,0,10:07:03.316846,2026-03-10,52,10:07:03.316846,F,F,T,"
EMPTY_SUMMARY = "Z,AAPL,NSDQ,,,,,10:00:00.000000,2026-03-10,52,10:00:00.000000,F,F,T,"
UNPUBLISHED_LEVEL2 = {NAMES: CSHARP_NAME, EMPTY: EMPTY_UPDATE}


def decode_heard(line: str) -> tuple[list[Event], list[tuple[str, str]]]:
    heard: list[tuple[str, str]] = []
    return decode_level2(line, lambda counter, raw: heard.append((counter, raw))), heard


@pytest.mark.parametrize(
    ("line", "counter"),
    [
        (CSHARP_NAME, NAMES),
        ("M,NSDQ,Nasdaq Execution Services", NAMES),  # what the simulator answers to mNSDQ
        ("M,GSCO,Goldman, Sachs & Co,", NAMES),  # a description with a comma, a trailing comma
        ("M,XXXX,", NAMES),  # a maker without a description is still a name line
        (EMPTY_UPDATE, EMPTY),
        (EMPTY_SUMMARY, EMPTY),
    ],
)
def test_level2_lines_without_events_are_reported_to_the_skip_hook(line: str, counter: str) -> None:
    events, heard = decode_heard(line)
    assert events == [] and heard == [(counter, line)]
    assert counter in SKIPPED_LEVEL2_COUNTERS


def test_the_csharp_clients_market_maker_quote_decodes_both_sides_and_is_not_skipped() -> None:
    events, heard = decode_heard(CSHARP_QUOTE)
    ts_bid = eastern_ns(2019, 10, 18, 12, 49, 52, 696621)
    ts_ask = eastern_ns(2019, 10, 18, 12, 49, 52, 541104)
    assert events == [
        Depth(symbol="@ES#", action="summary", side="bid", price=2982.25, size=99, mmid="MD01", ts_ns=ts_bid),
        Depth(symbol="@ES#", action="summary", side="ask", price=2982.5, size=238, mmid="MD01", ts_ns=ts_ask),
    ]
    assert heard == []


def test_a_quote_with_one_valid_side_publishes_that_side_only_and_is_not_skipped() -> None:
    events, heard = decode_heard("2,AAPL,NSDQ,150.1,0.00,100,0,10:00:00.000000,2026-03-10,52,10:00:01.000000,T,F,T,")
    assert [(e.side, e.price, e.size) for e in events] == [("bid", 150.1, 100)]
    assert heard == []


def test_without_a_hook_the_skipped_lines_still_decode_to_nothing() -> None:
    assert decode_level2(CSHARP_NAME) == [] and decode_level2(EMPTY_UPDATE) == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("M", "market maker name needs 2 fields, got 0"),
        ("M,NSDQ", "market maker name needs 2 fields, got 1"),
        (",NSDQ,Nasdaq", "unknown Level 2 message type ''"),
        ("M,,Nasdaq Execution Services", "market maker name without a market maker id"),
        ("2,AAPL,EDGX,0.00,0.00,0,0,10:07:03.316846,2026-03-10,52,10:07:03.316846,F",
         "market maker quote needs 12 fields, got 11"),
        ("2,AAPL,,0.00,0.00,0,0,10:07:03.316846,2026-03-10,52,10:07:03.316846,F,F,T,",
         "market maker quote without a market maker id"),
        ("2,,EDGX,0.00,0.00,0,0,10:07:03.316846,2026-03-10,52,10:07:03.316846,F,F,T,",
         "market maker quote without a symbol"),
        ("2,AAPL,EDGX,0.00,0.00,0,0,10:07:03.316846,2026-03-10,52,10:07:03.316846,F,,T,",
         "market maker quote valid flags must be T or F, got 'F' and ''"),
        ("Z,AAPL,EDGX,1.00,2.00,1,1,10:07:03.316846,2026-03-10,52,10:07:03.316846,Y,T,T,",
         "market maker quote valid flags must be T or F, got 'Y' and 'T'"),
    ],
)
def test_garbled_lines_of_those_kinds_raise_protocol_error_and_are_not_reported(line: str, reason: str) -> None:
    heard: list[str] = []
    with pytest.raises(ProtocolError) as caught:
        decode_level2(line, lambda counter, _raw: heard.append(counter))
    assert caught.value.reason == reason and caught.value.line == line
    assert heard == []


def test_a_failing_skip_hook_is_not_mistaken_for_a_bad_field_value() -> None:
    """The hook runs outside the field-parsing try: its ValueError is its own, not a ProtocolError."""

    def broken(_counter: str, _line: str) -> None:
        raise ValueError("hook bug")

    with pytest.raises(ValueError, match="hook bug"):
        decode_level2(CSHARP_NAME, broken)


# ------------------------------------------------------------ on the connection


def connection() -> tuple[Level2Connection, list[list[Event]], Counters]:
    batches: list[list[Event]] = []
    counters = Counters()
    return Level2Connection(FeedSettings(), batches.append, counters=counters), batches, counters


def test_each_kind_is_counted_on_the_client_counters_and_logged_once_with_a_sample(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, batches, counters = connection()
    lines = [line for line in UNPUBLISHED_LEVEL2.values() for _ in range(3)]
    with caplog.at_level(logging.DEBUG, logger="collectors.iqfeed.connections"):
        conn._handle_lines([*lines, CSHARP_QUOTE], recv_ns=2)
        conn._begin_socket()  # a reconnect: still one sample per kind for the connection
        conn._handle_lines(list(UNPUBLISHED_LEVEL2.values()), recv_ns=3)
    snapshot = counters.snapshot()
    assert {name: snapshot[name] for name in SKIPPED_LEVEL2_COUNTERS} == {NAMES: 4, EMPTY: 4}
    assert snapshot["lines"] == 9 and snapshot.get("protocol_errors", 0) == 0
    assert [len(batch) for batch in batches] == [2]  # only the quote's two sides reached the sink
    samples = [r for r in caplog.records if getattr(r, "counter", None) in UNPUBLISHED_LEVEL2]
    assert [(r.levelno, r.counter, r.line, r.connection) for r in samples] == [  # type: ignore[attr-defined]
        (logging.DEBUG, counter, line, "level2") for counter, line in UNPUBLISHED_LEVEL2.items()
    ]


def test_a_garbled_line_is_a_protocol_error_and_the_rest_of_the_read_goes_on() -> None:
    conn, batches, counters = connection()
    conn._handle_lines(["M,NSDQ", "M,,Nasdaq", CSHARP_NAME, CSHARP_QUOTE], recv_ns=2)
    snapshot = counters.snapshot()
    assert snapshot["protocol_errors"] == 2 and snapshot[NAMES] == 1
    assert [e.side for batch in batches for e in batch] == ["bid", "ask"]  # type: ignore[attr-defined]
