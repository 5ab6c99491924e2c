"""Every number a decoder emits fits the column that stores it; a field that does not is a ProtocolError.

Each case takes a real line (``/work/shared/iqfeed/samples/messages.txt``, the tick
history) and puts one out-of-range value in one field: the unchanged line must decode
to storable events and the changed one must be rejected, so the rejection is about the
value. The column limits are read from ``storage/schema.py`` rather than restated.
"""

from __future__ import annotations

import logging
import math
import re
from functools import cache
from typing import Callable

import msgspec
import pytest

from bus import codec
from events import Depth, Event, HistoryBar, HistoryTick, Quote, System, Trade
from collectors.iqfeed.connections import Counters, Level1Connection
from collectors.iqfeed.protocol import (
    Level1Decoder,
    ProtocolError,
    decode_admin,
    decode_level2,
    decode_lookup,
)
from config import FeedSettings
from storage.schema import MIGRATIONS

pytestmark = pytest.mark.timeout(30)

# ------------------------------------------------------------ what storable means

_INT_LIMITS = {"Int64": 2**63 - 1, "Int32": 2**31 - 1, "UInt64": 2**64 - 1, "UInt8": 255, "Int8": 127}
PARTITION_NS_END = 2**32 * 10**9
"""Day partitions go through ``toDateTime`` (UInt32 seconds): a ts_ns outside [0, this) lands on a clamped day."""
_ENVELOPE = frozenset({"source", "seq", "recv_ns"})
_TABLE_OF: dict[type, str] = {Trade: "trades", Quote: "quotes", Depth: "depth", System: "feed_status",
                              HistoryTick: "trades"}  # a history tick is stored as a backfilled trade


@cache
def column_types() -> dict[str, dict[str, str]]:
    """``{table: {column: type}}`` from the migrations' CREATE TABLE statements, Nullable() removed."""
    tables: dict[str, dict[str, str]] = {}
    for migration in MIGRATIONS:
        for statement in migration.statements:
            match = re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) \((.*?)\n\) ENGINE", statement, re.S)
            if match:
                columns = re.findall(r"^\s+(\w+) ([\w()]+?),?$", match.group(2), re.M)
                tables[match.group(1)] = {name: re.sub(r"^Nullable\((.*)\)$", r"\1", kind) for name, kind in columns}
    return tables


def out_of_range(event: Event) -> list[str]:
    """What in ``event`` its table could not hold as it is (empty when all is well).

    Integers other than the envelope must lie in 0..max of their column's type (every
    count, size, volume, id or market center here is non-negative, and -1 stands for
    "none" in the trades table), ts_ns inside the partition range, floats finite.
    """
    columns = column_types().get(_TABLE_OF.get(type(event), ""), {})
    problems = []
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{name}={value}")
        elif isinstance(value, int) and not isinstance(value, bool) and name not in _ENVELOPE:
            high = PARTITION_NS_END - 1 if name == "ts_ns" else _INT_LIMITS[columns.get(name, "Int64")]
            if not 0 <= value <= high:
                problems.append(f"{name}={value} outside 0..{high}")
    return problems


def assert_storable(events: list[Event]) -> None:
    """Every event fits its columns and survives the bus codec unchanged."""
    for event in events:
        assert out_of_range(event) == [], event
        if type(event) in (Trade, Quote, Depth, System):
            assert codec.decode(codec.encode(event)) == event


def test_the_schema_reader_finds_the_columns_the_checks_rely_on() -> None:
    types = column_types()
    assert types["trades"]["market_center"] == "Int32" and types["trades"]["size"] == "Int64"
    assert types["quotes"]["bid_size"] == "Int64" and types["depth"]["order_count"] == "Int64"
    assert out_of_range(Trade(symbol="A", price=1.0, size=2**63, ts_ns=1, market_center=2**31)) == [
        f"size={2**63} outside 0..{2**63 - 1}", f"market_center={2**31} outside 0..{2**31 - 1}"]


# ------------------------------------------------------------------- the lines

L1_FIELDNAMES = ("S,CURRENT UPDATE FIELDNAMES,Symbol,Most Recent Trade,Most Recent Trade Size,Most Recent Trade Time,"
                 "Most Recent Trade Market Center,Total Volume,Bid,Bid Size,Ask,Ask Size,Open,High,Low,Close,"
                 "Message Contents,Most Recent Trade Conditions")  # IQFeed's default list, from messages.txt
L1_TICK_FIELDNAMES = ("S,CURRENT UPDATE FIELDNAMES,Symbol,Most Recent Trade,Most Recent Trade Size,"
                      "Most Recent Trade Time,TickID,Message Contents")
