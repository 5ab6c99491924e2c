"""Per-symbol order-book engine behind Level 2 (pure: no sockets, time passed in).

One book of individual orders serves all three Level 2 views, so they can never
disagree: the order view (``WOR``: ``6`` summary, ``3`` add, ``4`` update, ``5``
delete), the price-level view (``WPL``: ``7`` summary and ``0`` market-maker entries,
``8`` update, ``9`` delete) and the market-maker view (``w``: ``Z`` summary, ``2``
update), where each market maker's quote is its best price and size on each side.

Level 1 is the source of truth for the top of the book: after every Level 1 change the
stream calls :meth:`OrderBook.sync` with the new best bid and ask, and the book adds,
trims or cancels orders so that its best levels equal them exactly. A trade first
executes against the best level (:meth:`OrderBook.execute`, orders filled in priority
order). :meth:`OrderBook.noise` adds, resizes and cancels orders behind the top, so the
book lives without ever changing the Level 1 quote.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from collectors.iqfeed.simulator.wire import TimeText, price_at

BUY = "B"
SELL = "A"
SIDES = (BUY, SELL)

MARKET_MAKERS: dict[str, str] = {
    "NSDQ": "Nasdaq Execution Services",
    "ARCX": "NYSE Arca",
    "EDGX": "Cboe EDGX Exchange",
    "BATS": "Cboe BZX Exchange",
    "MEMX": "Members Exchange",
    "IEXG": "Investors Exchange",
    "GSCO": "Goldman Sachs & Co",
    "MSCO": "Morgan Stanley & Co",
}


@dataclass(slots=True)
class Order:
    order_id: int
    side: str
    price: int
    size: int
    priority: int
    mmid: str


@dataclass(slots=True)
class Level:
    price: int
    orders: list[Order]
    size: int = 0


class OrderBook:
    """Orders, price levels and market-maker quotes of one symbol, kept consistent.

    Set ``want_orders``/``want_levels``/``want_mm`` for the views someone watches; the
    book then appends each change's lines to ``out_orders``/``out_levels``/``out_mm``,
    which the caller drains.
    """

    def __init__(self, symbol: str, precision: int, tick: int, depth: int, rng: random.Random, text: TimeText) -> None:
        self.symbol = symbol
        self.precision = precision
        self.tick = tick
        self.depth = depth
        self.rng = rng
        self.text = text
        self.levels: dict[str, dict[int, Level]] = {BUY: {}, SELL: {}}
        self.orders: dict[int, Order] = {}
        self._next_order_id = 10_000_000 + rng.randrange(1_000_000) * 100
        self._next_priority = 1
        # market maker -> side -> price -> size; and each maker's last published quote
        self._mm_sizes: dict[str, dict[str, dict[int, int]]] = {m: {BUY: {}, SELL: {}} for m in MARKET_MAKERS}
        self._mm_quote: dict[str, tuple[int, int, int, int]] = {m: (0, 0, 0, 0) for m in MARKET_MAKERS}
        self._mm_time: dict[str, tuple[int, int]] = {m: (0, 0) for m in MARKET_MAKERS}
        self.want_orders = self.want_levels = self.want_mm = False
        self.out_orders: list[str] = []
        self.out_levels: list[str] = []
        self.out_mm: list[str] = []

    # -- reading -------------------------------------------------------------------

    def best(self, side: str) -> Level | None:
        """The best level of ``side`` (highest bid, lowest ask), or None when empty."""
        levels = self.levels[side]
        if not levels:
            return None
        return levels[max(levels) if side == BUY else min(levels)]

    def sorted_levels(self, side: str) -> list[Level]:
        """Levels of ``side`` from best to worst."""
        levels = self.levels[side]
        return [levels[p] for p in sorted(levels, reverse=side == BUY)]

    def mm_quote(self, mmid: str) -> tuple[int, int, int, int]:
        """``(bid, bid_size, ask, ask_size)`` of a market maker, zeros where it has none."""
        return self._mm_quote[mmid]

    # -- changes driven by Level 1 ---------------------------------------------------

    def sync(self, bid: int, bid_size: int, ask: int, ask_size: int, t_us: int) -> None:
        """Make the best bid and ask equal Level 1's, then keep the depth behind them."""
        self._conform(BUY, bid, bid_size, t_us)
        self._conform(SELL, ask, ask_size, t_us)
        self._fill_depth(BUY, t_us)
        self._fill_depth(SELL, t_us)

    def execute(self, side: str, size: int, t_us: int) -> int:
        """Fill up to ``size`` against the best level of ``side`` in priority order; returns the size filled."""
        level = self.best(side)
        if level is None:
            return 0
        filled = 0
        while size > filled and level.orders:
            order = level.orders[0]
            take = min(order.size, size - filled)
            filled += take
            if take == order.size:
                self._remove_order(order, t_us)
            else:
                self._resize_order(order, order.size - take, t_us)
        return filled

    def noise(self, t_us: int) -> None:
        """One random add, resize or cancel behind the best level (the top stays as it is)."""
        rnd = self.rng
        side = BUY if rnd.random() < 0.5 else SELL
        behind = self.sorted_levels(side)[1:]
        if not behind:
            return
        level = behind[int(rnd.random() * len(behind))]
        r = rnd.random()
        if r < 0.5 or len(behind) < 2:
            self._add_order(side, level.price, 100 * rnd.randint(1, 10), t_us)
        elif r < 0.75:
            order = level.orders[int(rnd.random() * len(level.orders))]
            self._resize_order(order, 100 * rnd.randint(1, 10), t_us)
        else:
            order = level.orders[int(rnd.random() * len(level.orders))]
            self._remove_order(order, t_us)

    def _conform(self, side: str, px: int, size: int, t_us: int) -> None:
        levels = self.levels[side]
        if px <= 0 or size <= 0:  # no quote on this side: the side empties
            for level_price in list(levels):
                self._remove_level(side, level_price, t_us)
            return
        better = [p for p in levels if (p > px if side == BUY else p < px)]
        for level_price in better:
            self._remove_level(side, level_price, t_us)
        level = levels.get(px)
        current = level.size if level else 0
        if size > current:
            self._add_order(side, px, size - current, t_us)
        elif size < current and level is not None:
            excess = current - size
            for order in reversed(list(level.orders)):  # the newest orders leave first
                if excess <= 0:
                    break
                if order.size <= excess:
                    excess -= order.size
                    self._remove_order(order, t_us)
                else:
                    self._resize_order(order, order.size - excess, t_us)
                    excess = 0

    def _fill_depth(self, side: str, t_us: int) -> None:
        """Keep between ``depth`` and twice ``depth`` levels: refill behind, drop the farthest."""
        levels = self.levels[side]
        while levels and len(levels) < self.depth:
            worst = min(levels) if side == BUY else max(levels)
            px = worst - self.tick if side == BUY else worst + self.tick
            if px <= 0:
                return
            self._add_order(side, px, 100 * self.rng.randint(1, 20), t_us)
        while len(levels) > 2 * self.depth:
            self._remove_level(side, min(levels) if side == BUY else max(levels), t_us)

    def _remove_level(self, side: str, px: int, t_us: int) -> None:
        for order in list(self.levels[side][px].orders):
            self._remove_order(order, t_us)

    # -- order primitives: every change goes through these three -------------------------

    def _add_order(self, side: str, px: int, size: int, t_us: int) -> None:
        mmid = _MMIDS[int(self.rng.random() * len(_MMIDS))]
        order = Order(self._next_order_id, side, px, size, self._next_priority, mmid)
        self._next_order_id += 1
        self._next_priority += 1
        self.orders[order.order_id] = order
        level = self.levels[side].get(px)
        if level is None:
            level = self.levels[side][px] = Level(px, [])
        level.orders.append(order)
        level.size += size
        if self.want_orders:
            self.out_orders.append(self._order_line("3", order, t_us))
        self._level_changed(side, level, t_us)
        self._mm_changed(order.mmid, side, px, size, t_us)

    def _resize_order(self, order: Order, size: int, t_us: int) -> None:
        level = self.levels[order.side][order.price]
        delta = size - order.size
        order.size = size
        level.size += delta
        if self.want_orders:
            self.out_orders.append(self._order_line("4", order, t_us))
        self._level_changed(order.side, level, t_us)
        self._mm_changed(order.mmid, order.side, order.price, delta, t_us)

    def _remove_order(self, order: Order, t_us: int) -> None:
        side, px = order.side, order.price
        level = self.levels[side][px]
        level.orders.remove(order)
        level.size -= order.size
        del self.orders[order.order_id]
        if self.want_orders:
            self.out_orders.append(
                f"5,{self.symbol},{order.order_id},,{side},{self.text.hms_us(t_us)},{self.text.iso_date(t_us)},\r\n"
            )
        if not level.orders:
            del self.levels[side][px]
            if self.want_levels:
                self.out_levels.append(
                    f"9,{self.symbol},{side},{price_at(px, self.precision)},"
                    f"{self.text.hms_us(t_us)},{self.text.iso_date(t_us)},\r\n"
                )
        else:
            self._level_changed(side, level, t_us)
        self._mm_changed(order.mmid, side, px, -order.size, t_us)

    def _level_changed(self, side: str, level: Level, t_us: int) -> None:
        if self.want_levels:
            self.out_levels.append(self._level_line("8", side, level, t_us))

    def _mm_changed(self, mmid: str, side: str, px: int, delta: int, t_us: int) -> None:
        sizes = self._mm_sizes[mmid][side]
        left = sizes.get(px, 0) + delta
        if left > 0:
            sizes[px] = left
        else:
            sizes.pop(px, None)
        bids, asks = self._mm_sizes[mmid][BUY], self._mm_sizes[mmid][SELL]
        bid = max(bids) if bids else 0
        ask = min(asks) if asks else 0
        quote = (bid, bids.get(bid, 0), ask, asks.get(ask, 0))
        old = self._mm_quote[mmid]
        if quote == old:
            return
        bid_time, ask_time = self._mm_time[mmid]
        if quote[:2] != old[:2]:
            bid_time = t_us
        if quote[2:] != old[2:]:
            ask_time = t_us
        self._mm_quote[mmid] = quote
        self._mm_time[mmid] = (bid_time, ask_time)
        if self.want_mm:
            self.out_mm.append(self._mm_line("2", mmid, t_us, "T"))

    # -- lines ---------------------------------------------------------------------------

    def _order_line(self, kind: str, order: Order, t_us: int, mmid: str = "", order_id: str | None = None) -> str:
        oid = str(order.order_id) if order_id is None else order_id
        return (
            f"{kind},{self.symbol},{oid},{mmid},{order.side},{price_at(order.price, self.precision)},"
            f"{order.size},{order.priority},{self.precision},{self.text.hms_us(t_us)},{self.text.iso_date(t_us)},\r\n"
        )

    def _level_line(self, kind: str, side: str, level: Level, t_us: int) -> str:
        return (
            f"{kind},{self.symbol},{side},{price_at(level.price, self.precision)},{level.size},"
            f"{len(level.orders)},{self.precision},{self.text.hms_us(t_us)},{self.text.iso_date(t_us)},\r\n"
        )

    def _mm_line(self, kind: str, mmid: str, t_us: int, end_of_group: str) -> str:
        bid, bid_size, ask, ask_size = self._mm_quote[mmid]
        bid_time, ask_time = self._mm_time[mmid]
        return (
            f"{kind},{self.symbol},{mmid},{price_at(bid, self.precision)},{price_at(ask, self.precision)},"
            f"{bid_size},{ask_size},{self.text.hms_us(bid_time or t_us)},{self.text.iso_date(t_us)},52,"
            f"{self.text.hms_us(ask_time or t_us)},{'T' if bid_size else 'F'},{'T' if ask_size else 'F'},"
            f"{end_of_group},\r\n"
        )

    def snapshot_orders(self, t_us: int) -> list[str]:
        """``6`` lines: every order, bids then asks, best level first, in priority order."""
        return [
            self._order_line("6", order, t_us)
            for side in SIDES
            for level in self.sorted_levels(side)
            for order in level.orders
        ]

    def snapshot_levels(self, t_us: int) -> list[str]:
        """``7`` lines for every level, each followed by ``0`` lines: the market makers quoting at it."""
        out: list[str] = []
        for side in SIDES:
            for level in self.sorted_levels(side):
                out.append(self._level_line("7", side, level, t_us))
                by_maker: dict[str, Order] = {}
                for order in level.orders:
                    first = by_maker.get(order.mmid)
                    if first is None:
                        by_maker[order.mmid] = Order(0, side, level.price, order.size, order.priority, order.mmid)
                    else:
                        first.size += order.size
                for mmid, entry in by_maker.items():
                    out.append(self._order_line("0", entry, t_us, mmid=mmid, order_id=""))
        return out

    def snapshot_mm(self, t_us: int) -> list[str]:
        """``Z`` lines, one per market maker with a quote; the last ends the group (``T``)."""
        makers = [m for m in MARKET_MAKERS if any(self._mm_quote[m])]
        return [self._mm_line("Z", m, t_us, "T" if i == len(makers) - 1 else "F") for i, m in enumerate(makers)]

    def clear_lines(self) -> list[str]:
        """``S,CLEAR DEPTH`` for both sides: a client drops its copy before a new summary."""
        return [f"S,CLEAR DEPTH,{self.symbol},{side},\r\n" for side in SIDES]


_MMIDS = tuple(MARKET_MAKERS)
