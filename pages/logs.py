"""Logs: every process's JSON log lines from the shared log directory, filtered, and errors per component over time.

Reads files, not an engine, so it shows the same thing embedded and attached to collectors and
writers that run apart (they write to the directory the dashboard reads: ``logs.directory``).
"""

from dataclasses import replace

import streamlit as st

from dashboard import charts, resources
from dashboard.format import utc
from dashboard.navigation_mode import use_declared_navigation
from monitoring.log_reader import LEVELS, LogQuery, error_counts, read_recent, select

use_declared_navigation()

settings = resources.settings()
directory = settings.log_directory()
st.title("Logs")
st.caption(f"JSON lines of every process in `{directory}` (newest 4 MB of each file, rotated files included).")

entries = read_recent(directory)
if not entries:
    st.info(f"No log lines in {directory} yet. Each process writes `<role>-<instance>.log` there "
            "(logs.file, logs.directory).")

left, middle, right = st.columns([1, 2, 1])
min_level = left.selectbox("Level at least", LEVELS, index=LEVELS.index("INFO"))
components = middle.multiselect("Components (loggers)", sorted({entry.component for entry in entries}))
symbol = right.text_input("Symbol")
text = st.text_input("Text contains")
limit = st.number_input("Lines shown", min_value=10, max_value=5000, value=500, step=50)
query = LogQuery(min_level, frozenset(components), symbol.strip(), text.strip())

errors = error_counts(e for e in entries if replace(query, min_level="DEBUG").matches(e))
if errors:
    st.plotly_chart(charts.errors_per_component(errors), width="stretch")
else:
    st.success("No ERROR or CRITICAL lines in what is shown.")

shown = select(entries, query, int(limit))
st.caption(f"{len(shown)} of {len(entries)} lines")
st.dataframe(
    [{"time": utc(e.ts_ns), "level": e.level, "component": e.component, "process": e.process, "symbol": e.symbol,
      "message": e.message, "fields": ", ".join(f"{k}={v}" for k, v in e.fields.items() if k != "symbol")}
     for e in shown],
    hide_index=True, width="stretch",
)
