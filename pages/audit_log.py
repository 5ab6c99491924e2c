"""Audit log: every operator action, newest first (append-only in storage)."""

import streamlit as st

from dashboard import resources
from dashboard.format import utc

engine = resources.engine()
st.title("Audit log")
st.dataframe([{"time": utc(e.ts_ns), "operator": e.actor, "action": e.action, "subject": e.subject,
               "details": e.details} for e in engine.alert_store.audit_log(limit=500)],
             hide_index=True, width="stretch")