L1_TRADE_AND_QUOTE = "Q,AAPL,123.0000,50,19:59:53.475143,11,0,123.0000,1700,123.0500,200,,,,123.0000,Cbacv,400142,"
L1_QUOTE = "Q,AAPL,322.9100,13,16:53:16.164236,11,37620407,322.8700,100,323.0000,3300,,,,308.9500,ba,8717,"
L1_TICK = "Q,AAPL,123.0000,50,19:59:53.475143,4145784264,C,"
L2_ORDER = "3,@ESM19,12345678,MD01,B,2938.25,65,11,2,20:31:04.876740,2019-04-23,"
L2_LEVEL = "7,@ESM19,B,2938.25,65,11,2,20:31:04.876740,2019-04-23,"
L2_LEVEL_DELETE = "9,@ESM19,A,2938.25,20:31:04.876740,2019-04-23,"
L2_MARKET_MAKER = "Z,@ES#,MD01,2982.25,2982.5,99,238,12:49:52.696621,2019-10-18,52,12:49:52.541104,T,T,F,"
STATS = ("S,STATS,66.112.148.223,60002,500,0,1,0,5,0,Aug 20 2:42PM,Aug 20 2:42PM,Connected,5.1.1.0,416828,"
         "0.55,0.02,0.03,3.94,0.11,0.18,")
LOOKUP_TICK = "LH,2018-04-17 17:51:22.123456,96.0700,1061909,0,0.0000,0.0000,4145784264,O,19,143A,2,17"
HISTORY_TICK = "2021-03-01 04:00:06.702115,1.5200,50,1050,1.4300,1.5200,2,O,11,873D17,0,1,"
LOOKUP_BAR = "LH,2026-03-10 10:01:00,11.0,9.0,10.0,10.5,5000,300,12,"
LOOKUP_DAILY = "2018-04-27,164.3300,160.6300,164.0000,162.3200,35655839,0,"

TOO_BIG = "99999999999999999999"  # the size: msgpack cannot encode it
INT64_OVER = str(2**63)  # fits msgpack (uint64), fails every ClickHouse insert, negative on chDB
INT32_OVER = str(2**31)


def level1(fieldnames: str = L1_FIELDNAMES) -> Callable[[str], list[Event]]:
    decoder = Level1Decoder(clock=lambda: 1_531_160_311_000_000_000)
    decoder.decode(fieldnames)
    decoder.decode("T,20180709 14:18:31")
    return decoder.decode


def lookup(kind: str) -> Callable[[str], list[Event]]:
    return lambda line: decode_lookup(line, kind, "AAPL").events  # type: ignore[arg-type]


DECODERS: dict[str, Callable[[], Callable[[str], list[Event]]]] = {
    "level1": level1,
    "level1-tickid": lambda: level1(L1_TICK_FIELDNAMES),
    "level2": lambda: decode_level2,
    "admin": lambda: decode_admin,
    "lookup-ticks": lambda: lookup("ticks"),
    "lookup-bars": lambda: lookup("bars"),
    "lookup-daily": lambda: lookup("daily"),
}


def with_field(line: str, index: int, value: str) -> str:
    parts = line.split(",")
    parts[index] = value
    return ",".join(parts)


