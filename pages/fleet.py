"""Fleet: every collector instance, its health, the symbols it owns and watches, its lag, and the capacity left;
below, adding symbols in bulk and a staged rollout (dashboard/bulk_symbols.py).

With the Kafka bus this is what the instances publish on the fleet status topic (a headless fleet
included); embedded, the one instance of this process.
"""

import streamlit as st

from dashboard import resources
from dashboard.bulk_symbols import render_bulk_add, render_rollout
from dashboard.format import age
from dashboard.navigation_mode import use_declared_navigation
from runtime.fleet_status import FleetView, InstanceStatus

use_declared_navigation()

engine = resources.engine()
st.title("Fleet")


def _state(view: FleetView, status: InstanceStatus) -> str:
    if status.state == "stopped":
        return "stopped"
    return "running" if view.responsive(status) else f"unresponsive ({status.age_s(view.now_ns):.0f} s silent)"


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
    st.subheader("Instances")
    st.dataframe([
        {"instance": s.instance_id, "state": _state(view, s), "health": s.health,
         "partitions": len(s.partitions), "wanted": s.wanted, "watched": len(s.watched),
         "unwatched": len(s.unwatched), "load": f"{len(s.watched) / s.watch_limit:.0%} of {s.watch_limit}",
         "writer lag": "—" if s.writer_lag is None else f"{s.writer_lag:,}",
         "fleet rules": "yes" if s.rules_owner else "", "standalone": "yes" if s.standalone else "",
         "updated": age(s.updated_ns, view.now_ns)}
        for s in view.instances
    ], hide_index=True, width="stretch")
    for s in view.instances:
        with st.expander(f"{s.instance_id} · {_state(view, s)} · {len(s.watched)} watched"):
            if s.reasons:
                st.warning("\n".join(f"- {reason}" for reason in s.reasons))
            st.caption(f"source `{s.source}` · started {age(s.started_ns, view.now_ns)} · partitions "
                       f"{', '.join(map(str, s.partitions)) or 'none'}")
            if s.unwatched:
                st.dataframe([{"symbol": sym, "why": why} for sym, why in sorted(s.unwatched.items())],
                             hide_index=True, width="stretch")
            st.write(", ".join(s.watched) or "no symbols watched")


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
    membership(view)


live()
render_rollout(resources.operator())
render_bulk_add(engine, resources.operator())
