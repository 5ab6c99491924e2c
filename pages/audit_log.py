"""Audit log: every operator action, newest first, from the tamper-evident trail in storage.

Filtered by operator, action and day (UTC); the export holds every field of the filtered
records, hashes included. Admins can check the hash chains here (as `python -m alerts.audit
verify` does).
"""

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard import resources
from dashboard.audit_view import audit_csv, audit_rows, day_range_ns
from dashboard.auth import can_administer, demo_mode
from dashboard.navigation_mode import use_declared_navigation
from storage.audit_anchor import AnchorError
from storage.audit_trail import AuditFilter
from storage.store import StorageError

use_declared_navigation()

LIMIT = 5000

engine = resources.engine()
st.title("Audit log")
try:
    actors = engine.alert_store.audit_values("actor")
    actions = engine.alert_store.audit_values("action")
except StorageError as exc:
    st.warning(f"Audit log: storage unavailable ({exc}). Actions taken meanwhile are kept in memory and "
               "stored when storage is back.")
    st.stop()

operator_column, action_column, day_column = st.columns(3)
chosen_actors = operator_column.multiselect("Operator", actors)
chosen_actions = action_column.multiselect("Action", actions)
today = datetime.now(UTC).date()
days = day_column.date_input("Days (UTC)", value=(today - timedelta(days=30), today))
since_ns, until_ns = day_range_ns(days if isinstance(days, tuple) else (days,))
where = AuditFilter(tuple(chosen_actors), tuple(chosen_actions), since_ns, until_ns)
try:
    records = engine.alert_store.audit_log(limit=LIMIT, where=where)
except StorageError as exc:
    st.warning(f"Audit log: storage unavailable ({exc}).")
    st.stop()

st.caption(f"{len(records)} records" + (f" (the newest {LIMIT}: narrow the filter)" if len(records) == LIMIT else ""))
st.download_button("Export CSV", audit_csv(records), file_name=f"tickops-audit-{today.isoformat()}.csv",
                   mime="text/csv")
st.dataframe(audit_rows(records), hide_index=True, width="stretch")

if not demo_mode(resources.settings().dashboard):
    logins = resources.login_throttle().stats()
    st.caption(f"Logins since this dashboard started: {logins.failures} failed, {logins.lockouts} lockouts, "
               f"{logins.refused} attempts refused while locked.")

if can_administer(resources.operator()) and st.button("Verify the hash chains"):
    try:
        summaries = engine.alert_store.verify_audit()
    except StorageError as exc:
        st.warning(f"Verification needs storage ({exc}).")
    except AnchorError as exc:
        st.error(f"The anchor file of chain heads could not be read: {exc}")
    else:
        for summary in summaries:
            if summary.ok:
                st.success(f"{summary.source}: {summary.records} records intact (head #{summary.head.seq})")
            else:
                st.error(f"{summary.source}: " + "; ".join(p.message for p in summary.problems))
