"""A small market of trades for identity tests: the same prints delivered by several collectors and a backfill.

Prints come in pairs sharing a time; every other pair also shares price and size, so only the
day's cumulative volume tells its two prints apart (as 247 of the 32,627 real prints in the
shared 2021 sample). Two days, so a table holds two day partitions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec

from events import Trade
from storage.bars import Bar, query_bars
from storage.migrate import migrate
from storage.rows import IDENTITY_COLUMNS, identity_of, stored_identity, to_batches
from storage.schema import MIGRATIONS
from storage.store import Store

T0_NS = 1_780_000_000_000_000_000
DAY_NS = 86_400_000_000_000
MINUTE_NS = 60_000_000_000
SYMBOLS = ("AAPL", "MSFT")


def market(per_symbol_and_day: int = 120) -> list[Trade]:
    """The prints, each once, as one collector (``col-a@1``) received them."""
    prints: list[Trade] = []
    for day in (0, 1):
        for symbol in SYMBOLS:
            volume = 0
            for i in range(per_symbol_and_day):
                size = 100 if i % 4 != 2 else 200  # i % 4 == 1 repeats its partner's (time, price, size)
                volume += size
                prints.append(Trade(symbol=symbol, ts_ns=T0_NS + day * DAY_NS + (i // 2) * 1_500_000_000,
                                    price=100 + (i // 2 % 7) / 10, size=size, total_volume=volume,
                                    source="col-a@1", seq=len(prints) + 1, recv_ns=T0_NS))
    return prints


def delivered_as(trades: Sequence[Trade], source: str, *, backfilled: bool = False) -> list[Trade]:
    """The same prints as another collector session (or a backfill) delivers them: its own source and seqs."""
    return [msgspec.structs.replace(t, source=source, seq=i + 1, backfilled=backfilled, recv_ns=t.recv_ns + 5)
            for i, t in enumerate(trades)]


def insert(store: Store, trades: Sequence[Trade], stored_ns: int) -> None:
    for batch in to_batches(trades, stored_ns).values():
        store.insert_columns(batch.table, batch.columns, batch.data)


def expected_bars(trades: Sequence[Trade], symbol: str) -> list[Bar]:
    """1-minute bars of ``trades`` (each print once), computed here, for comparison with storage's."""
    minutes: dict[int, list[Trade]] = defaultdict(list)
    for trade in trades:
        if trade.symbol == symbol:
            minutes[trade.ts_ns // MINUTE_NS * MINUTE_NS].append(trade)
    bars = []
    for minute, group in sorted(minutes.items()):
        by_time = sorted(group, key=lambda t: t.ts_ns)  # prints sharing a time share a price: no tie to break
        bars.append(Bar(symbol, minute, by_time[0].price, max(t.price for t in group), min(t.price for t in group),
                        by_time[-1].price, sum(t.size for t in group), len(group)))
    return bars


REKEY = next(m.version for m in MIGRATIONS if m.procedure is not None)
"""The migration that re-keys trades by content identity (storage/rekey.py)."""
OLD_SCHEMA = tuple(m for m in MIGRATIONS if m.version < REKEY)
FROM_REKEY = [m.version for m in MIGRATIONS if m.version >= REKEY]
"""What migrating an old-schema database applies."""


def old_database_with_copies(store: Store) -> list[Trade]:
    """An old-schema database holding every print from collector a, most of them again from collector b,
    some backfilled by a's next session, and a redelivered batch (same source and seq). Returns the prints."""
    migrate(store, OLD_SCHEMA)
    prints = market()
    insert(store, delivered_as(prints[::3] + prints[1::3], "col-b@1"), stored_ns=1)  # b stored first
    insert(store, prints, stored_ns=2)
    insert(store, delivered_as(prints[:50] + prints[250:300], "col-a@2", backfilled=True), stored_ns=0)
    insert(store, prints[:40], stored_ns=3)  # a crash between insert and commit
    return prints


def assert_each_print_once_and_bars_exact(store: Store, prints: Sequence[Trade]) -> None:
    trades = store.table("trades")
    rows = store.query(f"SELECT {', '.join(IDENTITY_COLUMNS['trades'])} FROM {trades}")
    assert len(rows) == len(prints), "count() without FINAL is the number of prints"
    assert {stored_identity("trades", row) for row in rows} == {identity_of("trades", p) for p in prints}
    assert store.query(f"SELECT countIf(backfilled = 1), countIf(source = 'col-b@1') FROM {trades}")[0] == \
        (0, len(prints[::3] + prints[1::3]))  # a live row before a backfilled one, the first stored before later
    for symbol in SYMBOLS:
        assert query_bars(store, symbol, 0, 2**62) == expected_bars(prints, symbol)
