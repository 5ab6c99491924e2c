"""Alerts: what is wrong now, acknowledged by whom, and what happened before."""

import streamlit as st

from alerts.lifecycle import AlertNotFound
from dashboard import resources
from dashboard.auth import can_act
from dashboard.format import utc
from dashboard.navigation_mode import use_declared_navigation
from storage.store import StorageError

use_declared_navigation()

engine = resources.engine()
who = resources.operator()
st.title("Alerts")

active = engine.alert_book.active()
if not active:
    st.success("No active alerts.")
for alert in active:
    icon = {"critical": "🔴", "warning": "🟠", "info": "🔵"}[alert.severity]
    with st.container(border=True):
        st.markdown(f"{icon} **{alert.rule}** · `{alert.subject}` · {alert.state}")
        st.write(alert.summary)
        st.caption(f"since {utc(alert.started_ns)}"
                   + (f" · acknowledged by {alert.acked_by} at {utc(alert.acked_ns)}: {alert.ack_note}"
                      if alert.acked_by else ""))
        if alert.state == "firing" and can_act(who):
            with st.form(f"ack-{alert.rule}-{alert.subject}"):
                note = st.text_input("Note", key=f"note-{alert.rule}-{alert.subject}")
                if st.form_submit_button("Acknowledge"):
                    try:
                        engine.acknowledge(alert.rule, alert.subject, by=who.name, note=note)
                    except AlertNotFound as exc:
                        st.warning(f"{exc} (it may have resolved meanwhile)")
                    st.rerun()

st.subheader("Notifications")
if engine.notifier is None:
    st.caption("No notification channel configured ([notify] webhook_url / smtp_host): alerts reach the log "
               "and this page only.")
else:
    sent = engine.notifier.stats()
    st.dataframe(
        [{"channel": name, "sent": c.sent, "failed": c.failed, "dropped": c.dropped, "retries": c.retries}
         for name, c in sent.channels.items()],
        hide_index=True, width="stretch",
    )
    if any(c.failed or c.dropped for c in sent.channels.values()):
        st.warning("Some notifications were not delivered; the log has each one (alert notification failed/dropped).")

st.subheader("History")
try:
    history = engine.alert_store.history()
except StorageError as exc:
    st.warning(f"History: storage unavailable ({exc}). The alerts above are live; their changes are stored "
               "when storage is back.")
else:
    st.dataframe(
        [{"rule": a.rule, "subject": a.subject, "state": a.state, "severity": a.severity, "summary": a.summary,
          "started": utc(a.started_ns), "resolved": utc(a.resolved_ns), "acked by": a.acked_by}
         for a in history],
        hide_index=True, width="stretch",
    )
