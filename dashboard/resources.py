"""Process-wide resources of the dashboard, created once per Streamlit process.

Embedded (the default), the engine runs in the background for as long as the process lives;
every session and page shares it. Attached (``dashboard.attach = true``), collectors and writers
run as their own services and the dashboard holds an :class:`runtime.attached.AttachedRuntime`
instead: it reads storage and their ``/healthz``. Nothing here blocks a render on the feed or the broker.
"""

from __future__ import annotations

import atexit
import logging
import threading

import streamlit as st
from streamlit import config as streamlit_config

from config import Settings, load_settings
from dashboard.auth import Operator, demo_mode, demo_operator, demo_refusal, legacy_warning, throttle_for
from dashboard.throttle import LoginThrottle
from monitoring.logs import configure_process_logging
from runtime.attached import AttachedRuntime
from runtime.engine import Engine
from runtime.metrics import start_monitoring
from runtime.rollout_runner import RolloutRunner


log = logging.getLogger(__name__)


@st.cache_resource
def settings() -> Settings:
    loaded = load_settings()
    configure_process_logging("dashboard", loaded)
    warning = legacy_warning(loaded.dashboard)
    if warning:
        log.warning(warning, extra={"operators": ", ".join(loaded.dashboard.legacy_operators())})
    return loaded


def attached() -> bool:
    """True when collectors and writers run apart and this process only looks and acts (no engine)."""
    return settings().dashboard.attach


@st.cache_resource
def login_throttle() -> LoginThrottle:
    """One per process: every browser session's attempts count together."""
    return throttle_for(settings().dashboard)


def listen_address() -> str | None:
    """The address Streamlit listens on (``server.address``; None: every interface)."""
    return streamlit_config.get_option("server.address")


def client_address() -> str | None:
    """The browser's IP address (None when it connects from this machine, or the runtime cannot tell:
    AppTest's stand-in runtime has no connection)."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else None


class DemoRefused(RuntimeError):
    """Demo mode on an address other machines can reach, without dashboard.allow_demo."""


def demo_refused() -> str | None:
    """Why this dashboard must not run (logged as an error), or None."""
    refusal = demo_refusal(settings().dashboard, listen_address())
    if refusal:
        log.error("dashboard refused to run in demo mode", extra={"address": listen_address(), "reason": refusal})
    return refusal


@st.cache_resource
def engine() -> Engine | AttachedRuntime:
    config = settings()
    refusal = demo_refusal(config.dashboard, listen_address())
    if refusal:  # app.py says so before asking; this keeps any other path from starting the pipeline
        raise DemoRefused(refusal)
    if config.dashboard.attach:
        view = AttachedRuntime(config).start()
        view.serve_rollouts()  # a rollout the previous dashboard left unfinished goes on without a page open
        threading._register_atexit(view.stop)  # noqa: SLF001 - as below
        return view
    running = Engine(config).start()
    running.serve_rollouts()
    if config.monitoring.enabled:
        server = start_monitoring(running.status, config.monitoring.host, config.monitoring.port)
        if server is not None:
            atexit.register(server.stop)
    # Stop (and flush) when Streamlit exits, before the interpreter joins worker threads:
    # threading's exit hooks run before that join and while executors still accept work,
    # whereas plain atexit handlers run after it.
    threading._register_atexit(running.stop)  # noqa: SLF001 - no public hook runs early enough
    return running


def rollout() -> RolloutRunner:
    """The process's staged rollout, stepped every second by a job of the engine (or attached runtime), so it
    goes on when the browser that began it closes, and kept in storage, so it goes on after a restart."""
    return engine().serve_rollouts()


def operator() -> Operator | None:
    """The logged-in operator of this browser session (``local`` in demo mode)."""
    if demo_mode(settings().dashboard):
        return demo_operator()
    return st.session_state.get("operator")