# (stream, real line, field index, out-of-range value, what it is)
CASES = [
    ("level1", L1_TRADE_AND_QUOTE, 3, TOO_BIG, "trade size too big for msgpack"),
    ("level1", L1_TRADE_AND_QUOTE, 3, INT64_OVER, "trade size over Int64"),
    ("level1", L1_TRADE_AND_QUOTE, 6, INT64_OVER, "total volume over Int64"),
    ("level1", L1_TRADE_AND_QUOTE, 6, "-1", "negative total volume"),
    ("level1", L1_TRADE_AND_QUOTE, 5, INT32_OVER, "market center over Int32"),
    ("level1", L1_TRADE_AND_QUOTE, 5, "-1", "negative market center (-1 means none in storage)"),
    ("level1", L1_TRADE_AND_QUOTE, 8, INT64_OVER, "bid size over Int64"),
    ("level1", L1_QUOTE, 10, TOO_BIG, "ask size too big for msgpack"),
    ("level1", L1_QUOTE, 8, "-100", "negative bid size"),
    ("level1", "T,20180709 14:18:31", 1, "23000101 14:18:31", "heartbeat beyond the partition range"),
    ("level1", "T,20180709 14:18:31", 1, "19691231 14:18:31", "heartbeat before 1970"),
    ("level1-tickid", L1_TICK, 5, INT64_OVER, "tick id over Int64"),
    ("level1-tickid", L1_TICK, 5, "-7", "negative tick id"),
    ("level2", L2_ORDER, 6, INT64_OVER, "order size over Int64"),
    ("level2", L2_ORDER, 6, "-65", "negative order size"),
    ("level2", L2_ORDER, 10, "2300-04-23", "order date beyond the partition range"),
    ("level2", L2_LEVEL, 4, TOO_BIG, "price level size too big for msgpack"),
    ("level2", L2_LEVEL, 5, INT64_OVER, "order count over Int64"),
    ("level2", L2_LEVEL_DELETE, 5, "1969-12-31", "delete dated before 1970"),
    ("level2", L2_MARKET_MAKER, 5, TOO_BIG, "market maker bid size too big for msgpack"),
    ("level2", L2_MARKET_MAKER, 6, "-238", "negative market maker ask size"),
    ("admin", STATS, 3, "70000", "server port over 65535"),
    ("admin", STATS, 4, TOO_BIG, "max symbols too big"),
    ("admin", STATS, 5, "-1", "negative number of symbols"),
    ("admin", STATS, 8, "five", "reconnections not a number"),
    ("admin", STATS, 15, "inf", "total KB received not finite"),
    ("admin", STATS, 16, "nan", "KB/s received not a number"),
    ("admin", STATS, 18, "-3.94", "negative KB sent"),
    ("lookup-ticks", LOOKUP_TICK, 3, INT64_OVER, "tick size over Int64"),
    ("lookup-ticks", LOOKUP_TICK, 4, TOO_BIG, "tick total volume too big for msgpack"),
    ("lookup-ticks", LOOKUP_TICK, 7, "-1", "negative lookup tick id"),
    ("lookup-ticks", LOOKUP_TICK, 9, INT32_OVER, "tick market center over Int32"),
    ("lookup-ticks", HISTORY_TICK, 2, INT64_OVER, "history file tick size over Int64"),
    ("lookup-ticks", HISTORY_TICK, 0, "2300-03-01 04:00:06.702115", "tick beyond the partition range"),
    ("lookup-bars", LOOKUP_BAR, 6, INT64_OVER, "bar volume over Int64"),
    ("lookup-bars", LOOKUP_BAR, 7, "-300", "negative bar period volume"),
    ("lookup-bars", LOOKUP_BAR, 8, TOO_BIG, "bar trade count too big"),
    ("lookup-daily", LOOKUP_DAILY, 5, INT64_OVER, "daily volume over Int64"),
    ("lookup-daily", LOOKUP_DAILY, 6, "-1", "negative open interest"),
    ("lookup-daily", LOOKUP_DAILY, 0, "9999-04-27", "daily bar beyond the partition range"),
]


@pytest.mark.parametrize(("stream", "line", "index", "value"), [case[:4] for case in CASES],
                         ids=[case[4] for case in CASES])
def test_a_number_outside_its_column_makes_the_line_a_protocol_error(stream: str, line: str, index: int,
                                                                      value: str) -> None:
    events = DECODERS[stream]()(line)
    assert events and all(type(e) not in (HistoryTick, HistoryBar) or e.symbol == "AAPL" for e in events)
    assert_storable(events)  # the real line as it is: fine
    bad = with_field(line, index, value)
    with pytest.raises(ProtocolError) as caught:
        DECODERS[stream]()(bad)
    assert caught.value.line == bad


@pytest.mark.parametrize("line", [
    "S,STATS,,,0,0,1,0,0,0,,,Not Connected,6.0.0.4,474614,0,0,,0.02,0.02,,",  # real: empty numbers are fine
    "S,STATS,,,0,0,1,0,0,0,,,Not Connected,6.0.0.4,",  # short lines were accepted before: still are
    STATS,
])
def test_stats_lines_with_empty_or_missing_numbers_still_decode(line: str) -> None:
    (event,) = decode_admin(line)
    assert event.name == "STATS" and event.connected is not None


def test_an_out_of_range_line_is_counted_and_logged_and_the_rest_of_the_read_is_published(
        caplog: pytest.LogCaptureFixture) -> None:
    """The issue's case: one huge size must not take the other events of the read with it."""
    batches: list[list[Event]] = []
    counters = Counters()
    conn = Level1Connection(FeedSettings(), batches.append, counters=counters)
    bad = with_field(L1_TRADE_AND_QUOTE, 3, TOO_BIG)
    with caplog.at_level(logging.WARNING, logger="collectors.iqfeed.connections"):
        conn._handle_lines([L1_FIELDNAMES, "T,20180709 14:18:31", L1_QUOTE, bad, L1_TRADE_AND_QUOTE], recv_ns=5)
    assert counters.snapshot()["protocol_errors"] == 1
    assert [r.line for r in caplog.records if r.getMessage() == "protocol error"] == [bad]  # type: ignore[attr-defined]
    (batch,) = batches
    assert [type(e).__name__ for e in batch] == ["System", "Heartbeat", "Quote", "Trade", "Quote"]
    assert_storable(batch)
    msgspec.msgpack.encode(batch)  # the whole read encodes: what the producer does
