"""Replay of IQFeed tick-history files (lookup format) as the simulator's market.

A file holds one symbol's trades, oldest first, as the lookup port sends them:
``YYYY-MM-DD HH:MM:SS.ffffff,Last,LastSize,TotalVolume,Bid,Ask,TickID,Basis,
MarketCenter,Conditions,Aggressor,DayCode,`` with CRLF or LF endings. Captures made
with a request id or under protocol 6.2 (``<ReqID>,LH,...``) load too; blank lines and
``!ENDMSG!`` are skipped. Anything else is a :class:`ReplayFormatError` naming the line,
because silently skipping a bad row would make a replay test pass on wrong data.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from collectors.iqfeed.simulator.market import ASK, BID, TRADE, SymbolState, Tick, lot_size
from collectors.iqfeed.simulator.wire import US_PER_DAY, day_of, parse_history_timestamp, parse_price

_FIELDS = 12


class ReplayFormatError(ValueError):
    """A replay file line is not a tick-history row; the message gives file and line."""


def _parse_row(fields: list[str]) -> Tick:
    return Tick(
        time_us=parse_history_timestamp(fields[0]),
        price=parse_price(fields[1]),
        size=int(fields[2]),
        total_volume=int(fields[3]),
        bid=parse_price(fields[4]) if fields[4] else 0,
        ask=parse_price(fields[5]) if fields[5] else 0,
        tick_id=int(fields[6]),
        basis=fields[7],
        market_center=int(fields[8]) if fields[8] else 0,
        conditions=fields[9],
        aggressor=int(fields[10]) if fields[10] else 0,
        day_code=int(fields[11]) if fields[11] else 0,
    )


def _is_timestamp(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[10] == " "


def load_ticks(path: Path) -> list[Tick]:
    """All ticks of a tick-history file, in file order."""
    ticks: list[Tick] = []
    with open(path, encoding="latin-1", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split(",")
            if "!ENDMSG!" in fields[:2]:
                continue
            if not _is_timestamp(fields[0]):
                fields = fields[1:]  # a request id
            if fields and fields[0] == "LH":  # protocol 6.2 row prefix
                fields = fields[1:]
            try:
                if len(fields) < _FIELDS or any(fields[_FIELDS:]):
                    raise ValueError(f"expected {_FIELDS} fields, got {len(fields)}")
                ticks.append(_parse_row(fields))
            except ValueError as exc:
                raise ReplayFormatError(f"{path}:{number}: not a tick-history row ({exc}): {text[:80]!r}") from exc
    if not ticks:
        raise ReplayFormatError(f"{path}: no ticks")
    return ticks


def shift_to_day(ticks: list[Tick], first_day: date) -> list[Tick]:
    """The same ticks moved by whole days so that the first one falls on ``first_day``.

    Times of day stay as they were; day codes follow the new day of the month.
    """
    offset = (first_day - day_of(ticks[0].time_us)).days * US_PER_DAY
    return [t._replace(time_us=t.time_us + offset, day_code=day_of(t.time_us + offset).day) for t in ticks]


def tick_precision(ticks: list[Tick]) -> int:
    """Decimals the file's prices need: 2 when all are whole cents, else 4."""
    cents = all(t.price % 100 == 0 and t.bid % 100 == 0 and t.ask % 100 == 0 for t in ticks)
    return 2 if cents else 4


class ReplayMarket:
    """Applies replayed ticks to a symbol's Level 1 state.

    A tick is a trade with the quote at its time; the files carry no quote sizes, so a
    side's size is drawn (seeded) when its price changes and shrinks by the size traded
    against it while it stays.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def _size(self, px: int) -> int:
        return lot_size(self.rng) if px else 0

    def apply(self, st: SymbolState, tick: Tick) -> int:
        """Apply one tick; returns TRADE plus BID/ASK flags and sets Message Contents."""
        flags = TRADE
        quote = ""
        if tick.bid != st.bid or (tick.price == st.bid and st.bid_size):
            same = tick.bid == st.bid
            st.set_bid(tick.bid, max(100, st.bid_size - tick.size) if same else self._size(tick.bid), tick.time_us)
            flags |= BID
            quote = "b"
        if tick.ask != st.ask or (tick.price == st.ask and st.ask_size):
            same = tick.ask == st.ask
            st.set_ask(tick.ask, max(100, st.ask_size - tick.size) if same else self._size(tick.ask), tick.time_us)
            flags |= ASK
            quote += "a"
        letters = st.trade(
            tick.price, tick.size, tick.time_us, tick.market_center, tick.basis, tick.conditions,
            tick.aggressor, total_volume=tick.total_volume, tick_id=tick.tick_id, day_code=tick.day_code,
        )
        st.f_contents = tick.basis + quote + letters + "v"
        return flags
