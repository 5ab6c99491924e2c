"""Overview: is data flowing, and is anything wrong right now."""

import time

import streamlit as st

from dashboard import resources
from collectors.market_hours import session_at
from dashboard.format import age, ms
from dashboard.navigation_mode import use_declared_navigation
from dashboard.processes import render_attached_overview, render_iqconnect
from dashboard.uptime_table import uptime_rows

use_declared_navigation()

engine = resources.engine()
if resources.attached():
    render_attached_overview(engine)
    st.stop()
st.title("TickOps")
st.caption(f"Engine `{engine.source}` · feed **{engine.settings.feed.mode}** · bus **{engine.settings.bus.kind}** "
           f"· storage **{engine.settings.storage.backend}**")


@st.fragment(run_every=resources.settings().dashboard.refresh_s)
def live() -> None:
    status = engine.status()
    firing = [a for a in engine.alert_book.active() if a.state == "firing"]
    cols = st.columns(6)
    cols[0].metric("Events received", f"{status.ingested:,}")
    cols[1].metric("Rows stored", f"{status.writer.stored:,}" if status.writer else "—")
    cols[2].metric("Writer lag", f"{status.writer.total_lag:,}" if status.writer else "—")
    window = engine.settings.alerts.latency_window_s
    live_p99 = ms(engine.producer.latency.window(window).percentile(0.99))
    cols[3].metric(f"p99 live path ({window} s)", "—" if live_p99 is None else f"{live_p99} ms")
    cols[4].metric("Spooled (bus down)", f"{status.producer.spool.unacked:,}")
    cols[5].metric("Alerts firing", len(firing))
    feed = status.feed
    if feed is not None:
        st.subheader("Feed")
        st.dataframe(
            [{"connection": c.name, "connected": c.connected, "reconnects": c.reconnects,
              "last error": c.last_error} for c in (feed.level1, feed.level2, feed.admin)],
            hide_index=True, width="stretch",
        )
        dtn = {True: "connected", False: "NOT CONNECTED", None: "unknown"}[feed.dtn_connected]
        st.write(f"IQConnect ↔ DTN: **{dtn}**")
    if status.iqconnect is not None:
        render_iqconnect(status.iqconnect)
    st.subheader("Pipeline")
    st.dataframe([
        {"stage": "producer", "state": status.producer.breaker.state.value,
         "detail": f"delivered {status.producer.delivered:,}, spooled {status.producer.spooled:,}, "
                   f"dropped {status.producer.dropped}"},
        {"stage": "writer", "state": "retrying" if status.writer and status.writer.retrying else "ok",
         "detail": (status.writer.last_error or "—") if status.writer
         else "separate writer processes (storage.embedded_writer = false)"
         if not engine.settings.storage.embedded_writer
         else "not connected to the bus yet" if status.storage.migrated else "waiting for storage"},
        {"stage": "storage", "state": "ok" if status.storage.ready else "unavailable",
         "detail": f"{status.storage.pending_writes} writes pending, {status.storage.dropped_writes} dropped"
         + (f"; {status.storage.last_error}" if status.storage.last_error else "")},
        {"stage": "backup", "state": status.backup.state if status.backup else "disabled",
         "detail": (status.backup.last_error or f"{status.backup.events_written:,} events in segments")
         if status.backup else "—"},
    ] + ([{"stage": "backup mirror", "state": status.mirror.state,
            "detail": status.mirror.last_error or f"{status.mirror.files_copied:,} files copied, "
                                                  f"{status.mirror.pending} waiting"}] if status.mirror else []),
        hide_index=True, width="stretch")
    if status.uptime is not None:
        st.subheader(f"Availability (objective {status.uptime.objective:.1%} of minutes)")
        st.dataframe(uptime_rows(status.uptime), hide_index=True, width="stretch")
    if firing:
        st.error("\n".join(f"- **{a.rule}** {a.subject}: {a.summary}" for a in firing))
    session = session_at(time.time_ns()).value
    st.caption(f"Market session (NYSE): **{session}** · engine started {age(engine.started_ns)}")


live()
