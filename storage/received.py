"""Which symbols have had events received since a moment: a staged rollout's evidence, in a dashboard
attached to collectors it does not own, that a stage's symbols flow end to end (received and stored).

Rows are looked up by ``recv_ns`` among events of the last ``lookback_s`` of market time: ``ts_ns``
bounds the scan to the recent day partitions (as storage/activity.py does).
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.store import Store, sql_string

EVENT_TABLES = ("trades", "quotes")


def received_since(store: Store, symbols: Sequence[str], since_ns: int,
                   lookback_s: float = 86_400.0) -> dict[str, int]:
    """Per symbol with a stored event received live at or after ``since_ns``: the latest receive time."""
    if not symbols:
        return {}
    listed = ", ".join(sql_string(s) for s in symbols)
    latest: dict[str, int] = {}
    for table in EVENT_TABLES:
        rows = store.query(
            f"SELECT symbol, max(recv_ns) FROM {store.table(table)} WHERE symbol IN ({listed}) "
            f"AND recv_ns >= {int(since_ns)} AND ts_ns >= {int(since_ns - lookback_s * 1e9)} GROUP BY symbol"
        )
        for symbol, recv in rows:
            latest[symbol] = max(latest.get(symbol, 0), int(recv))
    return latest
