"""Audit log: every operator action, newest first (append-only in storage)."""

import streamlit as st

from dashboard import resources
from dashboard.format import utc
from storage.store import StorageError

engine = resources.engine()
st.title("Audit log")
try:
    entries = engine.alert_store.audit_log(limit=500)
except StorageError as exc:
    st.warning(f"Audit log: storage unavailable ({exc}). Actions taken meanwhile are kept in memory and "
               "stored when storage is back.")
else:
    st.dataframe([{"time": utc(e.ts_ns), "operator": e.actor, "action": e.action, "subject": e.subject,
                   "details": e.details} for e in entries],
                 hide_index=True, width="stretch")
