"""Outage windows in storage (``feed_outages``): what a process could not receive, kept past its life.

Two kinds of rows share the table. A feed connection's windows (level1, level2, admin;
local receive times) are written as they open and close, so a window is stored several
times and the latest ``recorded_ns`` is its state. A restart gap (cause ``restart``,
``start`` or ``takeover``) spans, on the feed's clock, from a symbol's last stored live
event to the moment a process watched it again: its trades were caught up from tick
history, its quotes (and depth) in between are not in storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.store import Store

_COLUMNS = ("source", "connection", "symbol", "cause", "start_ns", "end_ns", "recorded_ns")


@dataclass(frozen=True, slots=True)
class StoredOutage:
    source: str
    connection: str  # level1 / level2 / admin
    symbol: str  # empty: the whole connection
    cause: str
    start_ns: int
    end_ns: int | None  # None while the window lasts


def outage_columns(outages: Sequence[StoredOutage], recorded_ns: int) -> tuple[tuple[str, ...], list[list]]:
    """Columns and column-wise data of ``feed_outages`` rows, as ``Store.insert_columns`` and the
    write-behind queue take them."""
    return _COLUMNS, [
        [o.source for o in outages], [o.connection for o in outages], [o.symbol for o in outages],
        [o.cause for o in outages], [o.start_ns for o in outages],
        [-1 if o.end_ns is None else o.end_ns for o in outages], [recorded_ns] * len(outages),
    ]


def recent_outages(store: Store, limit: int = 200) -> list[StoredOutage]:
    """The latest state of the ``limit`` most recent windows of every process, newest first."""
    rows = store.query(
        f"SELECT source, connection, symbol, cause, start_ns, argMax(end_ns, recorded_ns) "
        f"FROM {store.table('feed_outages')} GROUP BY source, connection, symbol, cause, start_ns "
        f"ORDER BY start_ns DESC LIMIT {int(limit)}"
    )
    return [StoredOutage(source, connection, symbol, cause, int(start), None if int(end) < 0 else int(end))
            for source, connection, symbol, cause, start, end in rows]
