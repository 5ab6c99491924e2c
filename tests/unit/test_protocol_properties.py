"""Properties: no input, however odd, makes a decoder raise anything but ProtocolError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import Quote, Trade
from collectors.iqfeed.protocol import (
    DEFAULT_UPDATE_FIELDS,
    Level1Decoder,
    ProtocolError,
    decode_admin,
    decode_level2,
    decode_lookup,
)

pytestmark = pytest.mark.timeout(120)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like IQFeed fields often enough to reach the deep branches.
FIELD = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="0123456789.:-+ eE", max_size=16),
    st.sampled_from(["", "C", "Cbacv", "ba", "E", "O", "T", "F", "B", "A", "17", "873D17", "nan", "inf", "-1",
                     "10:00:00.000001", "23:59:59.999999", "2026-03-08", "20260308 02:30:00", "Connected",
                     "Not Connected", "!ENDMSG!", "LH", "!NO_DATA!", "CLEAR DEPTH", "STATS", "Symbol"]),
)
TYPE = st.sampled_from(["Q", "P", "T", "S", "n", "E", "F", "R", "N", "C", "0", "2", "3", "4", "5", "6", "7", "8", "9",
                        "Z", "M", "LH", "1", "x", ""])
LINE = st.one_of(
    st.text(),
    st.builds(lambda kind, fields: ",".join([kind, *fields]), TYPE, st.lists(FIELD, max_size=24)),
)
FIELD_LIST = st.lists(st.sampled_from(["Symbol", *DEFAULT_UPDATE_FIELDS, "TickID", "Bid Time", "Ask Time", "Junk"]),
                      max_size=20)


def only_protocol_errors(decode, line: str) -> None:
    try:
        decode(line)
    except ProtocolError:
        pass


@FAST
@given(LINE)
def test_level1_decode_raises_nothing_but_protocol_error(line: str) -> None:
    decoder = Level1Decoder(clock=lambda: 1_773_000_000_000_000_000)
    decoder.decode("T,20260308 01:59:59")  # a DST-change day exercises the slow path too
    only_protocol_errors(decoder.decode, line)


@FAST
@given(st.lists(st.one_of(LINE, FIELD_LIST.map(lambda names: "S,CURRENT UPDATE FIELDNAMES," + ",".join(names))),
                max_size=12))
def test_level1_safe_decode_never_raises_over_a_stream(lines: list[str]) -> None:
    decoder = Level1Decoder(clock=lambda: 0)
    for line in lines:
        events, error = decoder.safe_decode(line)
        assert error is None or (events == [] and isinstance(error, ProtocolError))


@FAST
@given(LINE)
def test_level2_and_admin_raise_nothing_but_protocol_error(line: str) -> None:
    only_protocol_errors(decode_level2, line)
    only_protocol_errors(decode_admin, line)


@FAST
@given(LINE, st.sampled_from(["ticks", "bars", "daily"]))
def test_lookup_raises_nothing_but_protocol_error(line: str, kind: str) -> None:
    only_protocol_errors(lambda text: decode_lookup(text, kind, "AAPL"), line)  # type: ignore[arg-type]


@FAST
@given(
    price=st.decimals(min_value=0, max_value=100_000, places=4),
    size=st.integers(min_value=0, max_value=10**9),
    bid=st.decimals(min_value=0, max_value=100_000, places=4),
    micros=st.integers(min_value=0, max_value=86_399_999_999),
)
def test_well_formed_updates_round_trip_their_numbers(price, size, bid, micros) -> None:
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"
    decoder = Level1Decoder(clock=lambda: 0)
    decoder.decode("T,20260615 12:00:00")
    trade, quote = decoder.decode(f"Q,X,{price},{size},{stamp},11,1,{bid},1,{bid},2,,,,,Cba,17,")
    assert isinstance(trade, Trade) and isinstance(quote, Quote)
    assert trade.price == float(price) and trade.size == size and quote.bid == float(bid)
    assert trade.ts_ns % 1_000_000_000 == fraction * 1000
    assert abs(trade.ts_ns - 1_781_539_200_000_000_000) <= 12 * 3600 * 10**9  # within 12 h of the heartbeat
