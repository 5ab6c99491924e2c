"""The storage side of the end-of-day completeness check: a day's stored trades, and the verdicts.

The check itself (what to compare, when, and what to backfill) lives in
``runtime/completeness/``; this module is the SQL it needs, behind named functions, and
the record it keeps (table ``day_completeness``, migration 7). Counts are taken without
FINAL: the writer stores each trade once, so ``count()`` and ``sum(size)`` are exact, and
a doubled row is exactly what the check must see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date
from typing import Literal

from events import Trade
from storage.rows import to_batches
from storage.store import Store, sql_string

Verdict = Literal["complete", "incomplete", "excess"]
VERDICTS: tuple[Verdict, ...] = ("complete", "incomplete", "excess")


@dataclass(frozen=True, slots=True)
class DayTotals:
    """One symbol's stored trades in one day: volume (sum of sizes), rows, and the highest
    cumulative volume (Total Volume) they carry, -1 when none carries one."""

    volume: int = 0
    trades: int = 0
    max_total_volume: int = -1


@dataclass(frozen=True, slots=True)
class DayCheck:
    """One row of ``day_completeness``: what was compared for (day, symbol), and the verdict.

    ``feed_volume`` and ``bar_volume`` are -1 when that reference was unknown;
    ``history_trades`` is -1 when no tick history was fetched (nothing was short).
    """

    day: date
    symbol: str
    stored_volume: int
    stored_trades: int
    feed_volume: int
    bar_volume: int
    history_trades: int
    trades_recovered: int
    volume_recovered: int
    verdict: Verdict
    detail: str
    checked_by: str
    checked_ns: int


_CHECK_COLUMNS = tuple(f.name for f in fields(DayCheck))


def day_totals(store: Store, symbols: Sequence[str], start_ns: int, end_ns: int) -> dict[str, DayTotals]:
    """Stored totals per symbol for trades with ``start_ns <= ts_ns < end_ns``; absent symbols have none."""
    if not symbols:
        return {}
    listed = ", ".join(sql_string(symbol) for symbol in symbols)
    rows = store.query(
        f"SELECT symbol, sum(size), count(), max(total_volume) FROM {store.table('trades')} "
        f"WHERE symbol IN ({listed}) AND ts_ns >= {int(start_ns)} AND ts_ns < {int(end_ns)} GROUP BY symbol"
    )
    return {str(symbol): DayTotals(int(volume), int(count), int(top)) for symbol, volume, count, top in rows}


def traded_symbols(store: Store, start_ns: int, end_ns: int) -> list[str]:
    """Symbols with at least one stored trade in ``[start_ns, end_ns)``."""
    rows = store.query(
        f"SELECT DISTINCT symbol FROM {store.table('trades')} "
        f"WHERE ts_ns >= {int(start_ns)} AND ts_ns < {int(end_ns)} ORDER BY symbol"
    )
    return [str(symbol) for (symbol,) in rows]


def trade_identities(store: Store, symbol: str, start_ns: int, end_ns: int) -> list[tuple[int, int, float, int]]:
    """``(ts_ns, total_volume, price, size)`` of every stored trade of ``symbol`` in ``[start_ns, end_ns)``,
    one per row (a doubled row appears twice)."""
    rows = store.query(
        f"SELECT ts_ns, total_volume, price, size FROM {store.table('trades')} "
        f"WHERE symbol = {sql_string(symbol)} AND ts_ns >= {int(start_ns)} AND ts_ns < {int(end_ns)}"
    )
    return [(int(ts), int(volume), float(price), int(size)) for ts, volume, price, size in rows]


def insert_trades(store: Store, trades: Iterable[Trade], stored_ns: int) -> int:
    """Insert trades that did not come over the bus (bus partition and offset -1, as a restore does);
    their ``source`` and ``seq`` must already be stamped."""
    batch = to_batches(trades, stored_ns).get("trades")
    if batch is None:
        return 0
    return store.insert_columns("trades", batch.columns, batch.data)


def save_checks(store: Store, checks: Sequence[DayCheck]) -> None:
    if checks:
        rows = [astuple(check) for check in checks]
        store.insert_columns("day_completeness", _CHECK_COLUMNS, [list(column) for column in zip(*rows)])


def latest_checks(store: Store, first: date, last: date) -> list[DayCheck]:
    """The latest check of each (day, symbol) for days ``first`` to ``last`` (inclusive), by day then symbol."""
    return _checks(store, f"day >= toDate({sql_string(first.isoformat())}) "
                          f"AND day <= toDate({sql_string(last.isoformat())})")


def recent_checks(store: Store, days: int) -> list[DayCheck]:
    """The latest check of each (day, symbol) for the ``days`` most recent days checked, by day then symbol."""
    table = store.table("day_completeness")
    return _checks(store, f"day IN (SELECT DISTINCT day FROM {table} ORDER BY day DESC LIMIT {int(days)})")


def _checks(store: Store, where: str) -> list[DayCheck]:
    names = ", ".join(_CHECK_COLUMNS)
    rows = store.query(f"SELECT {names} FROM {store.table('day_completeness')} FINAL WHERE {where} ORDER BY day, symbol")
    return [DayCheck(date.fromisoformat(str(row[0])), *row[1:]) for row in rows]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DaySummary:
    """How one checked day came out over its symbols."""

    day: date
    complete: tuple[str, ...]
    incomplete: tuple[str, ...]
    excess: tuple[str, ...]
    trades_recovered: int

    @property
    def not_complete(self) -> tuple[str, ...]:
        return self.incomplete + self.excess


def summarize_days(checks: Iterable[DayCheck]) -> list[DaySummary]:
    """Per day, oldest first: which symbols came out complete, incomplete or in excess."""
    by_day: dict[date, dict[str, list[str]]] = {}
    recovered: dict[date, int] = {}
    for check in checks:
        verdicts = by_day.setdefault(check.day, {verdict: [] for verdict in VERDICTS})
        verdicts[check.verdict].append(check.symbol)
        recovered[check.day] = recovered.get(check.day, 0) + check.trades_recovered
    return [DaySummary(day, tuple(sorted(v["complete"])), tuple(sorted(v["incomplete"])), tuple(sorted(v["excess"])),
                       recovered[day])
            for day, v in sorted(by_day.items())]
