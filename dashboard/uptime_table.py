"""The Overview's availability table: one row per component, a column per window and scope, and the
30-day error budget left. Pure, so the page stays a few lines and the wording is tested."""

from __future__ import annotations

from monitoring.uptime import Availability, UptimeReport

_COLUMNS = (("24 h", "24h", "all"), ("24 h in sessions", "24h", "session"),
            ("30 d", "30d", "all"), ("30 d in sessions", "30d", "session"))


def _percent(row: Availability) -> str:
    return "—" if row.ratio is None else f"{row.ratio:.3%}"


def _budget(row: Availability) -> str:
    if row.budget_minutes <= 0:
        return "—"
    return f"{row.budget_left_minutes:.1f} of {row.budget_minutes:.1f} min"


def uptime_rows(report: UptimeReport) -> list[dict[str, str]]:
    rows = []
    for component in dict.fromkeys(row.component for row in report.rows):
        cells = {"component": component}
        for label, window, scope in _COLUMNS:
            cells[label] = _percent(report.get(component, window, scope))
        cells["30 d budget left"] = _budget(report.get(component, "30d", "all"))
        rows.append(cells)
    return rows
