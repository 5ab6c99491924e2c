"""Process-wide resources of the dashboard, created once per Streamlit process.

The engine runs in the background for as long as the process lives; every session and
page shares it. Nothing here blocks a render on the feed or the broker.
"""

from __future__ import annotations

import atexit
import threading

import streamlit as st

from config import Settings, load_settings
from dashboard.auth import LOCAL, Operator, demo_mode
from monitoring.logs import configure_logging
from runtime.engine import Engine
from runtime.metrics import start_monitoring


@st.cache_resource
def settings() -> Settings:
    loaded = load_settings()
    configure_logging(loaded.log_level)
    return loaded


@st.cache_resource
def engine() -> Engine:
    config = settings()
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
