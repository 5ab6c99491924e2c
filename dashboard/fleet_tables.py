"""The Fleet page's tables and lag plot, built from a FleetView as plain rows so they are testable without
Streamlit: collectors (with what each owns and stands by for), writers (with their lag), and the
consistency check's latest verdict per critical symbol.

An instance that stopped or went silent past ``fleet.stale_after_s`` is shown as gone since its last
status, its health blank: the health it last reported says nothing about now.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alerts.lifecycle import Alert
from dashboard.format import age
from runtime.consistency import Verdict, minute_text
from runtime.fleet_alerts import clock_text
from runtime.fleet_status import FleetView, InstanceStatus
from runtime.symbols import SymbolSpec
from storage.writer_status import WriterStatus

Row = dict[str, Any]


def state_text(view: FleetView, status: InstanceStatus | WriterStatus) -> str:
    gone = view.gone_since_ns(status)
    if gone is None:
        return "running"
    if status.state == "stopped":
        return f"stopped at {clock_text(gone)} UTC"
    return f"gone since {clock_text(gone)} UTC"


def _health(view: FleetView, status: InstanceStatus | WriterStatus) -> str:
    return status.health if view.responsive(status) else "—"


def owned_symbols(status: InstanceStatus) -> list[str]:
    """What a collector watches as its own (its share), apart from what it watches only as standby."""
    standby = set(status.standby)
    return [symbol for symbol in status.watched if symbol not in standby]


def _listed(symbols: Iterable[str], limit: int = 8) -> str:
    symbols = list(symbols)
    return ", ".join(symbols[:limit]) + (f" (+{len(symbols) - limit})" if len(symbols) > limit else "")


def collector_rows(view: FleetView) -> list[Row]:
    return [
        {"instance": s.instance_id, "state": state_text(view, s), "health": _health(view, s),
         "partitions": len(s.partitions), "wanted": s.wanted, "watched": len(s.watched),
         "owns": len(owned_symbols(s)), "stands by": _listed(s.standby),
         "unwatched": len(s.unwatched), "load": f"{len(s.watched) / s.watch_limit:.0%} of {s.watch_limit}",
         "writer lag": "—" if s.writer_lag is None else f"{s.writer_lag:,}",
         "fleet rules": "yes" if s.rules_owner else "", "standalone": "yes" if s.standalone else "",
         "updated": age(s.updated_ns, view.now_ns)}
        for s in view.instances
    ]


def writer_rows(view: FleetView) -> list[Row]:
    return [
        {"writer": w.instance_id, "runs": "in its collector" if w.embedded else "own process",
         "state": state_text(view, w), "health": _health(view, w), "partitions": len(w.partitions),
         "lag": w.lag, "lag by topic": " · ".join(f"{topic.rsplit('.', 1)[-1]} {lag:,}"
                                                 for topic, lag in w.lag_by_topic.items()),
         "rows/s": w.rows_per_s, "stored": w.stored, "last error": w.last_error,
         "updated": age(w.updated_ns, view.now_ns)}
        for w in view.writers
    ]


def consistency_rows(desired: Iterable[SymbolSpec], verdicts: Mapping[str, Verdict], alerts: Iterable[Alert]) -> list[Row]:
    """Per critical symbol: the latest minute the check compared (known only where it runs: the rules
    owner's process) and the ``feed_inconsistent`` alert, which every process reads from storage."""
    inconsistent = {a.subject: a for a in alerts if a.rule == "feed_inconsistent" and a.active}
    rows = []
    for spec in desired:
        if not (spec.critical and spec.level1):
            continue
        verdict = verdicts.get(spec.symbol)
        if verdict is None:
            latest = "no comparison in this process"
        elif verdict.differences:
            latest = f"{minute_text(verdict.minute_ns)}: differ: {'; '.join(verdict.differences)}"
        else:
            latest = f"{minute_text(verdict.minute_ns)}: agree"
        alert = inconsistent.get(spec.symbol)
        rows.append({"symbol": spec.symbol, "latest comparison": latest,
                     "alert": f"{alert.state}: {alert.summary}" if alert else "none"})
    return rows


@dataclass(frozen=True)
class LagPoint:
    at_ns: int
    writer: str
    lag: int


class LagHistory:
    """The responsive writers' lag as this dashboard session saw it, for the plot (bounded: ``keep`` points)."""

    def __init__(self, keep: int = 2000) -> None:
        self._points: deque[LagPoint] = deque(maxlen=keep)
        self._seen: set[tuple[str, int]] = set()  # (writer, updated_ns): a status read twice is one point

    def add(self, view: FleetView) -> None:
        for w in view.writers:
            if view.responsive(w) and (w.instance_id, w.updated_ns) not in self._seen:
                self._seen.add((w.instance_id, w.updated_ns))
                self._points.append(LagPoint(w.updated_ns, w.instance_id, w.lag))
        kept = {(p.writer, p.at_ns) for p in self._points}
        self._seen &= kept

    def points(self) -> list[LagPoint]:
        return list(self._points)
