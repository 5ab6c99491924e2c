"""Latency: the live path (receive -> acknowledged by the bus) and storage freshness (receive -> stored).

Two objectives, as the alert rules judge them: real-time consumers read the bus, so the
live path must be fast; storage is the history, so it must merely be fresh.
"""

import streamlit as st

from bus.latency import HistogramSnapshot, LatencyHistogram
from dashboard import charts, resources
from dashboard.format import ms
from dashboard.navigation_mode import use_declared_navigation

use_declared_navigation()

engine = resources.engine()
cfg = engine.settings.alerts
st.title("Latency")
st.caption(f"Objectives: live path p99 under {cfg.live_p99_ms:.0f} ms, storage freshness p99 under "
           f"{cfg.freshness_p99_ms:.0f} ms, each over the last {cfg.latency_window_s} s. "
           "Percentiles are bucket upper bounds (under 6.25 % wide).")


def _per_minute(histogram: LatencyHistogram) -> list[tuple[int, float, float, float]]:
    return [(start * 1_000_000_000, ms(snap.percentile(0.5)) or 0.0, ms(snap.percentile(0.99)) or 0.0,
             ms(snap.max_ns) or 0.0) for start, snap in histogram.minutes(60)]


def _row(stage: str, objective_ms: float, window: HistogramSnapshot, total: HistogramSnapshot) -> dict:
    p99 = ms(window.percentile(0.99))
    return {"stage": stage, "objective p99 ms": objective_ms, f"p50 ms (last {cfg.latency_window_s} s)":
            ms(window.percentile(0.5)), f"p99 ms (last {cfg.latency_window_s} s)": p99,
            "max ms (window)": ms(window.max_ns) if window.count else None, "events (window)": window.count,
            "met": None if p99 is None else p99 <= objective_ms, "events since start": total.count}


@st.fragment(run_every=resources.settings().dashboard.refresh_s * 2)
def figures() -> None:
    stages = [("live path: receive → bus ack", cfg.live_p99_ms, engine.producer.latency)]
    if engine.writer is not None:
        stages.append(("freshness: receive → stored", cfg.freshness_p99_ms, engine.writer.latency))
    st.dataframe([_row(name, objective, h.window(cfg.latency_window_s), h.snapshot())
                  for name, objective, h in stages], hide_index=True, width="stretch")
    for name, objective, histogram in stages:
        rows = _per_minute(histogram)
        if rows:
            st.plotly_chart(charts.latency_over_time(f"{name}, per minute (UTC)", rows, objective), width="stretch")
        else:
            st.info(f"{name}: no events measured in the last hour.")


figures()
