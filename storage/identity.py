"""Which of some events storage already holds, by each table's identity (:mod:`events.kinds`).

The writer asks it about trades older than what its duplicate filter remembers (a backfill,
a second collector far behind), restore about every chunk it replays. A trade is looked up by
content: its (symbol, ts_ns) pairs, which lead the table's sorting key, then compared on the
whole identity; other events by their source's seq range within the events' time range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from events import Event
from storage.rows import IDENTITY_COLUMNS, Identity, by_content, identity_of, stored_identity
from storage.store import Store, sql_string

PAIRS_PER_QUERY = 2_000
"""(symbol, ts_ns) literals per query: about 60 KB of SQL, well inside the server's 256 KiB ``max_query_size``."""


def stored_identities(store: Store, table: str, events: Sequence[Event]) -> set[Identity]:
    """The identities of ``events`` (all of ``table``) that ``table`` holds; raises :class:`StorageError`."""
    if not events:
        return set()
    wanted = {identity_of(table, event) for event in events}
    columns = ", ".join(IDENTITY_COLUMNS[table])
    found: set[Identity] = set()
    for where in _conditions(table, events):
        rows = store.query(f"SELECT {columns} FROM {store.table(table)} WHERE {where}")
        found.update(identity for identity in (stored_identity(table, row) for row in rows) if identity in wanted)
    return found


def _conditions(table: str, events: Sequence[Event]) -> Iterable[str]:
    """WHERE clauses that together cover every stored row sharing an identity with one of ``events``."""
    if by_content(table):
        pairs = sorted({(event.symbol, event.ts_ns) for event in events})  # type: ignore[attr-defined]
        for start in range(0, len(pairs), PAIRS_PER_QUERY):
            chunk = pairs[start:start + PAIRS_PER_QUERY]
            yield f"(symbol, ts_ns) IN ({', '.join(f'({sql_string(s)}, {int(ts)})' for s, ts in chunk)})"
        return
    ranges: dict[str, list[int]] = {}
    for event in events:
        bounds = ranges.setdefault(event.source, [event.seq, event.seq])
        bounds[0], bounds[1] = min(bounds[0], event.seq), max(bounds[1], event.seq)
    times = [getattr(event, "ts_ns", 0) for event in events]
    per_source = " OR ".join(
        f"(source = {sql_string(source)} AND seq BETWEEN {low} AND {high})" for source, (low, high) in ranges.items())
    yield f"ts_ns BETWEEN {min(times)} AND {max(times)} AND ({per_source})"


def _check(tables: dict[str, tuple[str, ...]]) -> None:
    """A content identity must start with (symbol, ts_ns), the sorting key's prefix the lookup relies on."""
    for table, columns in tables.items():
        if by_content(table) and columns[:2] != ("symbol", "ts_ns"):
            raise RuntimeError(f"{table}: a content identity must start with (symbol, ts_ns), not {columns}")
        if not by_content(table) and set(columns) != {"source", "seq"}:
            raise RuntimeError(f"{table}: an identity by receipt is (source, seq), not {columns}")


_check(IDENTITY_COLUMNS)
