"""Bus payloads: every event kind round-trips; anything else is a typed error, never a crash."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.base import BusRecord, PoisonRecord, to_record
from bus.codec import CodecError, UnsupportedVersion, decode, encode
from events import (
    SCHEMA_VERSION,
    Depth,
    FeedError,
    Heartbeat,
    HistoryBar,
    HistoryTick,
    Quote,
    SymbolNotFound,
    System,
    Trade,
)

EVERY_KIND = [
    Trade(symbol="AAPL", price=123.25, size=100, ts_ns=1, conditions=("3D",), market_center=11, tick_id=7,
          total_volume=1000, basis="C", backfilled=True, source="s", seq=1, recv_ns=2),
    Quote(symbol="AAPL", bid=None, bid_size=None, ask=1.5, ask_size=3, ts_ns=2, source="s", seq=2),
    Depth(symbol="@ES", action="add", side="bid", price=1.0, size=2, order_id="9", ts_ns=3),
    System(name="SERVER CONNECTED", fields=("a",), connected=True),
    Heartbeat(ts_ns=5),
    SymbolNotFound(symbol="NOPE"),
    FeedError(message="bad", request_id="r1"),
    HistoryTick(symbol="A", ts_ns=1, price=1.0, size=1, total_volume=1, bid=None, ask=2.0, tick_id=1, basis="C",
                market_center=None),
    HistoryBar(symbol="A", ts_ns=1, open=1.0, high=2.0, low=0.5, close=1.5, volume=10),
]


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: type(e).__name__)
def test_every_event_kind_round_trips_behind_the_schema_version_byte(event):
    payload = encode(event)
    assert payload[0] == SCHEMA_VERSION
    assert decode(payload) == event


@given(
    symbol=st.text(min_size=1, max_size=12),
    price=st.floats(allow_nan=False),
    size=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    ts_ns=st.integers(min_value=0, max_value=2**63 - 1),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    conditions=st.tuples(st.text(max_size=3)),
)
def test_any_trade_round_trips_exactly(symbol, price, size, ts_ns, seq, conditions):
    trade = Trade(symbol=symbol, price=price, size=size, ts_ns=ts_ns, seq=seq, conditions=conditions, source="src")
    assert decode(encode(trade)) == trade


@pytest.mark.parametrize(
    "payload, error",
    [
        (b"", CodecError),
        (None, CodecError),
        (bytes([SCHEMA_VERSION + 1]) + msgspec.msgpack.encode({"kind": "heartbeat", "ts_ns": 1}), UnsupportedVersion),
        (b"\x01not msgpack at all \xc1", CodecError),
        (b"\x01" + msgspec.msgpack.encode([1, 2, 3]), CodecError),
        (b"\x01" + msgspec.msgpack.encode({"kind": "trade", "symbol": "A"}), CodecError),  # missing fields
        (b"\x01" + msgspec.msgpack.encode({"kind": "no_such_kind"}), CodecError),
        (encode(EVERY_KIND[0])[:-3], CodecError),  # truncated
    ],
    ids=["empty", "none", "future-version", "garbage", "wrong-shape", "missing-fields", "unknown-kind", "truncated"],
)
def test_undecodable_payloads_raise_a_codec_error_naming_the_problem(payload, error):
    with pytest.raises(error):
        decode(payload)


def test_an_undecodable_message_becomes_a_poison_record_instead_of_raising():
    poison = to_record("p.trades", 2, 41, b"AAPL", b"\x01\xc1")
    assert isinstance(poison, PoisonRecord)
    assert (poison.topic, poison.partition, poison.offset, poison.key, poison.payload) == ("p.trades", 2, 41, b"AAPL", b"\x01\xc1")
    assert "decode" in poison.reason
    good = to_record("p.trades", 2, 42, b"AAPL", encode(EVERY_KIND[0]))
    assert isinstance(good, BusRecord) and good.event == EVERY_KIND[0]
