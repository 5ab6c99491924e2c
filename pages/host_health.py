"""Host health: CPU, memory, disk, this process's memory trend and the background jobs."""

import streamlit as st

from dashboard import charts, resources
from dashboard.navigation_mode import use_declared_navigation
from monitoring.host import rss_growth_after_warmup

use_declared_navigation()

engine = resources.engine()
st.title("Host health")


@st.fragment(run_every=5)
def figures() -> None:
    history = engine.host.history()
    if not history:
        history = [engine.host.sample()]
    latest = history[-1]
    cols = st.columns(4)
    cols[0].metric("CPU", f"{latest.cpu_pct:.0f}%")
    cols[1].metric("Memory", f"{latest.mem_pct:.0f}%")
    cols[2].metric("Disk free", f"{latest.disk_free_pct:.1f}%")
    cfg = engine.settings.alerts
    slope = rss_growth_after_warmup(history, started_ns=engine.started_ns, now_ns=latest.ts_ns,
                                    warmup_s=cfg.memory_warmup_s, window_s=cfg.memory_window_s)
    cols[3].metric("RSS trend", "warming up" if slope is None else f"{slope / 2**20:+.1f} MiB/h",
                   help=f"Slope over the last {cfg.memory_window_s / 60:.0f} min, after a "
                        f"{cfg.memory_warmup_s / 60:.0f}-min warm-up")
    st.plotly_chart(charts.host_history(history), width="stretch")
    st.subheader("Background jobs")
    st.dataframe([{"job": j.name, "every (s)": j.interval_s, "runs": j.runs, "failures": j.failures,
                   "backing off": j.backing_off, "last error": j.last_error} for j in engine.jobs.status()],
                 hide_index=True, width="stretch")


figures()
