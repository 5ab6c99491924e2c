"""Level 1 field catalogue and Q/P line formatting."""

from __future__ import annotations

import pytest

from collectors.iqfeed.simulator.fields import (
    ALL_UPDATE_FIELDS,
    DEFAULT_UPDATE_FIELDS,
    FIELD_ATTRS,
    FUNDAMENTAL_FIELDS,
    FormatterRegistry,
    UnknownFieldError,
    UpdateFormatter,
    select_fields,
)
from collectors.iqfeed.simulator.market import SymbolState
from collectors.iqfeed.simulator.wire import TimeText, parse_history_timestamp

pytestmark = pytest.mark.timeout(30)


def _state() -> SymbolState:
    st = SymbolState("AAPL", 0, TimeText(), 100)
    t = parse_history_timestamp("2021-03-01 10:15:00.123456")
    st.set_bid(1_229_900, 300, t)
    st.set_ask(1_230_100, 500, t)
    st.trade(1_230_000, 200, t, 11, "C", "01", 1)
    st.f_contents = "Cv"
    return st


def test_selection_puts_symbol_first_and_drops_repeats_and_blanks() -> None:
    assert select_fields(["Bid", "Symbol", "Ask", "Bid", ""]) == ("Symbol", "Bid", "Ask")
    assert select_fields([]) == ("Symbol",)


def test_selection_with_an_unknown_field_is_rejected_naming_it() -> None:
    with pytest.raises(UnknownFieldError, match="Bid Prize"):
        select_fields(["Bid", "Bid Prize"])


def test_catalogue_covers_the_default_and_the_extra_fields_clients_ask_for() -> None:
    extras = {"Bid Time", "Ask Time", "TickID", "Number of Trades Today", "VWAP", "Most Recent Trade Date",
              "Most Recent Trade Aggressor"}
    assert set(DEFAULT_UPDATE_FIELDS) | extras <= set(ALL_UPDATE_FIELDS)
    assert ALL_UPDATE_FIELDS[0] == "Symbol"
    assert len(FUNDAMENTAL_FIELDS) == 57


def test_every_field_can_be_formatted_from_a_state() -> None:
    st = _state()
    for name, attr in FIELD_ATTRS.items():
        assert isinstance(getattr(st, attr), str), name


def test_default_update_line_has_the_default_layout_and_a_trailing_comma() -> None:
    line = UpdateFormatter(DEFAULT_UPDATE_FIELDS).update(_state())
    assert line.endswith(",\r\n")
    assert line.rstrip("\r\n").split(",") == [
        "Q", "AAPL", "123.0000", "200", "10:15:00.123456", "11", "200", "122.9900", "300", "123.0100", "500",
        "123.0000", "123.0000", "123.0000", "", "Cv", "01", "",
    ]


def test_extra_fields_carry_their_values() -> None:
    fields = select_fields(["Bid Time", "TickID", "Number of Trades Today", "VWAP", "Most Recent Trade Date",
                            "Most Recent Trade Aggressor", "Spread", "Tick"])
    st = _state()
    values = UpdateFormatter(fields).summary(st).rstrip("\r\n").split(",")
    assert values == ["P", "AAPL", "10:15:00.123456", "1", "1", "123.0000", "03/01/2021", "1", "0.0200", "173", ""]
    st.trade(1_229_900, 100, st.last_time_us + 1, 11, "C", "01", 2)
    assert UpdateFormatter(("Symbol", "Tick", "VWAP")).update(st) == "Q,AAPL,175,122.9966,\r\n"


def test_registry_shares_one_formatter_per_selection() -> None:
    registry = FormatterRegistry()
    assert registry.get(DEFAULT_UPDATE_FIELDS) is registry.get(tuple(DEFAULT_UPDATE_FIELDS))
    assert registry.get(("Symbol",)) is not registry.get(DEFAULT_UPDATE_FIELDS)
    assert registry.get(("Symbol",)).update(_state()) == "Q,AAPL,\r\n"


def test_last_qualified_extended_and_most_recent_trade_fields_follow_their_own_trades() -> None:
    fields = select_fields(["Last", "Last Size", "Last Market Center", "Extended Trade", "Extended Trade Size",
                            "Most Recent Trade", "Most Recent Trade Size", "Most Recent Trade Market Center",
                            "Most Recent Trade Time", "Tick", "Total Volume", "Number of Trades Today"])
    formatter = UpdateFormatter(fields)
    fresh = SymbolState("MSFT", 1, TimeText(), 100)
    assert formatter.update(fresh) == "Q,MSFT,,,,,,,,,,,0,0,\r\n"  # no trade yet: blanks, zero volume
    st = _state()  # one form C trade: 200 @ 123.0000 on market center 11
    t = st.last_time_us
    st.trade(1_230_000, 50, t + 10, 19, "O", "87", 2)  # odd lot, same price: not a qualified "Last"
    assert formatter.update(st).split(",")[1:14] == [
        "AAPL", "123.0000", "200", "11", "", "", "123.0000", "50", "19", "10:15:00.123466", "183", "250", "2",
    ]
    st.trade(1_231_000, 300, t + 20, 24, "E", "17", 1)  # extended hours trade, price up
    assert formatter.update(st).split(",")[1:14] == [
        "AAPL", "123.0000", "200", "11", "123.1000", "300", "123.1000", "300", "24", "10:15:00.123476", "173",
        "550", "3",
    ]
