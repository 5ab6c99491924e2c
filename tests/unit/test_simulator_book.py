"""The order-book engine: its three Level 2 views and Level 1's top always agree."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.iqfeed.simulator.book import BUY, MARKET_MAKERS, SELL, OrderBook
from collectors.iqfeed.simulator.wire import TimeText, parse_history_timestamp, price_at

pytestmark = pytest.mark.timeout(30)

T0 = parse_history_timestamp("2021-03-01 10:00:00")
TICK = 100


def _book(seed: int = 1) -> OrderBook:
    book = OrderBook("AAPL", 2, TICK, 5, random.Random(seed), TimeText())
    book.want_orders = book.want_levels = book.want_mm = True
    return book


class ClientCopies:
    """What a client rebuilds from the Level 2 lines alone."""

    def __init__(self) -> None:
        self.orders: dict[str, tuple[str, str, int]] = {}
        self.levels: dict[tuple[str, str], tuple[int, int]] = {}
        self.makers: dict[str, tuple[str, str, int, int]] = {}

    def apply(self, book: OrderBook) -> None:
        for line in book.out_orders:
            f = line.rstrip("\r\n").split(",")
            assert len(f) in (8, 12) and f[1] == "AAPL" and f[-1] == ""
            if f[0] == "5":
                assert f[3] == "" and f[4] in (BUY, SELL)
                del self.orders[f[2]]
            else:
                assert f[0] in ("3", "4") and f[3] == "" and f[8] == "2"
                assert (f[0] == "3") == (f[2] not in self.orders)
                self.orders[f[2]] = (f[4], f[5], int(f[6]))
        for line in book.out_levels:
            f = line.rstrip("\r\n").split(",")
            if f[0] == "9":
                assert len(f) == 7
                del self.levels[(f[2], f[3])]
            else:
                assert f[0] == "8" and len(f) == 10
                self.levels[(f[2], f[3])] = (int(f[4]), int(f[5]))
        for line in book.out_mm:
            f = line.rstrip("\r\n").split(",")
            assert f[0] == "2" and len(f) == 15 and f[13] == "T"
            self.makers[f[2]] = (f[3], f[4], int(f[5]), int(f[6]))
        book.out_orders.clear()
        book.out_levels.clear()
        book.out_mm.clear()


def _check(book: OrderBook, copies: ClientCopies) -> None:
    engine_orders = {}
    for side in (BUY, SELL):
        for level in book.sorted_levels(side):
            assert level.orders, "no empty levels"
            assert level.size == sum(o.size for o in level.orders) > 0
            assert [o.priority for o in level.orders] == sorted(o.priority for o in level.orders)
            assert copies.levels[(side, price_at(level.price, 2))] == (level.size, len(level.orders))
            for o in level.orders:
                engine_orders[str(o.order_id)] = (side, price_at(o.price, 2), o.size)
    assert engine_orders == copies.orders
    assert len(copies.levels) == sum(len(book.levels[s]) for s in (BUY, SELL))
    for mmid in MARKET_MAKERS:
        bid, bid_size, ask, ask_size = book.mm_quote(mmid)
        if any((bid, bid_size, ask, ask_size)):
            assert copies.makers[mmid] == (price_at(bid, 2), price_at(ask, 2), bid_size, ask_size)
    for side in (BUY, SELL):
        best = book.best(side)
        quotes = [book.mm_quote(m) for m in MARKET_MAKERS]
        at_best = [(q[1] if side == BUY else q[3]) for q in quotes if best and (q[0] if side == BUY else q[2]) == best.price]
        if best is None:
            assert not any(q[0 if side == BUY else 2] for q in quotes)
        else:
            assert sum(at_best) == best.size  # the makers at the top add up to the top level


ops = st.lists(
    st.one_of(
        st.tuples(st.just("sync"), st.integers(1, 40), st.integers(1, 30), st.integers(1, 4), st.integers(1, 30)),
        st.tuples(st.just("execute"), st.sampled_from([BUY, SELL]), st.integers(1, 4000)),
        st.tuples(st.just("noise")),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(0, 1000))
def test_views_and_level1_stay_consistent_through_any_sequence(sequence: list[tuple], seed: int) -> None:
    book = _book(seed)
    copies = ClientCopies()
    t = T0
    for op in sequence:
        t += 1000
        if op[0] == "sync":
            _, bid_ticks, bid_lots, spread, ask_lots = op
            bid = 10_000 + bid_ticks * TICK
            ask = bid + spread * TICK
            book.sync(bid, bid_lots * 100, ask, ask_lots * 100, t)
            best_bid, best_ask = book.best(BUY), book.best(SELL)
            assert best_bid is not None and (best_bid.price, best_bid.size) == (bid, bid_lots * 100)
            assert best_ask is not None and (best_ask.price, best_ask.size) == (ask, ask_lots * 100)
            assert all(5 <= len(book.levels[side]) <= 10 for side in (BUY, SELL))
        elif op[0] == "execute":
            top = book.best(op[1])
            before = top.size if top else 0
            filled = book.execute(op[1], op[2], t)
            assert filled == min(before, op[2])
        else:
            top = (book.best(BUY), book.best(SELL))
            tops = [(lvl.price, lvl.size) if lvl else None for lvl in top]
            book.noise(t)
            assert tops == [(lvl.price, lvl.size) if lvl else None for lvl in (book.best(BUY), book.best(SELL))]
        copies.apply(book)
        _check(book, copies)


def test_a_trade_fills_orders_in_priority_order() -> None:
    book = _book()
    book.sync(10_000, 300, 10_100, 200, T0)
    book.sync(10_000, 700, 10_100, 200, T0 + 1)  # a second, later order joins the best bid
    first, second = book.best(BUY).orders  # type: ignore[union-attr]
    assert (first.size, second.size) == (300, 400)
    book.execute(BUY, 350, T0 + 2)
    assert [o.order_id for o in book.best(BUY).orders] == [second.order_id]  # type: ignore[union-attr]
    assert book.best(BUY).size == 350  # type: ignore[union-attr]


def test_shrinking_the_top_cancels_the_newest_orders_first() -> None:
    book = _book()
    book.sync(10_000, 300, 10_100, 200, T0)
    book.sync(10_000, 700, 10_100, 200, T0 + 1)
    oldest = book.best(BUY).orders[0].order_id  # type: ignore[union-attr]
    book.sync(10_000, 300, 10_100, 200, T0 + 2)
    assert [o.order_id for o in book.best(BUY).orders] == [oldest]  # type: ignore[union-attr]


def test_summaries_describe_the_whole_book() -> None:
    book = _book()
    book.sync(10_000, 300, 10_100, 200, T0)
    t = T0 + 10
    orders = book.snapshot_orders(t)
    assert len(orders) == len(book.orders) and all(line.startswith("6,AAPL,") for line in orders)
    levels = [line for line in book.snapshot_levels(t) if line.startswith("7,")]
    entries = [line.split(",") for line in book.snapshot_levels(t) if line.startswith("0,")]
    assert len(levels) == 10
    assert all(e[2] == "" and e[3] in MARKET_MAKERS for e in entries)
    assert sum(int(e[6]) for e in entries) == sum(o.size for o in book.orders.values())
    makers = book.snapshot_mm(t)
    assert makers and all(line.startswith("Z,AAPL,") for line in makers)
    assert makers[-1].split(",")[13] == "T" and all(line.split(",")[13] == "F" for line in makers[:-1])
    assert book.clear_lines() == ["S,CLEAR DEPTH,AAPL,B,\r\n", "S,CLEAR DEPTH,AAPL,A,\r\n"]


def test_no_quote_on_a_side_empties_it() -> None:
    book = _book()
    book.sync(10_000, 300, 10_100, 200, T0)
    book.sync(0, 0, 10_100, 200, T0 + 1)
    assert book.best(BUY) is None and not book.levels[BUY]
