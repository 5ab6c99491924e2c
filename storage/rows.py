"""Events to columnar table batches, by the registry of event kinds (:mod:`events.kinds`).

The writer, the backup restore and the tests all go through :func:`to_batches`.
``bus_partition``/``bus_offset`` say where on the bus a row came from (-1 when it did not
come from the bus, e.g. a restore).
:func:`out_of_range` names the rows holding a value their column cannot store.
:func:`identity_of` and :func:`stored_identity` give a row's identity (:mod:`events.kinds`) from an
event and from a stored row, equal for the same event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from events import Event
from events.kinds import BY_TYPE, TABLES

_ENVELOPE = ("source", "seq", "recv_ns", "stored_ns", "bus_partition", "bus_offset")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {name: (*spec.columns, *_ENVELOPE) for name, spec in TABLES.items()}
"""Insert columns per table: the registry's event columns, then the envelope."""

_ROW = {kind.type: (kind.table.name, kind.table.row) for kind in BY_TYPE.values() if kind.table is not None}


def symbol_column(table: str) -> str:
    """The SQL for a table's symbol: the column, or '' for tables of events without one (feed status)."""
    return "symbol" if TABLES[table].has_symbol else "''"


@dataclass(frozen=True)
class ColumnRange:
    """What a numeric column can hold: an integer range, or any finite float (``lo``/``hi`` None)."""

    type_name: str
    lo: int | None = None
    hi: int | None = None
    nullable: bool = False

    def holds(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.lo is None:
            return isfinite(value)
        return self.lo <= value <= self.hi  # type: ignore[operator]


_INT64 = ColumnRange("Int64", -(2**63), 2**63 - 1)
_INT64_NULL = ColumnRange("Nullable(Int64)", -(2**63), 2**63 - 1, nullable=True)
_INT32 = ColumnRange("Int32", -(2**31), 2**31 - 1)
_UINT64 = ColumnRange("UInt64", 0, 2**64 - 1)
_FLOAT64 = ColumnRange("Float64 (finite)")
_FLOAT64_NULL = ColumnRange("Nullable(Float64) (finite)", nullable=True)

# The numeric columns whose values come from the event. The driver refuses a value its column
# cannot hold, but chDB wraps it silently (2**63 + 5 is stored negative, an Int32 of 2**40 as 0)
# and stores a NaN or infinite price as 0, so every such value is checked before an insert.
# Columns filled by this module (stored_ns, bus_*, backfilled, connected) always fit.
_ENVELOPE_RANGES = {"seq": _UINT64, "recv_ns": _INT64}
COLUMN_RANGES: dict[str, dict[str, ColumnRange]] = {
    "trades": {"ts_ns": _INT64, "price": _FLOAT64, "size": _INT64, "market_center": _INT32, "tick_id": _INT64,
               "total_volume": _INT64, **_ENVELOPE_RANGES},
    "quotes": {"ts_ns": _INT64, "bid": _FLOAT64_NULL, "bid_size": _INT64_NULL, "ask": _FLOAT64_NULL,
               "ask_size": _INT64_NULL, **_ENVELOPE_RANGES},
    "depth": {"ts_ns": _INT64, "price": _FLOAT64_NULL, "size": _INT64_NULL, "order_count": _INT64_NULL,
              **_ENVELOPE_RANGES},
    "feed_status": {"ts_ns": _INT64, **_ENVELOPE_RANGES},
}


Identity = tuple[Any, ...]
"""What makes two rows of a table the same event (:attr:`events.kinds.TableSpec.identity`)."""

IDENTITY_COLUMNS: dict[str, tuple[str, ...]] = {name: spec.identity for name, spec in TABLES.items()}
_IDENTITY_OF = {name: spec.identity_of for name, spec in TABLES.items()}


def _python_type(table: str, column: str) -> type:
    """How a stored value of an identity column compares with an event's (chDB returns Int64 as text)."""
    kind = COLUMN_RANGES[table].get(column)
    if kind is None:
        return str
    return float if kind.lo is None else int


_IDENTITY_TYPES = {table: tuple(_python_type(table, c) for c in columns) for table, columns in IDENTITY_COLUMNS.items()}


def identity_of(table: str, event: Event) -> Identity:
    """The identity of ``event`` in ``table``, equal to :func:`stored_identity` of its stored row."""
    return _IDENTITY_OF[table](event)


def stored_identity(table: str, row: Sequence[Any]) -> Identity:
    """The identity of a row read as ``SELECT <IDENTITY_COLUMNS[table]>``, typed as :func:`identity_of` makes it."""
    return tuple(convert(value) for convert, value in zip(_IDENTITY_TYPES[table], row))


def by_content(table: str) -> bool:
    """Whether ``table`` identifies a row by what it is, so any collector or a backfill may deliver it."""
    return TABLES[table].by_content


def _column_fits(column: list[Any], kind: ColumnRange) -> bool:
    """Whole-column check at C speed (min/max, one float sum); the caller looks for culprits only when False."""
    values = [v for v in column if v is not None] if kind.nullable and None in column else column
    if not values:
        return True
    if kind.lo is None:
        return isfinite(sum(values))  # a NaN or infinity makes the sum non-finite (so may an overflow: then look)
    return kind.lo <= min(values) and max(values) <= kind.hi  # type: ignore[operator]


def out_of_range(batch: TableBatch) -> dict[int, str]:
    """Rows of ``batch`` holding a value their column cannot store, by index, with the reason."""
    bad: dict[int, str] = {}
    for name, kind in COLUMN_RANGES[batch.table].items():
        column = batch.data[batch.columns.index(name)]
        if _column_fits(column, kind):
            continue
        for index, value in enumerate(column):
            if not kind.holds(value) and index not in bad:
                bad[index] = f"{batch.table}.{name} = {value!r} does not fit its column type {kind.type_name}"
    return bad


def table_for(event: Event) -> str | None:
    """The table an event is stored in, or None for kinds that are not stored (heartbeats...)."""
    entry = _ROW.get(type(event))
    return entry[0] if entry else None


@dataclass
class TableBatch:
    """Rows for one table, column-wise, ready for ``Store.insert_columns``."""

    table: str
    columns: tuple[str, ...]
    data: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.data:
            self.data = [[] for _ in self.columns]

    def __len__(self) -> int:
        return len(self.data[0])


def to_batches(
    events: Iterable[Event],
    stored_ns: int,
    positions: Sequence[tuple[int, int]] | None = None,
) -> dict[str, TableBatch]:
    """Group events into one columnar batch per table.

    ``positions[i]`` is the (bus partition, offset) of ``events[i]``; without it every
    row gets (-1, -1). Events of kinds that are not stored are skipped.
    """
    batches: dict[str, TableBatch] = {}
    for index, event in enumerate(events):
        entry = _ROW.get(type(event))
        if entry is None:
            continue
        table, row_of = entry
        batch = batches.get(table)
        if batch is None:
            batch = batches[table] = TableBatch(table, TABLE_COLUMNS[table])
        partition, offset = positions[index] if positions is not None else (-1, -1)
        row = (*row_of(event), event.source, event.seq, event.recv_ns, stored_ns, partition, offset)
        for column, value in zip(batch.data, row):
            column.append(value)
    return batches
