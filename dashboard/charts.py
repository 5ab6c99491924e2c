"""Plotly figures for the dashboard, built from plain rows so they are testable without Streamlit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.host import HostSample
from storage.completeness import DaySummary

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "height": 320, "template": "plotly_white"}


def _utc(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc)


def price_volume(symbol: str, rows: Sequence[tuple[int, float, int]]) -> go.Figure:
    """Trade prices as a line over per-trade sizes; ``rows`` are (ts_ns, price, size)."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03)
    times = [_utc(ts) for ts, _, _ in rows]
    figure.add_trace(go.Scatter(x=times, y=[p for _, p, _ in rows], mode="lines", name="price"), row=1, col=1)
    figure.add_trace(go.Bar(x=times, y=[s for _, _, s in rows], name="size"), row=2, col=1)
    figure.update_layout(title=f"{symbol} trades (UTC)", showlegend=False, **_LAYOUT)
    return figure


def bars_1m(symbol: str, rows: Sequence[tuple[int, float, float, float, float, int]]) -> go.Figure:
    """Candles from (minute_start_ns, open, high, low, close, volume) rows."""
    figure = go.Figure(go.Candlestick(
        x=[_utc(r[0]) for r in rows], open=[r[1] for r in rows], high=[r[2] for r in rows],
        low=[r[3] for r in rows], close=[r[4] for r in rows], name=symbol,
    ))
    figure.update_layout(title=f"{symbol} 1-minute bars (UTC)", xaxis_rangeslider_visible=False, **_LAYOUT)
    return figure


def latency_over_time(
    title: str, rows: Sequence[tuple[int, float, float, float]], objective_ms: float
) -> go.Figure:
    """Per-minute p50/p99/max (ms) from (minute_start_ns, p50, p99, max) rows, with the objective as a line:
    the shape of the last hour tells a steady drift from one bad minute."""
    figure = go.Figure()
    times = [_utc(r[0]) for r in rows]
    for column, name, dash in ((1, "p50", "solid"), (2, "p99", "solid"), (3, "max", "dot")):
        figure.add_trace(go.Scatter(x=times, y=[r[column] for r in rows], name=name, mode="lines+markers",
                                    line={"dash": dash}))
    figure.add_hline(y=objective_ms, line={"color": "firebrick", "dash": "dash"},
                     annotation_text=f"objective p99 {objective_ms:g} ms")
    figure.update_layout(title=title, yaxis_title="ms", **_LAYOUT)
    return figure


def host_history(samples: Sequence[HostSample]) -> go.Figure:
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    times = [_utc(s.ts_ns) for s in samples]
    figure.add_trace(go.Scatter(x=times, y=[s.cpu_pct for s in samples], name="CPU %"))
    figure.add_trace(go.Scatter(x=times, y=[s.mem_pct for s in samples], name="memory %"))
    figure.add_trace(go.Scatter(x=times, y=[s.disk_free_pct for s in samples], name="disk free %"))
    figure.add_trace(go.Scatter(x=times, y=[s.rss_bytes / 2**20 for s in samples], name="RSS MiB",
                                line={"dash": "dot"}), secondary_y=True)
    figure.update_yaxes(title_text="%", range=[0, 100], secondary_y=False)
    figure.update_yaxes(title_text="RSS MiB", secondary_y=True)
    figure.update_layout(title="Host", **_LAYOUT)
    return figure


def completeness_by_day(days: Sequence[DaySummary]) -> go.Figure:
    """Stacked bars per trading day: complete, incomplete and excess symbols (hover names them)."""
    labels = [d.day.isoformat() for d in days]
    figure = go.Figure()
    for name, color, symbols in (("complete", "seagreen", [d.complete for d in days]),
                                 ("incomplete", "firebrick", [d.incomplete for d in days]),
                                 ("excess", "darkorange", [d.excess for d in days])):
        figure.add_trace(go.Bar(x=labels, y=[len(s) for s in symbols], name=name, marker_color=color,
                                hovertext=[", ".join(s[:20]) for s in symbols]))
    figure.update_layout(title="End-of-day completeness (symbols per trading day)", barmode="stack",
                         xaxis_type="category", yaxis_title="symbols", **_LAYOUT)
    return figure


def errors_per_component(counts: dict[tuple[int, str], int]) -> go.Figure:
    """Stacked bars of ERROR/CRITICAL log lines per minute, one colour per component (logger), from
    {(minute_start_ns, component): count}: which part of the system started failing, and when."""
    figure = go.Figure()
    for component in sorted({component for _, component in counts}):
        minutes = sorted(minute for minute, name in counts if name == component)
        figure.add_trace(go.Bar(x=[_utc(m) for m in minutes], y=[counts[(m, component)] for m in minutes],
                                name=component))
    figure.update_layout(title="Errors per minute by component (UTC)", barmode="stack", yaxis_title="lines",
                         **_LAYOUT)
    return figure


def writer_lag(points: Sequence[tuple[int, str, int]]) -> go.Figure:
    """Each writer's lag (records on the bus not stored yet) over time; ``points`` are (ts_ns, writer, lag)."""
    figure = go.Figure()
    for writer in sorted({w for _, w, _ in points}):
        mine = [(ts, lag) for ts, w, lag in points if w == writer]
        figure.add_trace(go.Scatter(x=[_utc(ts) for ts, _ in mine], y=[lag for _, lag in mine], mode="lines+markers",
                                    name=writer))
    figure.update_layout(title="Writer lag (records not stored yet, UTC)", **_LAYOUT)
    return figure
