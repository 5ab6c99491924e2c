"""Small display helpers shared by the pages."""

from __future__ import annotations

import time
from datetime import datetime, timezone


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
