"""The synthetic stream's hot path: pre-joined line parts, fast routes and batch picks."""

from __future__ import annotations

import pytest

from collectors.iqfeed.simulator.config import SimulatorConfig
from collectors.iqfeed.simulator.fields import (
    DEFAULT_UPDATE_FIELDS,
    FIELD_ATTRS,
    UpdateFormatter,
    select_fields,
)
from collectors.iqfeed.simulator.hub import Hub
from collectors.iqfeed.simulator.market import (
    _EXTENDED_CONDITIONS,
    _REGULAR_ODD_LOT_CONDITIONS,
    MARKET_CENTERS,
    TRADE,
    SymbolState,
    SyntheticMarket,
    trade_tags,
)
from collectors.iqfeed.simulator.wire import TimeText, parse_history_timestamp

pytestmark = pytest.mark.timeout(30)

MONDAY_10AM = parse_history_timestamp("2021-03-01 10:00:00")


def _generic_line(st: SymbolState, fields: tuple[str, ...] = DEFAULT_UPDATE_FIELDS) -> str:
    """The Q line built field by field, the way any other selection is built."""
    return "Q," + ",".join(getattr(st, FIELD_ATTRS[name]) for name in fields) + ",\r\n"


class _Session:
    """Just what the hub's stream touches of a Level 1 session."""

    port = "level1"

    def __init__(self, hub: Hub, fields: tuple[str, ...] = DEFAULT_UPDATE_FIELDS) -> None:
        self.formatter = hub.formatters.get(fields)
        self.out: list[str] = []
        self.watches: dict[str, bool] = {}


def _hub(symbols: int = 3) -> Hub:
    config = SimulatorConfig(level1_port=0, level2_port=0, admin_port=0, lookup_port=0,
                             symbols=[f"S{i}" for i in range(symbols)], rate=1000.0, seed=7)
    hub = Hub(config)
    hub.link.connected = True
    return hub


def test_default_line_from_prejoined_parts_matches_the_field_by_field_line_over_days() -> None:
    text = TimeText()
    market = SyntheticMarket([SymbolState(f"S{i}", i, text, 100) for i in range(4)], seed=3)
    formatter = UpdateFormatter(DEFAULT_UPDATE_FIELDS)
    for day in range(3):  # day roll-overs rebuild the volume and open/high/low/close parts
        start = MONDAY_10AM + day * 86_400_000_000
        for i, st in enumerate(market.pick(3000, start)):
            market.step(st, start + i * 700)
            assert formatter.update(st) == _generic_line(st)


def test_stream_queues_the_default_line_for_a_lone_default_watcher() -> None:
    hub = _hub(1)
    st = hub.states["S0"]
    session = _Session(hub)
    hub.watch_l1(session, st, trades_only=False)  # type: ignore[arg-type]
    assert st.l1_append is not None
    t = hub.clock.now()
    for _ in range(500):
        hub.synthetic_batch(1, t, t + 1000)
        t += 1000
        assert session.out[-1] == _generic_line(st)
    assert len(session.out) == 500 and hub.stats.market_events == 500


def test_stream_routes_other_cases_through_emit_with_the_same_lines() -> None:
    hub = _hub(1)
    st = hub.states["S0"]
    narrow_fields = select_fields(["Bid", "Ask", "Message Contents"])
    wide, narrow, trades = _Session(hub), _Session(hub, narrow_fields), _Session(hub)
    hub.watch_l1(wide, st, trades_only=False)  # type: ignore[arg-type]
    hub.watch_l1(narrow, st, trades_only=False)  # type: ignore[arg-type]
    hub.watch_l1(trades, st, trades_only=True)  # type: ignore[arg-type]
    assert st.l1_append is None
    t = hub.clock.now()
    trade_count = 0
    for _ in range(400):
        hub.synthetic_batch(1, t, t + 1000)
        t += 1000
        assert wide.out[-1] == _generic_line(st) and narrow.out[-1] == _generic_line(st, narrow_fields)
        if st.f_contents[0] in "CEO":
            trade_count += 1
            assert trades.out[-1] == wide.out[-1]
    assert len(wide.out) == len(narrow.out) == 400 and len(trades.out) == trade_count > 0


def test_route_follows_silence_unwatch_and_field_changes() -> None:
    hub = _hub(1)
    st = hub.states["S0"]
    session = _Session(hub)
    hub.watch_l1(session, st, trades_only=False)  # type: ignore[arg-type]
    session.watches[st.symbol] = False
    assert st.l1_append is not None
    st.silenced = True
    hub.route(st)
    t = hub.clock.now()
    hub.synthetic_batch(50, t, t + 50_000)
    assert st.l1_append is None and session.out == []
    st.silenced = False
    hub.route(st)
    session.formatter = hub.formatters.get(select_fields(["Bid"]))
    hub.formatter_changed(session)  # type: ignore[arg-type]
    assert st.l1_append is None
    hub.synthetic_batch(5, t + 50_000, t + 55_000)
    assert len(session.out) == 5 and session.out[-1] == f"Q,S0,{st.f_bid},\r\n"
    hub.unwatch_l1(session, st)  # type: ignore[arg-type]
    assert st.l1_append is None and st.l1_watchers == []


def test_events_of_a_batch_get_increasing_times_within_the_batch() -> None:
    hub = _hub(1)
    st = hub.states["S0"]
    t = MONDAY_10AM
    hub.synthetic_batch(100, t, t + 5000)
    assert st.bid_time_us <= t + 5000 or st.ask_time_us <= t + 5000
    times = [tick.time_us for tick in st.history]
    assert times == sorted(times) and all(t < x <= t + 5000 for x in times)


def test_pick_returns_the_count_asked_for_even_above_the_deck_size() -> None:
    text = TimeText()
    market = SyntheticMarket([SymbolState(f"S{i}", i, text, 10) for i in range(20)], seed=1)
    for count in (0, 1, 5000, 8192, 8193, 40_000):
        assert len(market.pick(count, MONDAY_10AM)) == count


def test_trade_tags_spread_conditions_and_centers_over_the_table() -> None:
    odd = trade_tags("O", _REGULAR_ODD_LOT_CONDITIONS)
    extended = trade_tags("E", _EXTENDED_CONDITIONS)
    assert len(odd) == len(extended) == 1024
    assert {row[1] for row in odd} == set(_REGULAR_ODD_LOT_CONDITIONS)
    assert {row[1] for row in extended} == set(_EXTENDED_CONDITIONS)
    assert {row[2] for row in odd} == set(MARKET_CENTERS)
    assert all(row[0] == "E" and row[3] == "Eav" and row[4] == "Ebv" for row in extended)


def test_step_flags_match_the_trade_letters() -> None:
    text = TimeText()
    market = SyntheticMarket([SymbolState("S0", 0, text, 10)], seed=5)
    st = market.states[0]
    for i in range(2000):
        flags = market.step(st, MONDAY_10AM + i)
        assert bool(flags & TRADE) == (st.f_contents[0] in "CEO")
