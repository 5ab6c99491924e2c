"""Overview parts that describe processes: the supervised IQConnect, and, attached, the collectors and
writers that run apart from the dashboard (their /healthz) with what they stored lately."""

from __future__ import annotations

import streamlit as st

from collectors.iqfeed.iqconnect import SupervisorState
from dashboard.format import age, utc
from monitoring.health_probe import ProbeResult
from runtime.attached import AttachedRuntime
from storage.store import StorageError

_DTN = {True: "connected", False: "NOT CONNECTED", None: "unknown"}


def iqconnect_row(state: SupervisorState) -> dict[str, object]:
    return {"process": "running" if state.running else "not running", "pid": state.pid,
            "DTN": _DTN[state.dtn_connected], "restarts": state.restarts, "last exit code": state.last_exit_code,
            "problem": state.problem or "—"}


def render_iqconnect(state: SupervisorState) -> None:
    st.write("IQConnect (launched and supervised by this engine)")
    st.dataframe([iqconnect_row(state)], hide_index=True, width="stretch")
    if state.problem:
        st.error(f"IQConnect: {state.problem}")


def process_row(result: ProbeResult) -> dict[str, object]:
    """A /healthz answer as a table row: the role and the figures each kind of process reports."""
    details = result.details
    iqconnect = details.get("iqconnect")
    return {
        "process": result.url, "role": details.get("role", "?"), "health": result.state,
        "reasons": "; ".join(result.reasons) or result.error or "—",
        "source": details.get("source", "—"), "ingested": details.get("ingested"), "stored": details.get("stored"),
        "lag": details.get("lag"),
        "IQConnect": "—" if not isinstance(iqconnect, dict)
        else f"{_DTN.get(iqconnect.get('dtn_connected'), '?')}, {iqconnect.get('restarts', 0)} restarts"
        + (f": {iqconnect['problem']}" if iqconnect.get("problem") else ""),
        "checked": age(result.checked_ns) if result.checked_ns else "never",
    }


def render_attached_overview(view: AttachedRuntime) -> None:
    """Overview of a dashboard attached to collectors and writers that run as their own services."""
    st.title("TickOps")
    st.caption(f"Attached dashboard `{view.source}`: collectors and writers run apart; this page shows their "
               f"/healthz and what reached storage **{view.settings.storage.host}/{view.settings.storage.database}**.")

    @st.fragment(run_every=view.settings.dashboard.refresh_s * 2)
    def live() -> None:
        status = view.status()
        firing = [a for a in view.alert_book.active() if a.state == "firing"]
        st.subheader("Processes")
        if not status.processes:
            st.warning("No process to watch: list the collectors' and writers' monitoring URLs in "
                       "dashboard.process_endpoints (e.g. http://collector:9464).")
        else:
            st.dataframe([process_row(r) for r in status.processes], hide_index=True, width="stretch")
            bad = [r for r in status.processes if r.state not in ("ok", "degraded")]
            if bad:
                st.error("Not healthy: " + ", ".join(f"{r.url} ({r.state})" for r in bad))
        st.subheader("Stored in the last 5 minutes")
        try:
            activity = view.stored_activity()
        except StorageError as exc:
            st.warning(f"Storage unavailable ({exc}).")
        else:
            if activity:
                st.dataframe([{"table": a.table, "source": a.source, "rows": a.rows,
                               "last stored": utc(a.last_stored_ns)} for a in activity],
                             hide_index=True, width="stretch")
            else:
                st.warning("Nothing stored in the last 5 minutes.")
        if firing:
            st.error("\n".join(f"- **{a.rule}** {a.subject}: {a.summary}" for a in firing))
        else:
            st.caption("No alert firing.")

    live()
