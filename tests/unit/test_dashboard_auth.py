import hashlib

import pytest

from config import ConfigError, DashboardSettings, load_settings
from dashboard.auth import Operator, authenticate, can_act, demo_mode


def _settings() -> DashboardSettings:
    return DashboardSettings(operators={
        "anna": {"role": "operator", "password_sha256": hashlib.sha256(b"s3cret").hexdigest()},
        "vic": {"role": "viewer", "password_sha256": hashlib.sha256(b"look").hexdigest()},
    })


def test_correct_password_logs_in_with_the_configured_role():
    assert authenticate(_settings(), "anna", "s3cret") == Operator("anna", "operator")
    assert authenticate(_settings(), "anna", "wrong") is None
    assert authenticate(_settings(), "nobody", "s3cret") is None


def test_only_operators_and_admins_may_act():
    assert can_act(Operator("anna", "operator")) and can_act(Operator("root", "admin"))
    assert not can_act(Operator("vic", "viewer")) and not can_act(None)


def test_demo_mode_only_without_configured_operators():
    assert demo_mode(DashboardSettings()) and not demo_mode(_settings())


def test_a_password_instead_of_a_digest_is_a_config_error_that_does_not_echo_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TICKOPS_DASHBOARD__OPERATORS", '{"anna": {"role": "operator", "password_sha256": "hunter2"}}')
    with pytest.raises(ConfigError, match="SHA-256 hex digest") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
