"""Latency: receive → Kafka acknowledgement and receive → stored, against the SLA."""

import streamlit as st

from dashboard import charts, resources
from dashboard.format import ms

engine = resources.engine()
sla = engine.settings.alerts.latency_p99_sla_ms
st.title("Latency")
st.caption(f"SLA: p99 receive → stored under {sla:.0f} ms")


@st.fragment(run_every=resources.settings().dashboard.refresh_s * 2)
def figures() -> None:
    status = engine.status()
    series = {"recv→ack": status.producer.latency}
    if status.writer is not None:
        series["recv→stored"] = status.writer.latency
    table = {
        stage: {"p50": ms(h.percentile(0.5)) or 0.0, "p90": ms(h.percentile(0.9)) or 0.0,
                "p99": ms(h.percentile(0.99)) or 0.0, "max": ms(h.max_ns) or 0.0}
        for stage, h in series.items()
    }
    st.plotly_chart(charts.latency_percentiles(table), width="stretch")
    st.dataframe([{"stage": k, **v, "events": series[k].count} for k, v in table.items()],
                 hide_index=True, width="stretch")


figures()
