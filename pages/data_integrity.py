"""Data integrity: validation rule counts, sequence gaps, feed outages, catch-ups, the backup and end-of-day
completeness."""

import streamlit as st

from dashboard import charts, resources
from dashboard.format import utc
from dashboard.navigation_mode import use_declared_navigation
from storage.completeness import recent_checks, summarize_days
from storage.outages import recent_outages
from storage.store import StorageError

use_declared_navigation()

COMPLETENESS_DAYS = 30

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


@st.fragment(run_every=60)
def completeness() -> None:
    """Verdicts change once a day (or when an operator re-checks one): a slow refresh is plenty."""
    st.subheader("End-of-day completeness")
    try:
        if not engine.status().storage.ready:  # never wait for a server that is known to be down
            raise StorageError(engine.status().storage.last_error or "not ready")
        checks = recent_checks(engine.store, COMPLETENESS_DAYS)
    except StorageError as exc:
        st.warning(f"Completeness: storage unavailable ({exc}).")
        return
    if not checks:
        st.info("No trading day checked yet: each day is checked after its extended session ends "
                f"(plus {engine.settings.completeness.grace_s:g} s); "
                "`python -m runtime.completeness --day YYYY-MM-DD` checks a past day.")
        return
    days = summarize_days(checks)
    st.plotly_chart(charts.completeness_by_day(days), width="stretch")
    st.dataframe([{"day": d.day.isoformat(), "complete": len(d.complete), "incomplete": ", ".join(d.incomplete),
                   "excess": ", ".join(d.excess), "trades recovered": d.trades_recovered}
                  for d in reversed(days)], hide_index=True, width="stretch")
    failed = [c for c in reversed(checks) if c.verdict != "complete"]
    if failed:
        st.error(f"{len(failed)} symbol-days not complete after backfill")
        st.dataframe([{"day": c.day.isoformat(), "symbol": c.symbol, "verdict": c.verdict,
                       "stored volume": c.stored_volume, "stored trades": c.stored_trades,
                       "feed volume": c.feed_volume, "daily bar": c.bar_volume,
                       "trades recovered": c.trades_recovered, "detail": c.detail, "checked": utc(c.checked_ns)}
                      for c in failed], hide_index=True, width="stretch")
    else:
        st.success(f"Every checked symbol-day of the last {len(days)} checked days is complete.")


panels()
completeness()
