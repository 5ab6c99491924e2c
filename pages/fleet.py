"""Fleet: every collector instance, its health, the symbols it owns and stands by for, its lag, and the
capacity left; every writer with its partitions and lag; the consistency check of critical symbols;
below, adding symbols in bulk and a staged rollout (dashboard/bulk_symbols.py).

With the Kafka bus this is what the collectors and writers publish on the fleet status topic (a
headless fleet included); embedded, the one instance of this process and its writer.
"""

import streamlit as st

from dashboard import resources
from dashboard.bulk_symbols import render_bulk_add, render_rollout
from dashboard.charts import writer_lag
from dashboard.fleet_tables import LagHistory, collector_rows, consistency_rows, owned_symbols, state_text, writer_rows
from dashboard.format import age
from dashboard.navigation_mode import use_declared_navigation
from runtime.fleet_status import FleetView

use_declared_navigation()

engine = resources.engine()
st.title("Fleet")


def capacity(view: FleetView) -> None:
    cap = view.capacity()
    cols = st.columns(6)
    cols[0].metric("Collectors responding", f"{cap.instances} of {len(view.instances)}")
    cols[1].metric("Symbols wanted", f"{cap.wanted:,}")
    cols[2].metric("Capacity (watch limits)", f"{cap.capacity:,}")
    cols[3].metric("Load", f"{cap.load:.0%}")
    cols[4].metric("Unwatched", f"{sum(len(s.unwatched) for s in view.live):,}")
    cols[5].metric("Partitions without owner", len(view.orphaned) if view.membership else "—")
    if cap.short_by:
        st.error(f"{cap.wanted} symbols are wanted but the responsive collectors can watch {cap.capacity}: "
                 f"{cap.short_by} stay unwatched. Add a collector or stop symbols.")
    elif cap.short_after_one_loss_by:
        st.warning(f"If one collector fails, the others can watch {cap.after_one_loss} of the {cap.wanted} symbols "
                   f"wanted: add a collector before that happens.")
    elif cap.instances:
        st.success(f"Headroom: {cap.capacity - cap.wanted:,} more symbols fit"
                   + (f", {cap.after_one_loss - cap.wanted:,} after losing one collector."
                      if cap.after_one_loss is not None else "."))
    if view.orphaned and view.membership:
        st.warning(f"Assignment partitions owned by no responsive collector (a rebalance in progress, or none "
                   f"left): {', '.join(map(str, view.orphaned[:40]))}")


def instances(view: FleetView) -> None:
    st.subheader("Collectors")
    st.dataframe(collector_rows(view), hide_index=True, width="stretch")
    for s in view.instances:
        with st.expander(f"{s.instance_id} · {state_text(view, s)} · {len(s.watched)} watched"):
            if s.reasons and view.responsive(s):
                st.warning("\n".join(f"- {reason}" for reason in s.reasons))
            st.caption(f"source `{s.source}` · started {age(s.started_ns, view.now_ns)} · partitions "
                       f"{', '.join(map(str, s.partitions)) or 'none'}")
            if s.unwatched:
                st.dataframe([{"symbol": sym, "why": why} for sym, why in sorted(s.unwatched.items())],
                             hide_index=True, width="stretch")
            st.write("Owns: " + (", ".join(owned_symbols(s)) or "no symbols watched"))
            if s.standby:
                st.write("Stands by for (hot standby of critical symbols): " + ", ".join(s.standby))


def writers(view: FleetView) -> None:
    st.subheader("Writers")
    rows = writer_rows(view)
    if not rows:
        st.caption("No writer has published a status yet (writers publish every fleet.status_interval_s).")
        return
    st.dataframe(rows, hide_index=True, width="stretch")
    history = st.session_state.setdefault("fleet_writer_lag", LagHistory())
    history.add(view)
    points = [(p.at_ns, p.writer, p.lag) for p in history.points()]
    if len(points) > 1:
        st.plotly_chart(writer_lag(points), width="stretch")


def consistency() -> None:
    """Only with hot standby: the check compares the two watchers of each critical symbol (docs/HA.md)."""
    if not resources.settings().fleet.standby_critical:
        return
    st.subheader("Consistency of critical symbols")
    redundancy = getattr(engine, "redundancy", None)  # attached, no check runs in this process
    verdicts = redundancy.verdicts() if redundancy is not None else {}
    rows = consistency_rows(engine.desired_symbols(), verdicts, engine.alert_book.active())
    if not rows:
        st.caption("No critical symbol is wanted.")
        return
    st.dataframe(rows, hide_index=True, width="stretch")
    if not verdicts:
        st.caption("The comparisons run in the collector that evaluates the fleet-wide rules; here only its "
                   "feed_inconsistent alerts are known.")


def membership(view: FleetView) -> None:
    m = view.membership
    if m is None:
        if not resources.attached():
            st.caption("Embedded: this process watches every desired symbol itself (in-process bus). With the "
                       "Kafka bus, collectors share the symbols through a consumer group (docs/HA.md).")
        elif engine.fleet is None:
            st.caption("No fleet status channel: it needs bus.kind = \"kafka\" and fleet.enabled. Each process's "
                       "health is on the Overview page.")
        else:
            st.caption("Attached: this dashboard collects nothing; it reads each collector's status from the "
                       "fleet status topic and writes symbol changes to the assignment topic.")
        for key, why in view.rejected.items():
            st.error(f"Status record `{key}` rejected: {why}")
        return
    st.subheader("This process")
    st.write(f"Group `{m.group}` · {len(m.partitions)} of {m.partitions_total} partitions"
             + (" · evaluates the fleet-wide alert rules" if m.rules_owner else "")
             + (" · **standalone** (not in the group: Kafka unreachable since start)" if m.standalone else ""))
    if m.unread:
        st.caption(f"Reading partitions {', '.join(map(str, m.unread))} to their end before watching their symbols.")
    if m.held:
        st.warning(f"Group session lost: partitions {', '.join(map(str, m.held))} are kept until Kafka assigns again.")
    for key, why in {**m.rejected, **view.rejected}.items():
        st.error(f"Record `{key}` rejected: {why}")


@st.fragment(run_every=resources.settings().dashboard.refresh_s)
def live() -> None:
    view = engine.fleet_view()
    capacity(view)
    instances(view)
    writers(view)
    consistency()
    membership(view)


live()
render_rollout(resources.operator())
render_bulk_add(engine, resources.operator())
