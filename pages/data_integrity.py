"""Data integrity: validation rule counts, sequence gaps, feed outages, catch-ups and the backup."""

import streamlit as st

from dashboard import resources
from dashboard.format import utc
from storage.outages import recent_outages
from storage.store import StorageError

engine = resources.engine()
st.title("Data integrity")


@st.fragment(run_every=resources.settings().dashboard.refresh_s * 2)
def panels() -> None:
    status = engine.status()
    validation = status.validation
    st.subheader("Validation")
    st.write(f"{validation.checked:,} events checked")
    violated = {rule: count for rule, count in validation.counts.items() if count}
    if violated:
        st.bar_chart(violated, horizontal=True)
        st.dataframe([{"rule": v.rule, "symbol": v.symbol, "source": v.source, "seq": v.seq, "detail": v.detail}
                      for v in validation.recent], hide_index=True, width="stretch")
    else:
        st.success(f"No rule violations ({', '.join(sorted(validation.counts))} checked).")
    if validation.gaps:
        st.dataframe([{"source": g.source, "first missing": g.first, "last missing": g.last, "size": g.size}
                      for g in validation.gaps], hide_index=True)
    st.subheader("Feed outages")
    st.dataframe([{"connection": w.connection, "symbol": w.symbol or "all", "cause": w.cause,
                   "start": utc(w.start_ns), "end": utc(w.end_ns) if w.end_ns else "ongoing"}
                  for w in reversed(status.outages)], hide_index=True, width="stretch")
    catch_up = status.catch_up
    if catch_up is not None and catch_up.symbols_total:
        st.subheader("Catch-up of newly watched symbols")
        finished = catch_up.symbols_done + catch_up.symbols_failed + catch_up.symbols_cancelled
        st.progress(finished / catch_up.symbols_total,
                    text=f"{finished:,} / {catch_up.symbols_total:,} symbols · {catch_up.trades_recovered:,} trades "
                         f"recovered · {catch_up.trades_already_there:,} already stored")
        if catch_up.symbols_failed:
            st.error(f"{catch_up.symbols_failed} symbols could not be caught up (lookups failed): see the log")
        if catch_up.waiting:
            st.caption(f"Waiting: {catch_up.waiting}")
    st.subheader("Outage windows in storage (all processes; restart gaps: quotes and depth not recoverable)")
    try:
        if not status.storage.ready:  # never wait for a server that is known to be down
            raise StorageError(status.storage.last_error or "not ready")
        stored = recent_outages(engine.store)
    except StorageError as exc:
        st.warning(f"Stored outage windows: storage unavailable ({exc}). The feed's outages are above.")
    else:
        st.dataframe([{"source": o.source, "connection": o.connection, "symbol": o.symbol or "all", "cause": o.cause,
                       "start": utc(o.start_ns), "end": utc(o.end_ns) if o.end_ns else "ongoing"} for o in stored],
                      hide_index=True, width="stretch")
    st.subheader("File backup")
    if status.backup is None:
        st.info("Backup disabled")
    else:
        b = status.backup
        (st.error if b.state == "degraded" else st.write)(
            f"State **{b.state}** · {b.events_written:,} written · {b.events_dropped:,} not written · "
            f"{b.segments_sealed} segments sealed" + (f" · last error: {b.last_error}" if b.last_error else ""))


panels()
