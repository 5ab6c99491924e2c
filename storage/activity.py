"""What reached storage lately, per event table and per source: the attached dashboard's evidence that
collectors and writers it does not own are storing data.

Rows are looked up by ``stored_ns`` (when the writer inserted them) among events of the last
``lookback_s`` of market time: ``ts_ns`` bounds the scan to the recent day partitions (a replay of
older days is not seen here).
"""

from __future__ import annotations

from dataclasses import dataclass

from events.kinds import TABLES
from storage.store import Store


@dataclass(frozen=True)
class StoredActivity:
    table: str
    source: str  # the collector instance and session that received the events
    rows: int  # stored since the window's start
    last_stored_ns: int


def recent_activity(store: Store, since_ns: int, lookback_s: float = 3600.0) -> list[StoredActivity]:
    """Per (table, source): rows stored since ``since_ns`` among events at most ``lookback_s`` older than it."""
    found: list[StoredActivity] = []
    oldest_event_ns = since_ns - int(lookback_s * 1e9)
    for table in TABLES:
        rows = store.query(
            f"SELECT source, count(), max(stored_ns) FROM {store.table(table)} "
            f"WHERE ts_ns >= {int(oldest_event_ns)} AND stored_ns >= {int(since_ns)} GROUP BY source ORDER BY source"
        )
        found.extend(StoredActivity(table, str(source), int(count), int(last)) for source, count, last in rows)
    return found
