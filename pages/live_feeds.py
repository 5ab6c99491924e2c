"""Live feeds: latest trade and quote per watched symbol, and one symbol's recent history."""

import time

import streamlit as st

from dashboard import charts, resources
from dashboard.format import age
from dashboard.navigation_mode import use_declared_navigation
from storage.bars import query_bars
from storage.store import StorageError, sql_string

use_declared_navigation()

engine = resources.engine()
st.title("Live feeds")


@st.fragment(run_every=resources.settings().dashboard.refresh_s)
def table() -> None:
    snapshot = engine.live.snapshot()
    watched = sorted(engine.feed.watched()) if engine.feed else []
    rejected = engine.feed.rejected_symbols() if engine.feed else {}
    rows = []
    for symbol in watched:
        s = snapshot.get(symbol)
        rows.append({
            "symbol": symbol,
            "last": s.last_price if s else None, "size": s.last_size if s else None,
            "bid": s.bid if s else None, "ask": s.ask if s else None,
            "trades": s.trades if s else 0, "quotes": s.quotes if s else 0,
            "depth": s.depth_updates if s else 0,
            "last event": age(s.last_event_recv_ns) if s else "never",
        })
    st.dataframe(rows, hide_index=True, width="stretch")
    if rejected:
        st.warning("Rejected by IQFeed: " + ", ".join(f"{sym} ({why})" for sym, why in rejected.items()))


if engine.feed is None:  # attached: quotes live in the collectors' processes; history comes from storage
    st.info("Live quotes are kept by the collectors, which run apart from this dashboard; the charts below "
            "read storage.")
    symbols = sorted(s.symbol for s in engine.symbols.all() if s.level1)
else:
    table()
    symbols = sorted(engine.feed.watched())
if symbols:
    chosen = st.selectbox("Symbol", symbols)
    now = time.time_ns()
    try:
        trades = engine.store.query(
            f"SELECT ts_ns, price, size FROM {engine.store.table('trades')} "
            f"WHERE symbol = {sql_string(chosen)} ORDER BY ts_ns DESC LIMIT 500"
        )
        bars = query_bars(engine.store, chosen, now - 6 * 3600 * 10**9, now + 60 * 10**9)
    except StorageError as exc:
        st.warning(f"Recent trades and bars: storage unavailable ({exc}). The table above is live.")
    else:
        left, right = st.columns(2)
        left.plotly_chart(charts.price_volume(chosen, list(reversed(trades))), width="stretch")
        right.plotly_chart(charts.bars_1m(chosen, [(b.minute_ns, b.open, b.high, b.low, b.close, b.volume)
                                                    for b in bars]), width="stretch")
