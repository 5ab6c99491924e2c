"""Host health: CPU, memory, disk, this process's memory trend and the background jobs."""

import streamlit as st

from dashboard import charts, resources
from monitoring.host import rss_slope_bytes_per_hour

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
    cols[3].metric("RSS trend", f"{rss_slope_bytes_per_hour(history) / 2**20:+.1f} MiB/h")
    st.plotly_chart(charts.host_history(history), width="stretch")
    st.subheader("Background jobs")
    st.dataframe([{"job": j.name, "every (s)": j.interval_s, "runs": j.runs, "failures": j.failures,
                   "backing off": j.backing_off, "last error": j.last_error} for j in engine.jobs.status()],
                 hide_index=True, width="stretch")


figures()
