"""Bus payloads: every event kind round-trips; anything else is a typed error, never a crash."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.base import BusRecord, PoisonRecord, to_records
from bus.codec import BATCH_VERSION, CodecError, UnsupportedVersion, decode, decode_many, encode, encode_batch, event_count
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
        (bytes([BATCH_VERSION + 1]) + msgspec.msgpack.encode({"kind": "heartbeat", "ts_ns": 1}), UnsupportedVersion),
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
    [poison] = to_records("p.trades", 2, 41, b"AAPL", b"\x01\xc1")
    assert isinstance(poison, PoisonRecord)
    assert (poison.topic, poison.partition, poison.offset, poison.key, poison.payload) == ("p.trades", 2, 41, b"AAPL", b"\x01\xc1")
    assert "decode" in poison.reason
    [good] = to_records("p.trades", 2, 42, b"AAPL", encode(EVERY_KIND[0]))
    assert isinstance(good, BusRecord) and good.event == EVERY_KIND[0] and (good.index, good.last) == (0, True)


def test_a_batch_of_every_kind_round_trips_in_order_behind_its_own_version_byte():
    payload = encode_batch(EVERY_KIND)
    assert payload[0] == BATCH_VERSION and event_count(payload) == len(EVERY_KIND)
    assert decode_many(payload) == EVERY_KIND
    assert decode_many(encode(EVERY_KIND[0])) == [EVERY_KIND[0]] and event_count(encode(EVERY_KIND[0])) == 1
    with pytest.raises(CodecError, match="decode_many"):
        decode(payload)


@pytest.mark.parametrize("size", [2, 15, 16, 65_535, 65_536])
def test_the_event_count_of_a_batch_is_read_from_its_array_header(size):
    heartbeats = [Heartbeat(ts_ns=i) for i in range(size)]
    payload = encode_batch(heartbeats)
    assert event_count(payload) == size == len(decode_many(payload))


@pytest.mark.parametrize(
    "payload",
    [encode_batch([]), encode_batch(EVERY_KIND[:3])[:-2], b"\x02" + msgspec.msgpack.encode({"kind": "heartbeat"})],
    ids=["empty-batch", "truncated", "not-a-list"],
)
def test_an_undecodable_batch_is_one_poison_record_for_the_whole_message(payload):
    with pytest.raises(CodecError):
        decode_many(payload)
    [poison] = to_records("p.trades", 0, 7, b"A", payload)
    assert isinstance(poison, PoisonRecord) and poison.offset == 7 and poison.payload == payload


def test_the_records_of_a_batch_share_its_offset_and_know_their_place_and_which_one_ends_it():
    records = to_records("p.trades", 1, 9, b"AAPL", encode_batch(EVERY_KIND[:3]))
    assert [(r.offset, r.index, r.last, r.event) for r in records] == [
        (9, 0, False, EVERY_KIND[0]), (9, 1, False, EVERY_KIND[1]), (9, 2, True, EVERY_KIND[2])]
