"""[notify] settings: channels are optional, and an incomplete channel stops start-up naming the fields."""

from __future__ import annotations

import os

import pytest

from alerts.notify import EmailChannel, Notifier, WebhookChannel
from config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("TICKOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_no_channel_by_default_so_no_notifier_is_built():
    settings = load_settings()
    assert not settings.notify.configured
    assert Notifier.from_settings(settings) is None


def test_smtp_host_without_recipients_names_both_fields():
    with pytest.raises(ConfigError, match=r"notify\.smtp_host is set but notify\.email_to is empty"):
        load_settings(notify={"smtp_host": "mail.example.com"})


def test_recipients_without_smtp_host_names_both_fields():
    with pytest.raises(ConfigError, match=r"notify\.email_to is set but notify\.smtp_host is not"):
        load_settings(notify={"email_to": ["ops@example.com"]})


def test_username_without_password_is_rejected():
    with pytest.raises(ConfigError, match=r"notify\.smtp_username and notify\.smtp_password go together"):
        load_settings(notify={"smtp_host": "mail", "email_to": ["ops@example.com"], "smtp_username": "tickops"})


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("webhook_url", "hooks.example.com/x", "http:// or https://"),
    ("email_to", ["ops"], "not email addresses"),
    ("email_from", "tickops", "email address"),
    ("min_severity", "page", "'info', 'warning' or 'critical'"),
    ("queue_size", 0, "greater than or equal to 1"),
])
def test_bad_value_names_the_setting_and_its_env_variable(key, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_settings(notify={key: value})
    message = str(caught.value)
    assert f"notify.{key}" in message and f"TICKOPS_NOTIFY__{key.upper()}" in message and expected in message


def test_environment_configures_both_channels_and_the_password_stays_secret(monkeypatch):
    monkeypatch.setenv("TICKOPS_NOTIFY__WEBHOOK_URL", "https://hooks.example.com/tickops")
    monkeypatch.setenv("TICKOPS_NOTIFY__SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("TICKOPS_NOTIFY__EMAIL_TO", '["ops@example.com","oncall@example.com"]')
    monkeypatch.setenv("TICKOPS_NOTIFY__SMTP_USERNAME", "tickops")
    monkeypatch.setenv("TICKOPS_NOTIFY__SMTP_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in str(settings.redacted())
    notifier = Notifier.from_settings(settings)
    assert notifier is not None
    webhook, email = notifier.channels
    assert isinstance(webhook, WebhookChannel) and webhook.url == "https://hooks.example.com/tickops"
    assert isinstance(email, EmailChannel) and email.recipients == ["ops@example.com", "oncall@example.com"]
    assert email.password == "hunter2" and "hunter2" not in repr(email)
    notifier.close(timeout_s=0)
