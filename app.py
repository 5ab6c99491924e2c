"""TickOps operator dashboard (Streamlit entry point): navigation and the shared sidebar.

Rendering only: the pipeline runs in the Engine created once per process
(dashboard/resources.py), or apart from the dashboard when it is attached; pages read its
in-memory status and query storage.
"""

from __future__ import annotations

import streamlit as st

from bus.base import BusError
from collectors.iqfeed.protocol import InvalidSymbol, SymbolLimitReached
from config import ConfigError
from dashboard import resources
from dashboard.auth import attempt_login, can_act, can_administer, demo_mode, legacy_warning, sign_out
from dashboard.format import storage_banner
from dashboard.navigation_mode import use_declared_navigation

use_declared_navigation()

st.set_page_config(page_title="TickOps", page_icon=":material/show_chart:", layout="wide")

try:
    config = resources.settings()
except ConfigError as exc:
    st.title("TickOps")
    st.error(f"Configuration error — fix it and restart:\n\n```\n{exc}\n```")
    st.stop()

refusal = resources.demo_refused()
if refusal:
    st.title("TickOps")
    st.error(refusal)
    st.stop()  # before the engine exists: nothing runs, nothing can be acted on

engine = resources.engine()


def login_box() -> None:
    warning = legacy_warning(config.dashboard)
    if warning:
        st.sidebar.warning(warning)
    if demo_mode(config.dashboard):
        st.sidebar.info("Demo mode: no operators configured, actions run as `local`.")
        return
    who = resources.operator()
    if who is not None:
        st.sidebar.success(f"Signed in as **{who.name}** ({who.role})")
        if st.sidebar.button("Sign out"):
            sign_out(engine.alert_store.audit, who, resources.client_address())
            st.session_state.pop("operator", None)
            st.rerun()
        return
    with st.sidebar.form("login"):
        name = st.text_input("Operator")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in"):
            result = attempt_login(config.dashboard, resources.login_throttle(), engine.alert_store.audit,
                                   name, password, resources.client_address())
            if result.operator is None:
                st.error(result.message)
            else:
                st.session_state["operator"] = result.operator
                st.rerun()


def symbol_controls() -> None:
    st.sidebar.header("Symbols")
    who = resources.operator()
    specs = engine.desired_symbols()
    running = [s.symbol for s in specs if s.level1]
    st.sidebar.caption(f"{len(running)} watched · limit {config.feed.watch_limit}"
                       + (" per collector" if engine.fleet is not None else ""))
    if not can_act(who):
        st.sidebar.caption("Sign in as an operator to start or stop symbols.")
        return
    with st.sidebar.form("start_symbol"):
        raw = st.text_input("Start symbol", placeholder="e.g. NVDA")
        depth = st.checkbox("with Level 2 depth")
        # in a fleet, a collector over its watch limit watches critical symbols first
        critical = st.checkbox("critical") if engine.fleet is not None else False
        if st.form_submit_button("Start"):
            try:
                spec = engine.start_symbol(raw, depth=depth, critical=critical, by=who.name)
            except (InvalidSymbol, SymbolLimitReached, BusError) as exc:
                st.error(str(exc))
            else:
                st.toast(f"Started {spec.symbol}")
    with st.sidebar.form("stop_symbols"):
        chosen = st.multiselect("Stop symbols", running)
        if st.form_submit_button("Stop") and chosen:
            try:
                for symbol in chosen:
                    engine.stop_symbol(symbol, by=who.name)
            except BusError as exc:
                st.error(str(exc))
            else:
                st.toast(f"Stopped {', '.join(chosen)}")
                st.rerun()
    st.sidebar.caption("Many at once, or a staged rollout: the Fleet page's **Add symbols**.")


def outage_banner() -> None:
    """At the top of every page while storage is down, so nobody takes empty history for no history.

    Rendered with each page run (navigation, an action); a fragment in this entry script would not be
    rendered again when another page is opened.
    """
    banner = storage_banner(engine.status().storage)
    if banner:
        st.error(banner)


outage_banner()
login_box()
symbol_controls()

# Pages that read a pipeline in this process (latency histograms, validation) are left out when the
# dashboard is attached to collectors and writers that run apart (runtime/attached.py).
in_process = not resources.attached()
navigation = st.navigation([page for page, shown in (
    (st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True), True),
    (st.Page("pages/live_feeds.py", title="Live feeds", icon=":material/show_chart:"), True),
    (st.Page("pages/fleet.py", title="Fleet", icon=":material/hub:"), True),
    (st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications_active:"), True),
    (st.Page("pages/latency.py", title="Latency", icon=":material/timer:"), in_process),
    (st.Page("pages/host_health.py", title="Host health", icon=":material/monitor_heart:"), True),
    (st.Page("pages/data_integrity.py", title="Data integrity", icon=":material/fact_check:"), in_process),
    (st.Page("pages/audit_log.py", title="Audit log", icon=":material/history:"), True),
    (st.Page("pages/logs.py", title="Logs", icon=":material/article:"), True),
    (st.Page("pages/settings.py", title="Settings", icon=":material/settings:"), can_administer(resources.operator())),
) if shown])
navigation.run()
