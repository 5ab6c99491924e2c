"""Small display helpers shared by the pages."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from storage.availability import StorageState


def utc(ts_ns: int | None) -> str:
    if not ts_ns or ts_ns < 0:
        return "—"
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(ts_ns: int | None, now_ns: int | None = None) -> str:
    if not ts_ns:
        return "never"
    seconds = ((now_ns or time.time_ns()) - ts_ns) / 1e9
    if seconds < 60:
        return f"{seconds:.1f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def ms(value_ns: int | None) -> float | None:
    return None if value_ns is None else round(value_ns / 1e6, 2)


def storage_banner(state: StorageState, now_ns: int | None = None) -> str | None:
    """What every page says while storage is down (None while it is ready): since when, and what still works."""
    if state.ready:
        return None
    if state.available:
        what = f"Storage not ready: schema migrations have not run yet ({state.last_error or 'first attempt pending'})."
    else:
        what = (f"Storage unavailable since {utc(state.down_since_ns)} ({age(state.down_since_ns, now_ns)}): "
                f"{state.last_error}.")
    return (f"{what} Live data, alerts and notifications carry on; events wait on the bus and "
            f"{state.pending_writes} operator and alert changes wait in memory until storage is back. "
            f"History, charts and the audit log read from storage and are unavailable meanwhile.")
