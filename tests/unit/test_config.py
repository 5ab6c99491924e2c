"""Settings: env and TOML sources, errors that name the setting, secrets never shown."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith("TICKOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_embedded_demo():
    settings = load_settings()
    assert settings.feed.mode == "simulator"
    assert settings.bus.kind == "memory"
    assert settings.storage.backend == "chdb"


def test_environment_overrides_nested_settings(monkeypatch):
    monkeypatch.setenv("TICKOPS_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.5:9094")
    monkeypatch.setenv("TICKOPS_FEED__LEVEL1_PORT", "15009")
    monkeypatch.setenv("TICKOPS_FEED__SYMBOLS", '["IBM","GE"]')
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "10.0.0.5:9094"
    assert settings.feed.level1_port == 15009
    assert settings.feed.symbols == ["IBM", "GE"]


def test_toml_file_is_read_and_env_wins_over_it(monkeypatch, tmp_path):
    path = tmp_path / "ops.toml"
    path.write_text('[storage]\nbackend = "server"\nport = 9440\n[feed]\nwatch_limit = 1000\n')
    monkeypatch.setenv("TICKOPS_CONFIG", str(path))
    monkeypatch.setenv("TICKOPS_STORAGE__PORT", "9441")
    settings = load_settings()
    assert settings.storage.backend == "server"
    assert settings.feed.watch_limit == 1000
    assert settings.storage.port == 9441


def test_out_of_range_port_names_the_setting_and_the_range(monkeypatch):
    monkeypatch.setenv("TICKOPS_FEED__LEVEL1_PORT", "70000")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "feed.level1_port" in message and "TICKOPS_FEED__LEVEL1_PORT" in message
    assert "65535" in message


def test_unknown_choice_lists_the_allowed_values(monkeypatch):
    monkeypatch.setenv("TICKOPS_BUS__KIND", "rabbitmq")
    with pytest.raises(ConfigError, match=r"bus\.kind.*'memory' or 'kafka'"):
        load_settings()


def test_unknown_setting_in_toml_is_rejected(monkeypatch, tmp_path):
    path = tmp_path / "ops.toml"
    path.write_text("[feed]\nlevel_one_port = 5009\n")
    monkeypatch.setenv("TICKOPS_CONFIG", str(path))
    with pytest.raises(ConfigError, match="feed.level_one_port"):
        load_settings()


def test_missing_config_file_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TICKOPS_CONFIG", "/nonexistent/tickops.toml")
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_secrets_never_appear_in_dumps_reprs_or_errors(monkeypatch):
    monkeypatch.setenv("TICKOPS_FEED__PASSWORD", "hunter2-secret")
    monkeypatch.setenv("TICKOPS_FEED__LOGIN", "trader-login-77")
    settings = load_settings()
    assert settings.feed.password.get_secret_value() == "hunter2-secret"
    shown = repr(settings) + str(settings) + str(settings.redacted())
    assert "hunter2-secret" not in shown and "trader-login-77" not in shown
    monkeypatch.setenv("TICKOPS_FEED__LEVEL2_PORT", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2-secret" not in str(caught.value)
