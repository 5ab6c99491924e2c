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


# Each cross-field rule: (setting that is reported, env overrides that break it, TOML that breaks it, words expected).
# The env cases set one side only, so a rule also holds against the other side's default.
CROSS_FIELD_RULES = [
    ("feed.reconnect_max_s", {"TICKOPS_FEED__RECONNECT_INITIAL_S": "20"},
     "[feed]\nreconnect_initial_s = 5.0\nreconnect_max_s = 2.0\n", "feed.reconnect_initial_s"),
    ("feed.restart_max_s", {"TICKOPS_FEED__RESTART_MAX_S": "1"},
     "[feed]\nrestart_initial_s = 120.0\nrestart_max_s = 60.0\n", "feed.restart_initial_s"),
    ("kafka.breaker_reset_max_s", {"TICKOPS_KAFKA__BREAKER_RESET_S": "10"},
     "[kafka]\nbreaker_reset_s = 3.0\nbreaker_reset_max_s = 2.0\n", "kafka.breaker_reset_s"),
    ("kafka.spool_segment_mb", {"TICKOPS_KAFKA__SPOOL_BUDGET_MB": "8"},
     "[kafka]\nspool_budget_mb = 100\nspool_segment_mb = 200\n", "kafka.spool_budget_mb"),
    ("kafka.message_timeout_ms", {"TICKOPS_KAFKA__LINGER_MS": "1000", "TICKOPS_KAFKA__MESSAGE_TIMEOUT_MS": "1000"},
     "[kafka]\nlinger_ms = 1000\nmessage_timeout_ms = 1000\n", "kafka.linger_ms"),
    ("storage.retry_max_ms", {"TICKOPS_STORAGE__RETRY_INITIAL_MS": "6000"},
     "[storage]\nretry_initial_ms = 500\nretry_max_ms = 400\n", "storage.retry_initial_ms"),
    ("notify.retry_max_s", {"TICKOPS_NOTIFY__RETRY_INITIAL_S": "31"},
     "[notify]\nretry_initial_s = 10.0\nretry_max_s = 5.0\n", "notify.retry_initial_s"),
    ("backup.budget_mb", {"TICKOPS_BACKUP__BUDGET_MB": "32"},
     "[backup]\nsegment_max_mb = 128\nbudget_mb = 100\n", "backup.segment_max_mb"),
]


def _env_and_toml_cases():
    for reported, env, toml, other in CROSS_FIELD_RULES:
        yield pytest.param(reported, env, None, other, id=f"{reported}-env")
        yield pytest.param(reported, {}, toml, other, id=f"{reported}-toml")


@pytest.mark.parametrize(("reported", "env", "toml", "other"), list(_env_and_toml_cases()))
def test_cross_field_rule_fails_at_load_naming_both_settings(monkeypatch, tmp_path, reported, env, toml, other):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if toml is not None:
        path = tmp_path / "ops.toml"
        path.write_text(toml)
        monkeypatch.setenv("TICKOPS_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    env_name = "TICKOPS_" + reported.replace(".", "__").upper()
    assert message.startswith("invalid TickOps configuration:\n")
    assert f"\n  {reported} (env {env_name}): " in message
    section, _, other_field = other.partition(".")
    assert reported.startswith(section + ".")
    assert f"{other_field} (" in message, "the error names the pair's other setting"


def test_pairs_at_their_limit_are_accepted():
    settings = load_settings(
        feed={"reconnect_initial_s": 5, "reconnect_max_s": 5, "restart_initial_s": 60, "restart_max_s": 60},
        kafka={"breaker_reset_s": 5, "breaker_reset_max_s": 5, "spool_budget_mb": 16, "spool_segment_mb": 16,
               "linger_ms": 999, "message_timeout_ms": 1000},
        storage={"retry_initial_ms": 5000, "retry_max_ms": 5000},
        notify={"retry_initial_s": 30, "retry_max_s": 30},
        backup={"segment_max_mb": 64, "budget_mb": 64},
    )
    assert settings.kafka.spool_segment_mb == settings.kafka.spool_budget_mb == 16


@pytest.mark.parametrize("name", ["tick,ops", "tick\r\nops", "tick\x01ops", "tickops\u00e9", ""])
def test_client_name_must_be_printable_ascii_without_commas(monkeypatch, name):
    monkeypatch.setenv("TICKOPS_FEED__CLIENT_NAME", name)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "  feed.client_name (env TICKOPS_FEED__CLIENT_NAME): " in str(caught.value)


def test_client_name_from_toml_is_checked_too(monkeypatch, tmp_path):
    path = tmp_path / "ops.toml"
    path.write_text('[feed]\nclient_name = "desk 7, floor 2"\n')
    monkeypatch.setenv("TICKOPS_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"feed\.client_name \(env TICKOPS_FEED__CLIENT_NAME\): .*comma"):
        load_settings()
    path.write_text('[feed]\nclient_name = "desk-7 floor.2"\n')
    assert load_settings().feed.client_name == "desk-7 floor.2"


def _settings_fields(model, prefix=""):
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = getattr(annotation, "model_fields", None)
        if nested is not None:
            yield from _settings_fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info
    if model.__name__ == "DashboardSettings":
        from config import OperatorSettings
        yield from _settings_fields(OperatorSettings, f"{prefix}operators.<name>.")


def test_every_secret_bearing_setting_is_a_secret_type():
    """The one redaction mechanism is the SecretStr type: a new credential field must use it to be masked."""
    from pydantic import SecretStr

    from config import Settings

    looks_secret = ("password", "login", "token", "secret", "api_key", "_url", "credential")
    plain = [name for name, info in _settings_fields(Settings)
             if any(word in name for word in looks_secret) and SecretStr not in getattr(info.annotation, "__args__",
                                                                                         (info.annotation,))]
    assert not plain, f"secret-bearing settings not typed SecretStr (they would be logged): {plain}"
