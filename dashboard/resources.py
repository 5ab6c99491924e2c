"""Process-wide resources of the dashboard, created once per Streamlit process.

Embedded (the default), the engine runs in the background for as long as the process lives;
every session and page shares it. Attached (``dashboard.attach = true``), collectors and writers
run as their own services and the dashboard holds an :class:`runtime.attached.AttachedRuntime`
instead: it reads storage and their ``/healthz``. Nothing here blocks a render on the feed or the broker.
"""

from __future__ import annotations

import atexit
import threading

import streamlit as st

from config import Settings, load_settings
from dashboard.auth import LOCAL, Operator, demo_mode
from monitoring.logs import configure_process_logging
from runtime.attached import AttachedRuntime
from runtime.engine import Engine
from runtime.metrics import start_monitoring


@st.cache_resource
def settings() -> Settings:
    loaded = load_settings()
    configure_process_logging("dashboard", loaded)
    return loaded


def attached() -> bool:
    """True when collectors and writers run apart and this process only looks and acts (no engine)."""
    return settings().dashboard.attach


@st.cache_resource
def engine() -> Engine | AttachedRuntime:
    config = settings()
    if config.dashboard.attach:
        view = AttachedRuntime(config).start()
        threading._register_atexit(view.stop)  # noqa: SLF001 - as below
        return view
    running = Engine(config).start()
    if config.monitoring.enabled:
        server = start_monitoring(running.status, config.monitoring.host, config.monitoring.port)
        if server is not None:
            atexit.register(server.stop)
    # Stop (and flush) when Streamlit exits, before the interpreter joins worker threads:
    # threading's exit hooks run before that join and while executors still accept work,
    # whereas plain atexit handlers run after it.
    threading._register_atexit(running.stop)  # noqa: SLF001 - no public hook runs early enough
    return running


def operator() -> Operator | None:
    """The logged-in operator of this browser session (``local`` in demo mode)."""
    if demo_mode(settings().dashboard):
        return Operator(LOCAL, "operator")
    return st.session_state.get("operator")
