"""Logins on the real dashboard (AppTest, a real engine behind it): every sign-in, failure and sign-out is
in the audit trail; a viewer cannot act; legacy digests are warned about; demo mode needs loopback."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from config import USERS_COMMAND
from dashboard.passwords import hash_password
from tests.unit.test_app_render import APP, dashboard_env, listening_on  # noqa: F401 - the per-test engine fixture

ANNA_PASSWORD = "anna-long-password"
OPERATORS = {
    "anna": {"role": "operator", "password_hash": hash_password(ANNA_PASSWORD, ln=10)},
    "vic": {"role": "viewer", "password_sha256": hashlib.sha256(b"viewer-password").hexdigest()},
    "root": {"role": "admin", "password_hash": hash_password("root-long-password", ln=10)},
}


@pytest.fixture
def with_operators(dashboard_env, monkeypatch):  # noqa: F811 - the imported fixture
    monkeypatch.setenv("TICKOPS_DASHBOARD__OPERATORS", json.dumps(OPERATORS))
    monkeypatch.setenv("TICKOPS_ALERTS__DISK_FREE_MIN_PCT", "100")  # a real alert fires: something to acknowledge


def _entry_run(app: AppTest) -> AppTest:
    """Run the app again as a browser rerun does: entry script (sidebar) and page.

    AppTest reruns a multipage app on the page its last run finished on, and such a run shows none of
    the entry script's sidebar (the elements app.py draws before st.navigation), so a second sidebar
    interaction would be lost. Asking for no page runs the entry script with the default page, as the
    first run does.
    """
    app._finished_page_script_hash = ""  # noqa: SLF001 - see the docstring: no public way to ask for it
    return app.run()


def _sign_in(app: AppTest, name: str, password: str) -> AppTest:
    fields = {field.label: field for field in app.sidebar.text_input}
    fields["Operator"].input(name)
    fields["Password"].input(password)
    (submit,) = [button for button in app.sidebar.button if button.label == "Sign in"]
    submit.click()
    return _entry_run(app)


def _trail(*actions: str) -> list[tuple[str, str, str]]:
    from dashboard import resources

    records = reversed(resources.engine().alert_store.audit_log())
    return [(r.actor, r.action, r.details) for r in records if r.action in actions]


@pytest.mark.timeout(120)
def test_sign_in_failed_sign_in_and_sign_out_are_audited(with_operators):
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception, app.exception
    _sign_in(app, "anna", "not her password")
    assert "Unknown operator or wrong password" in app.sidebar.error[0].value
    _sign_in(app, "anna", ANNA_PASSWORD)
    assert "Signed in as **anna** (operator)" in app.sidebar.success[0].value
    assert [b.label for b in app.sidebar.button] == ["Sign out", "Start", "Stop"]
    app.sidebar.button[0].click()
    _entry_run(app)
    assert app.sidebar.button[-1].label == "Sign in"
    assert _trail("login", "login_failed", "logout") == [
        ("anna", "login_failed", "client=local lockout_s=0"), ("anna", "login", "client=local role=operator"),
        ("anna", "logout", "client=local")]

    app.switch_page("pages/audit_log.py").run()
    assert set(app.dataframe[0].value["action"]) == {"engine_start", "login_failed", "login", "logout"}
    filters = {widget.label: widget for widget in app.multiselect}
    filters["Operator"].set_value(["anna"])
    filters["Action"].set_value(["login_failed", "logout"])
    app.run()
    table = app.dataframe[0].value
    assert list(table["action"]) == ["logout", "login_failed"] and set(table["operator"]) == {"anna"}
    assert app.download_button[0].label == "Export CSV" and app.caption[0].value.startswith("2 records")


@pytest.mark.timeout(120)
def test_repeated_failures_lock_the_login_and_are_audited(with_operators, monkeypatch):
    monkeypatch.setenv("TICKOPS_DASHBOARD__LOCKOUT_AFTER_FAILURES", "2")
    monkeypatch.setenv("TICKOPS_DASHBOARD__LOCKOUT_INITIAL_S", "600")
    app = AppTest.from_file(APP, default_timeout=60).run()
    for guess in ("guess-1", "guess-2"):
        _sign_in(app, "root", guess)
    assert "Locked for 600 s" in app.sidebar.error[0].value
    _sign_in(app, "root", "root-long-password")  # the right password, but locked
    assert "Too many failed attempts" in app.sidebar.error[0].value and not app.sidebar.success
    assert [action for _, action, _ in _trail("login", "login_failed", "login_locked")] == [
        "login_failed", "login_failed", "login_locked"]


@pytest.mark.timeout(180)
def test_a_viewer_sees_everything_but_cannot_act_and_a_legacy_entry_is_warned_about(with_operators):
    from dashboard import resources

    app = AppTest.from_file(APP, default_timeout=60).run()
    warning = app.sidebar.warning[0].value
    assert "1 operator login(s) use a legacy unsalted password_sha256" in warning and USERS_COMMAND in warning
    _sign_in(app, "vic", "viewer-password")
    assert "Signed in as **vic** (viewer)" in app.sidebar.success[0].value
    assert [b.label for b in app.sidebar.button] == ["Sign out"]  # no Start, no Stop
    assert "Sign in as an operator" in app.sidebar.caption[-1].value
    engine = resources.engine()
    deadline_runs = 60
    while not any(a.state == "firing" for a in engine.alert_book.active()) and deadline_runs:
        time.sleep(0.5)
        deadline_runs -= 1
    app.switch_page("pages/alerts.py").run()
    assert "disk_free_low" in app.markdown[0].value
    assert not [b for b in app.button if b.label == "Acknowledge"]
    app.switch_page("pages/settings.py").run()
    assert app.warning[0].value == "Only admins see the settings." and not app.json

    app = AppTest.from_file(APP, default_timeout=60).run()
    _sign_in(app, "anna", ANNA_PASSWORD)
    app.switch_page("pages/alerts.py").run()
    assert [b.label for b in app.button if b.label == "Acknowledge"] == ["Acknowledge"]

    app = AppTest.from_file(APP, default_timeout=60).run()
    _sign_in(app, "root", "root-long-password")
    app.switch_page("pages/settings.py").run()
    assert app.caption[0].value.startswith("Digest `") and app.json and "vic" in app.warning[0].value


@pytest.mark.timeout(60)
def test_demo_mode_on_a_non_loopback_address_refuses_and_starts_no_engine(dashboard_env):  # noqa: F811
    from dashboard import resources

    with listening_on("0.0.0.0"):
        app = AppTest.from_file(APP, default_timeout=60).run()
        assert not app.exception
        assert app.error[0].value.startswith("Refusing to run in demo mode")
        assert not app.sidebar.button  # no login, no symbol controls
        with pytest.raises(resources.DemoRefused):
            resources.engine()
    st.cache_resource.clear()
