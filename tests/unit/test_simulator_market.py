"""The synthetic market: seeded, realistic and internally consistent."""

from __future__ import annotations

import re

import pytest

from collectors.iqfeed.simulator.market import ASK, BID, TRADE, SymbolState, SyntheticMarket, regular_session
from collectors.iqfeed.simulator.wire import TimeText, parse_history_timestamp

pytestmark = pytest.mark.timeout(30)

MONDAY_10AM = parse_history_timestamp("2021-03-01 10:00:00")
MONDAY_6AM = parse_history_timestamp("2021-03-01 06:00:00")


def _market(seed: int = 7, count: int = 5) -> SyntheticMarket:
    text = TimeText()
    return SyntheticMarket([SymbolState(f"S{i}", i, text, 10_000) for i in range(count)], seed)


def _run(market: SyntheticMarket, events: int, start_us: int) -> list[tuple[str, int, str, str, str]]:
    out = []
    for i, st in enumerate(market.pick(events, start_us)):
        flags = market.step(st, start_us + i * 1000)
        out.append((st.symbol, flags, st.f_contents, st.f_bid, st.f_last))
    return out


def test_same_seed_same_market_and_another_seed_another() -> None:
    assert _run(_market(7), 2000, MONDAY_10AM) == _run(_market(7), 2000, MONDAY_10AM)
    assert _run(_market(7), 2000, MONDAY_10AM) != _run(_market(8), 2000, MONDAY_10AM)


def test_events_keep_quotes_sane_and_contents_letters_true() -> None:
    market = _market()
    trades = quotes = 0
    for i, st in enumerate(market.pick(20_000, MONDAY_10AM)):
        before = (st.bid, st.bid_size, st.ask, st.ask_size, st.volume)
        flags = market.step(st, MONDAY_10AM + i * 1000)
        contents = st.f_contents
        assert 0 < st.bid < st.ask and st.bid_size > 0 and st.ask_size > 0
        assert ("b" in contents) == bool(flags & BID) and ("a" in contents) == bool(flags & ASK)
        if flags & TRADE:
            trades += 1
            tick = st.last_tick
            assert contents[0] == tick.basis and contents.endswith("v")
            assert st.last == tick.price and tick.price in (before[0], before[2])  # traded at the bid or the ask
            assert st.volume == tick.total_volume == before[4] + tick.size
            assert (tick.basis == "O") == (tick.size < 100)
            assert tick.basis in ("C", "O")  # 10:00 on a Monday is the regular session
            assert re.fullmatch(r"(?:[0-9A-F]{2})+", tick.conditions) and st.f_conds == tick.conditions
            assert st.history[-1] is tick
        else:
            quotes += 1
            assert contents in ("b", "a", "ba")
            assert st.volume == before[4]
    assert 0.2 < trades / (trades + quotes) < 0.3


def test_trades_outside_the_regular_session_are_form_t() -> None:
    market = _market()
    bases = set()
    for i, st in enumerate(market.pick(4000, MONDAY_6AM)):
        if market.step(st, MONDAY_6AM + i * 1000) & TRADE:
            bases.add(st.last_tick.basis)
            assert st.last_tick.basis == "O" or "17" in st.last_tick.conditions
    assert bases == {"E", "O"}


def test_activity_is_skewed_across_symbols() -> None:
    market = _market(count=50)
    counts: dict[str, int] = {}
    for st in market.pick(50_000, MONDAY_10AM):
        counts[st.symbol] = counts.get(st.symbol, 0) + 1
    ranked = sorted(counts.values(), reverse=True)
    assert ranked[0] > 5 * ranked[-1]


def test_regular_session_hours() -> None:
    assert regular_session(parse_history_timestamp("2021-03-01 09:30:00"))
    assert not regular_session(parse_history_timestamp("2021-03-01 09:29:59"))
    assert not regular_session(parse_history_timestamp("2021-03-01 16:00:00"))
    assert not regular_session(parse_history_timestamp("2021-03-06 11:00:00"))  # Saturday


def test_a_new_day_rolls_volume_over_and_keeps_yesterdays_last_as_close() -> None:
    st = SymbolState("AAPL", 0, TimeText(), 100)
    st.trade(1_000_000, 100, parse_history_timestamp("2021-03-01 15:59:00"), 11, "C", "01", 1)
    letters = st.trade(1_010_000, 200, parse_history_timestamp("2021-03-02 09:31:00"), 11, "C", "01", 1)
    assert st.volume == 200 and st.close == 1_000_000 and st.f_close == "100.0000"
    assert letters == "ohl" and st.open == st.high == st.low == 1_010_000


def test_fundamentals_line_has_the_full_layout() -> None:
    st = _market().states[0]
    fields = st.fundamentals().rstrip("\r\n").split(",")
    assert fields[0] == "F" and fields[1] == "S0" and len(fields) == 1 + 57 + 1 and fields[-1] == ""
