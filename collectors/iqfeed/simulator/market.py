"""Per-symbol market state and the seeded synthetic random-walk market (pure, no I/O).

:class:`SymbolState` is the Level 1 picture of one symbol. It keeps numbers for logic
and, for the fields every default ``Q`` line carries, ready text, so that formatting a
line is one attribute fetch per field. Rare fields are properties computed only when a
client selected them. Both market sources (synthetic and replay) change a state only
through :meth:`SymbolState.trade`, :meth:`SymbolState.set_bid` and
:meth:`SymbolState.set_ask`, so daily roll-over, open/high/low and VWAP live in one
place.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

from collectors.iqfeed.simulator.fields import FUNDAMENTAL_FIELDS
from collectors.iqfeed.simulator.wire import PRICE_SCALE, PRICE_TEXT, SIZE_TEXT, US_PER_DAY, US_PER_SECOND, TimeText, day_of, price

if TYPE_CHECKING:
    from collectors.iqfeed.simulator.book import OrderBook

# Flags of one market event.
TRADE = 1
BID = 2
ASK = 4

CENT = PRICE_SCALE // 100
_REGULAR_OPEN_US = (9 * 3600 + 30 * 60) * US_PER_SECOND
_REGULAR_CLOSE_US = 16 * 3600 * US_PER_SECOND
# Market centers and condition codes seen in real IQFeed tick histories.
MARKET_CENTERS = (19, 19, 19, 24, 24, 11, 11, 18, 187, 10, 153, 12, 164)
_REGULAR_CONDITIONS = ("01", "01", "01", "3D")
_REGULAR_ODD_LOT_CONDITIONS = ("87", "87", "3D87")
_EXTENDED_CONDITIONS = ("17", "17", "173D")
_EXTENDED_ODD_LOT_CONDITIONS = ("8717", "873D17")


class Tick(NamedTuple):
    """One trade as the lookup port reports it (the tick-history row's fields)."""

    time_us: int
    price: int
    size: int
    total_volume: int
    bid: int
    ask: int
    tick_id: int
    basis: str
    market_center: int
    conditions: str
    aggressor: int
    day_code: int


# tuple.__new__ skips NamedTuple's keyword-aware constructor: a trade is recorded per trade.
_new_tick = tuple.__new__
NO_TRADE = Tick(0, 0, 0, 0, 0, 0, 0, "", 0, "", 0, 0)


def regular_session(local_us: int) -> bool:
    """True during the regular US equity session (weekday 09:30-16:00 Eastern)."""
    day_number, tod = divmod(local_us, US_PER_DAY)
    weekday = (day_number + 3) % 7  # 1970-01-01 was a Thursday
    return weekday < 5 and _REGULAR_OPEN_US <= tod < _REGULAR_CLOSE_US


def _signed(units: int) -> str:
    return ("-" if units < 0 else "") + price(abs(units))


class SymbolState:
    """Level 1 state of one symbol: numbers for logic, text for the hot fields."""

    __slots__ = (
        "symbol", "index", "text", "precision", "tick", "history", "l1_watchers", "l2_watchers", "book",
        "silenced", "base", "day", "day_of_month", "last", "prev_last", "last_tick", "q_tick", "ext_tick",
        "tick_id", "trades", "volume", "prev_volume", "notional", "open", "high", "low", "close", "bid",
        "bid_size", "bid_time_us", "ask", "ask_size", "ask_time_us", "f_symbol", "f_last", "f_bid", "f_bid_size",
        "f_ask", "f_ask_size", "f_open", "f_high", "f_low", "f_close", "f_contents", "f_conds", "f_trade_part",
        "f_ohlc", "l1_append",
    )

    f_empty = ""
    f_delay = ""
    f_exchange_id = "5"
    f_fraction_code = "14"
    f_restricted = "N"
    f_bid_mc = ""
    f_ask_mc = ""
    f_bid_change = ""
    f_ask_change = ""

    def __init__(self, symbol: str, index: int, text: TimeText, history_limit: int, precision: int = 2) -> None:
        self.symbol = symbol
        self.index = index
        self.text = text
        self.precision = precision
        self.tick = CENT
        self.history: deque[Tick] = deque(maxlen=history_limit)
        # Subscribers are kept here so the stream finds them with one attribute fetch.
        self.l1_watchers: list[tuple[object, bool]] = []
        # The stream's fast path: the one default watcher's queue (set by Hub.route).
        self.l1_append: Callable[[str], None] | None = None
        self.l2_watchers: dict[str, list[object]] = {"orders": [], "levels": [], "mm": []}
        self.book: OrderBook | None = None
        self.silenced = False
        self.base = 0
        self.day = -1
        self.day_of_month = 0
        self.last = 0
        self.prev_last = 0
        # The last trade, the last qualified (form C) and the last extended-hours (form E)
        # trade: one tuple each, shared with the history, instead of a field per detail.
        self.last_tick = self.q_tick = self.ext_tick = NO_TRADE
        self.tick_id = 0
        self.trades = 0
        self.volume = 0
        self.prev_volume = 0
        self.notional = 0
        self.open = 0
        self.high = 0
        self.low = 0
        self.close = 0
        self.bid = 0
        self.bid_size = 0
        self.bid_time_us = 0
        self.ask = 0
        self.ask_size = 0
        self.ask_time_us = 0
        self.f_symbol = symbol
        self.f_last = ""
        self.f_bid = self.f_bid_size = self.f_ask = self.f_ask_size = ""
        self.f_open = self.f_high = self.f_low = self.f_close = ""
        self.f_contents = ""
        self.f_conds = ""
        # Pre-joined runs of the default Q line, rebuilt only when one of their fields changes
        # (see fields.DEFAULT_UPDATE_FIELDS): Symbol..Total Volume, and Open..Close.
        self.f_trade_part = f"{symbol},,,,,0"
        self.f_ohlc = ",,,"

    # -- changes -------------------------------------------------------------------

    def start_day(self, day_number: int) -> None:
        """Roll daily fields over: yesterday's last becomes the close."""
        if self.day >= 0 and self.last:
            self.close = self.last
            self.f_close = price(self.last)
        self.day = day_number
        self.day_of_month = day_of(day_number * US_PER_DAY).day
        self.prev_volume = self.volume
        self.volume = self.trades = self.notional = 0
        self.open = self.high = self.low = 0
        self.f_open = self.f_high = self.f_low = ""
        self.f_trade_part = f"{self.symbol},{self.f_last},{self.f_last_size},{self.f_last_time},{self.f_last_mc},0"
        self.f_ohlc = f",,,{self.f_close}"

    def set_close(self, px: int) -> None:
        """Set the previous session's close (the synthetic market's starting price)."""
        self.close = px
        self.f_close = price(px)
        self.f_ohlc = f"{self.f_open},{self.f_high},{self.f_low},{self.f_close}"

    def trade(
        self,
        px: int,
        size: int,
        t_us: int,
        market_center: int,
        basis: str,
        conds: str,
        aggressor: int,
        total_volume: int | None = None,
        tick_id: int | None = None,
        day_code: int | None = None,
    ) -> str:
        """Record a trade; returns the open/high/low letters it set (``o``, ``h``, ``l``).

        A replay passes the file's total volume, tick id and day code; the synthetic
        market lets the state count them. A quarter of the synthetic stream is trades,
        so this keeps to what the default ``Q`` line needs: the trade's details live in
        one tuple (``last_tick``, also the history row) and the fields derived from them
        are computed when a client selects them.
        """
        if t_us // US_PER_DAY != self.day:
            self.start_day(t_us // US_PER_DAY)
        last = self.prev_last = self.last
        if px != last:
            self.last = px
            f_last = self.f_last = PRICE_TEXT.get(px) or price(px)
        else:
            f_last = self.f_last
        if tick_id is None:
            tick_id = self.tick_id + 1
        self.tick_id = tick_id
        if total_volume is None:
            total_volume = self.volume + size
        self.volume = total_volume
        self.trades += 1
        self.notional += px * size
        tick = self.last_tick = _new_tick(Tick, (
            t_us, px, size, total_volume, self.bid, self.ask, tick_id, basis, market_center, conds, aggressor,
            self.day_of_month if day_code is None else day_code,
        ))
        self.history.append(tick)
        self.f_trade_part = f"{self.symbol},{f_last},{size},{self.text.hms_us(t_us)},{market_center},{total_volume}"
        self.f_conds = conds
        if basis == "C":
            self.q_tick = tick
            # high is 0 until the day's first qualified trade, so that one always enters
            if px > self.high or px < self.low:
                return self._new_extreme(px, f_last)
        elif basis == "E":
            self.ext_tick = tick
        return ""

    def _new_extreme(self, px: int, f_last: str) -> str:
        """A qualified trade that opens the day or makes a new high or low."""
        letters = ""
        if not self.open:
            self.open = px
            self.f_open = f_last
            letters = "o"
        if px > self.high:
            self.high = px
            self.f_high = f_last
            letters += "h"
        if px < self.low or not self.low:
            self.low = px
            self.f_low = f_last
            letters += "l"
        self.f_ohlc = f"{self.f_open},{self.f_high},{self.f_low},{self.f_close}"
        return letters

    def set_bid(self, px: int, size: int, t_us: int) -> None:
        if px != self.bid or not self.f_bid:
            self.bid = px
            self.f_bid = price(px)
        self.bid_size = size
        self.f_bid_size = SIZE_TEXT[size] if size < 100_001 else str(size)
        self.bid_time_us = t_us

    def set_ask(self, px: int, size: int, t_us: int) -> None:
        if px != self.ask or not self.f_ask:
            self.ask = px
            self.f_ask = price(px)
        self.ask_size = size
        self.f_ask_size = SIZE_TEXT[size] if size < 100_001 else str(size)
        self.ask_time_us = t_us

    # -- the last trade's details --------------------------------------------------

    @property
    def last_size(self) -> int:
        return self.last_tick.size

    @property
    def last_time_us(self) -> int:
        return self.last_tick.time_us

    @property
    def aggressor(self) -> int:
        """1 buyer-initiated, 2 seller-initiated (IQFeed's Most Recent Trade Aggressor)."""
        return self.last_tick.aggressor

    # -- rare fields, computed only when a client selected them ----------------------

    @property
    def f_last_size(self) -> str:
        return str(self.last_tick.size) if self.last_tick.time_us else ""

    @property
    def f_last_time(self) -> str:
        return self.text.hms_us(self.last_tick.time_us) if self.last_tick.time_us else ""

    @property
    def f_last_mc(self) -> str:
        return str(self.last_tick.market_center) if self.last_tick.time_us else ""

    @property
    def f_volume(self) -> str:
        return str(self.volume)

    @property
    def f_bid_time(self) -> str:
        return self.text.hms_us(self.bid_time_us) if self.bid_time_us else ""

    @property
    def f_ask_time(self) -> str:
        return self.text.hms_us(self.ask_time_us) if self.ask_time_us else ""

    @property
    def f_tick(self) -> str:
        """IQFeed's tick direction: 173 up, 175 down, 183 unchanged."""
        if not self.last_tick.time_us:
            return ""
        return "173" if self.last > self.prev_last else "175" if self.last < self.prev_last else "183"

    @property
    def f_tick_id(self) -> str:
        return str(self.tick_id) if self.tick_id else ""

    @property
    def f_trades(self) -> str:
        return str(self.trades)

    @property
    def f_vwap(self) -> str:
        return price(self.notional // self.volume) if self.volume else ""

    @property
    def f_last_date(self) -> str:
        return self.text.mdy_date(self.last_tick.time_us) if self.last_tick.time_us else ""

    @property
    def f_day_code(self) -> str:
        return str(self.last_tick.day_code) if self.last_tick.time_us else ""

    @property
    def f_aggressor(self) -> str:
        return str(self.last_tick.aggressor) if self.last_tick.time_us else ""

    @property
    def f_q_last(self) -> str:
        return price(self.q_tick.price) if self.q_tick.price else ""

    @property
    def f_q_size(self) -> str:
        return str(self.q_tick.size) if self.q_tick.price else ""

    @property
    def f_q_time(self) -> str:
        return self.text.hms_us(self.q_tick.time_us) if self.q_tick.price else ""

    @property
    def f_q_date(self) -> str:
        return self.text.mdy_date(self.q_tick.time_us) if self.q_tick.price else ""

    @property
    def f_q_mc(self) -> str:
        return str(self.q_tick.market_center) if self.q_tick.price else ""

    @property
    def f_ext_last(self) -> str:
        return price(self.ext_tick.price) if self.ext_tick.price else ""

    @property
    def f_ext_size(self) -> str:
        return str(self.ext_tick.size) if self.ext_tick.price else ""

    @property
    def f_ext_time(self) -> str:
        return self.text.hms_us(self.ext_tick.time_us) if self.ext_tick.price else ""

    @property
    def f_ext_date(self) -> str:
        return self.text.mdy_date(self.ext_tick.time_us) if self.ext_tick.price else ""

    @property
    def f_ext_mc(self) -> str:
        return str(self.ext_tick.market_center) if self.ext_tick.price else ""

    @property
    def f_ext_change(self) -> str:
        ext = self.ext_tick.price
        return _signed(ext - self.close) if ext and self.close else ""

    @property
    def f_ext_difference(self) -> str:
        ext, qualified = self.ext_tick.price, self.q_tick.price
        return _signed(ext - qualified) if ext and qualified else ""

    @property
    def f_change(self) -> str:
        return _signed(self.last - self.close) if self.last and self.close else ""

    @property
    def f_percent_change(self) -> str:
        return f"{(self.last - self.close) * 100 / self.close:.3f}" if self.last and self.close else ""

    @property
    def f_change_from_open(self) -> str:
        return _signed(self.last - self.open) if self.last and self.open else ""

    @property
    def f_range(self) -> str:
        return price(self.high - self.low) if self.high else ""

    @property
    def f_spread(self) -> str:
        return price(self.ask - self.bid) if self.bid and self.ask else ""

    @property
    def f_precision(self) -> str:
        return str(self.precision)

    @property
    def f_prev_volume(self) -> str:
        return str(self.prev_volume)

    @property
    def f_market_open(self) -> str:
        return "1" if regular_session(self.last_time_us or self.bid_time_us) else "0"

    @property
    def f_market_cap(self) -> str:
        return f"{self._shares() * (self.last or self.base) / PRICE_SCALE / 1e6:.1f}" if self.base or self.last else ""

    @property
    def f_pe(self) -> str:
        return f"{12 + self.index % 30}.{self.index % 10}"

    def _shares(self) -> int:
        return 50_000_000 + (self.index * 7_919_351) % 5_000_000_000

    def fundamentals(self) -> str:
        """An ``F`` line: the full fundamental layout with a plausible subset filled."""
        ref = self.base or self.last or self.bid
        values = dict.fromkeys(FUNDAMENTAL_FIELDS, "")
        values.update({
            "Symbol": self.symbol,
            "Exchange ID": self.f_exchange_id,
            "PE": self.f_pe,
            "Average Volume": str(1_000_000 + (self.index * 104_729) % 40_000_000),
            "52 Week High": price(ref * 13 // 10) if ref else "",
            "52 Week Low": price(ref * 7 // 10) if ref else "",
            "Company Name": f"{self.symbol} SIMULATED INC",
            "Common Shares Outstanding": str(self._shares() // 1000),
            "Format Code": "14",
            "Precision": "4",
            "SIC": "7372",
            "Security Type": "1",
            "Listed Market": "7",
            "NAICS": "511210",
            "Minimum Tick Size": "0.01",
            "Security SubType": "0",
        })
        return "F," + ",".join(values[name] for name in FUNDAMENTAL_FIELDS) + ",\r\n"


# Quote sizes as a quantile table: round lots, mostly small (index with a uniform draw).
LOTS: tuple[int, ...] = tuple(100 * (1 + int((i / 1024) ** 3 * 30)) for i in range(1024))
# Trade sizes: a fifth odd lots (1..99), the rest round lots skewed small.
TRADE_SIZES: tuple[int, ...] = tuple(
    1 + (i * 99) // 205 if i < 205 else 100 * (1 + int(((i - 205) / 819) ** 3 * 20)) for i in range(1024)
)


def lot_size(rnd: random.Random) -> int:
    """A quote size drawn from :data:`LOTS`."""
    return LOTS[int(rnd.random() * 1024)]


_DECK_SIZE = 1 << 14
_BY_INDEX = attrgetter("index")

# What a trade is tagged with: (basis, conditions, market center, Message Contents at the
# ask, at the bid), 1024 entries a table, indexed with a uniform draw. One pair of tables
# (odd lot, round lot) for the regular session and one for the extended hours; the tables
# repeat codes in the proportions seen in real data.
TradeTags = tuple[str, str, int, str, str]


def trade_tags(basis: str, conditions: tuple[str, ...]) -> tuple[TradeTags, ...]:
    """1024 trade tags: conditions and market centers spread over the table's range."""
    rows = []
    for i in range(1024):
        r = (i + 0.5) / 1024
        center = MARKET_CENTERS[int(r * 7919) % len(MARKET_CENTERS)]
        rows.append((basis, conditions[int(r * len(conditions))], center, basis + "av", basis + "bv"))
    return tuple(rows)


_REGULAR_TAGS = (trade_tags("O", _REGULAR_ODD_LOT_CONDITIONS), trade_tags("C", _REGULAR_CONDITIONS))
_EXTENDED_TAGS = (trade_tags("O", _EXTENDED_ODD_LOT_CONDITIONS), trade_tags("E", _EXTENDED_CONDITIONS))


class SyntheticMarket:
    """A seeded random-walk market with a realistic trade/quote mix and bursts.

    About a quarter of events are trades (at the bid or ask, round and odd lots, with
    condition codes and market centers seen in real data); the rest change one side's
    size, move one side, or shift both sides (the mid-price walk). Activity is skewed
    across symbols (a few symbols are much busier) and, now and then, one symbol bursts
    to many times its usual rate for a few seconds. The total event rate is set by the
    caller through :meth:`pick`.
    """

    TRADE_SHARE = 0.25

    def __init__(self, states: list[SymbolState], seed: int, now_us: int = 0) -> None:
        """Give every symbol a price, spread and quote as of ``now_us``."""
        self.states = states
        self.rng = random.Random(seed)
        self._random = self.rng.random
        self._bits = self.rng.getrandbits
        self._session_second = -1
        self._tags = _EXTENDED_TAGS
        rnd = self.rng
        self._base_weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(states))]
        rnd.shuffle(self._base_weights)
        self._bursts: dict[int, tuple[int, float]] = {}
        self._next_burst_us = 0
        self._cum_weights: list[float] = []
        self._deck: list[SymbolState] = []
        self._reweigh()
        for st in states:
            base = round(math.exp(rnd.uniform(math.log(5), math.log(500))) * 100) * CENT
            st.base = base
            st.set_close(base)
            half_spread = CENT * (1 if base < 50 * PRICE_SCALE else rnd.randint(1, 3))
            st.set_bid(base - half_spread, lot_size(rnd), now_us)
            st.set_ask(base + half_spread, lot_size(rnd), now_us)
            st.tick_id = rnd.randint(1_000, 90_000)

    def _reweigh(self) -> None:
        weights = list(self._base_weights)
        for index, (_, factor) in self._bursts.items():
            weights[index] *= factor
        self._cum_weights = list(itertools.accumulate(weights))

    def pick(self, count: int, now_us: int) -> list[SymbolState]:
        """The symbols of the next ``count`` events, drawn by activity weight, grouped by symbol.

        Draws come from a deck of weighted samples rebuilt once a second (when bursts
        change), read from a random offset: one slice instead of a weighted draw per event.
        A count near the deck's size or above (a batch that caught up after a slow one) is
        several slices, each from its own random offset.

        The draws are then sorted by symbol, so that a symbol's events in one batch come
        one after another: its state is still in the CPU cache for the second and later
        ones. On this machine that is worth a fifth of the stream's CPU when the cache is
        contended. A batch covers at most a few milliseconds, so the only thing a client
        could tell is that within such a slice lines are grouped by symbol; each symbol's
        own sequence of events is drawn exactly as before.
        """
        if now_us >= self._next_burst_us:
            self._update_bursts(now_us)
        deck = self._deck
        chunk = len(deck) // 2
        if count <= chunk:
            start = int(self._random() * (len(deck) - count))
            picks = deck[start : start + count]
        else:
            picks = []
            while count > 0:
                take = min(count, chunk)
                start = int(self._random() * (len(deck) - take))
                picks += deck[start : start + take]
                count -= take
        picks.sort(key=_BY_INDEX)
        return picks

    def _update_bursts(self, now_us: int) -> None:
        rnd = self.rng
        expired = [i for i, (end, _) in self._bursts.items() if end <= now_us]
        for index in expired:
            del self._bursts[index]
        if rnd.random() < 0.3:
            index = rnd.randrange(len(self.states))
            self._bursts[index] = (now_us + int(rnd.uniform(0.5, 3.0) * US_PER_SECOND), rnd.uniform(10, 50))
        self._next_burst_us = now_us + US_PER_SECOND
        self._reweigh()
        self._deck = rnd.choices(self.states, cum_weights=self._cum_weights, k=_DECK_SIZE)

    def step(self, st: SymbolState, t_us: int) -> int:
        """Apply one random event to ``st`` at ``t_us``; returns TRADE/BID/ASK flags.

        Sets ``st.f_contents`` to the event's Message Contents letters. This runs once per
        event, so it is written for speed: draws are integers (``getrandbits``: a 16-bit
        draw picks the kind of event and, by sub-range, the side; 10-bit draws index the
        size tables), and quote changes write the state's fields directly, with the same
        effect as :meth:`SymbolState.set_bid`/``set_ask`` (quote sizes are always below
        ``SIZE_TEXT``'s bound) without their calls.
        """
        bits = self._bits
        r = bits(16)
        if r < 16384:  # 25 %: a trade, buyer- or seller-initiated
            return self._trade(st, t_us, r < 8192)
        if r < 38502:  # 33.75 %: the size changes on one side
            size = LOTS[bits(10)]
            if r < 27443:
                st.bid_size = size
                st.f_bid_size = SIZE_TEXT[size]
                st.bid_time_us = t_us
                st.f_contents = "b"
                return BID
            st.ask_size = size
            st.f_ask_size = SIZE_TEXT[size]
            st.ask_time_us = t_us
            st.f_contents = "a"
            return ASK
        tick = st.tick
        bid = st.bid
        ask = st.ask
        if r < 53248:  # 22.5 %: one side moves a tick: narrow a wide spread, or widen a tight one
            spread = ask - bid
            narrow = spread > tick and (spread > 4 * tick or bits(1))
            size = LOTS[bits(10)]
            if r < 45875:
                if narrow:
                    bid += tick
                elif bid > 2 * tick:
                    bid -= tick
                else:
                    bid = tick
                st.bid = bid
                st.f_bid = PRICE_TEXT.get(bid) or price(bid)
                st.bid_size = size
                st.f_bid_size = SIZE_TEXT[size]
                st.bid_time_us = t_us
                st.f_contents = "b"
                return BID
            ask = st.ask = ask - tick if narrow else ask + tick
            st.f_ask = PRICE_TEXT.get(ask) or price(ask)
            st.ask_size = size
            st.f_ask_size = SIZE_TEXT[size]
            st.ask_time_us = t_us
            st.f_contents = "a"
            return ASK
        # 18.75 %: both sides shift: the mid-price walk, pulled gently back towards the base price
        if bits(16) < (36045 if bid < st.base else 29491) or bid <= 2 * tick:  # up 55 % below base, 45 % above
            move = tick
        else:
            move = -tick
        bid = st.bid = bid + move
        st.f_bid = PRICE_TEXT.get(bid) or price(bid)
        size = st.bid_size = LOTS[bits(10)]
        st.f_bid_size = SIZE_TEXT[size]
        st.bid_time_us = t_us
        ask = st.ask = ask + move
        st.f_ask = PRICE_TEXT.get(ask) or price(ask)
        size = st.ask_size = LOTS[bits(10)]
        st.f_ask_size = SIZE_TEXT[size]
        st.ask_time_us = t_us
        st.f_contents = "ba"
        return BID | ASK

    def _trade(self, st: SymbolState, t_us: int, buy: bool) -> int:
        bits = self._bits
        size = TRADE_SIZES[bits(10)]
        top = st.ask_size if buy else st.bid_size
        if size > top:
            size = top
        second = t_us // US_PER_SECOND
        if second != self._session_second:  # the session changes on a second boundary at most
            self._session_second = second
            self._tags = _REGULAR_TAGS if regular_session(t_us) else _EXTENDED_TAGS
        basis, conds, center, ask_contents, bid_contents = self._tags[size >= 100][bits(10)]
        remaining = top - size
        if buy:
            letters = st.trade(st.ask, size, t_us, center, basis, conds, 1)
            if remaining:  # what is left at the level (sizes here are below SIZE_TEXT's bound)
                st.ask_size = remaining
                st.f_ask_size = SIZE_TEXT[remaining]
                st.ask_time_us = t_us
            else:  # the level is gone: the ask moves up a tick
                st.set_ask(st.ask + st.tick, LOTS[bits(10)], t_us)
            st.f_contents = basis + "a" + letters + "v" if letters else ask_contents
            return TRADE | ASK
        letters = st.trade(st.bid, size, t_us, center, basis, conds, 2)
        if remaining:
            st.bid_size = remaining
            st.f_bid_size = SIZE_TEXT[remaining]
            st.bid_time_us = t_us
        else:
            st.set_bid(max(st.tick, st.bid - st.tick), LOTS[bits(10)], t_us)
        st.f_contents = basis + "b" + letters + "v" if letters else bid_contents
        return TRADE | BID
