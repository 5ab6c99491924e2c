import hashlib
import io

import pytest

from config import USERS_COMMAND, ConfigError, DashboardSettings, load_settings
from dashboard.auth import (
    LOCAL,
    Operator,
    attempt_login,
    authenticate,
    can_act,
    can_administer,
    demo_mode,
    demo_refusal,
    is_loopback,
    legacy_warning,
    throttle_for,
)
from dashboard.passwords import WeakPassword, hash_password, verify_password, verify_sha256
from dashboard.throttle import LoginThrottle, ThrottlePolicy
from dashboard.users import main as users_main
from tests.fake_clock import FakeClock

ANNA_HASH = hash_password("s3cret-anna-pw", ln=10)  # a low cost keeps the tests fast; the format is the same


def _settings(**extra) -> DashboardSettings:
    return DashboardSettings(operators={
        "anna": {"role": "operator", "password_hash": ANNA_HASH},
        "vic": {"role": "viewer", "password_sha256": hashlib.sha256(b"look").hexdigest()},
    }, **extra)


def test_a_scrypt_entry_is_salted_and_verifies_only_its_password():
    entry = hash_password("correct horse battery")
    assert entry.startswith("scrypt:ln=14,r=8,p=1:")
    assert verify_password(entry, "correct horse battery") and not verify_password(entry, "correct horse batterY")
    assert hash_password("correct horse battery") != entry  # a new salt each time
    assert not verify_password("scrypt:garbage", "correct horse battery")
    assert verify_sha256(hashlib.sha256(b"look").hexdigest().upper(), "look")
    with pytest.raises(WeakPassword, match="at least 10"):
        hash_password("short")


def test_correct_password_logs_in_with_the_configured_role_for_new_and_legacy_entries():
    assert authenticate(_settings(), "anna", "s3cret-anna-pw") == Operator("anna", "operator")
    assert authenticate(_settings(), "anna", "wrong") is None
    assert authenticate(_settings(), "nobody", "s3cret-anna-pw") is None
    assert authenticate(_settings(), "vic", "look") == Operator("vic", "viewer")
    assert authenticate(_settings(), "vic", "looked") is None


def test_viewers_only_read_operators_act_and_admins_also_administer():
    viewer, operator, admin = Operator("vic", "viewer"), Operator("anna", "operator"), Operator("root", "admin")
    assert not can_act(viewer) and not can_act(None) and can_act(operator) and can_act(admin)
    assert not can_administer(viewer) and not can_administer(operator) and can_administer(admin)


def test_demo_mode_only_without_configured_operators():
    assert demo_mode(DashboardSettings()) and not demo_mode(_settings())


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "unix:///run/ts.sock"])
def test_demo_mode_runs_on_a_loopback_address(address):
    assert is_loopback(address) and demo_refusal(DashboardSettings(), address) is None


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "10.0.0.5", "dashboard.example.com"])
def test_demo_mode_is_refused_on_any_other_address_unless_explicitly_allowed(address):
    refusal = demo_refusal(DashboardSettings(), address)
    assert refusal is not None and refusal.startswith("Refusing to run in demo mode")
    assert USERS_COMMAND in refusal and "dashboard.allow_demo = true" in refusal
    assert demo_refusal(DashboardSettings(allow_demo=True), address) is None
    assert demo_refusal(_settings(), address) is None  # with operators there is no demo mode


def test_legacy_sha256_entries_are_accepted_with_a_warning_naming_the_command():
    warning = legacy_warning(_settings())
    assert warning is not None and "1 operator login(s)" in warning and USERS_COMMAND in warning
    assert _settings().legacy_operators() == ["vic"]
    assert legacy_warning(DashboardSettings(operators={"anna": {"password_hash": ANNA_HASH}})) is None


def test_a_password_instead_of_a_digest_is_a_config_error_that_does_not_echo_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TICKOPS_DASHBOARD__OPERATORS", '{"anna": {"role": "operator", "password_sha256": "hunter2"}}')
    with pytest.raises(ConfigError, match="SHA-256 hex digest") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
    monkeypatch.setenv("TICKOPS_DASHBOARD__OPERATORS", '{"anna": {"role": "operator", "password_hash": "hunter2"}}')
    with pytest.raises(ConfigError, match="printed by `python -m dashboard.users add") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("entry, error", [
    ({"role": "operator"}, "exactly one of password_hash"),
    ({"password_hash": ANNA_HASH, "password_sha256": "0" * 64}, "exactly one of password_hash"),
    ({"password_hash": ANNA_HASH.replace("ln=10", "ln=30")}, "ln 10..18"),
])
def test_an_operator_entry_needs_exactly_one_well_formed_password(entry, error):
    with pytest.raises(ValueError, match=error):
        DashboardSettings(operators={"anna": entry})


def test_an_operator_name_that_cannot_be_a_login_is_a_config_error():
    with pytest.raises(ValueError, match="operator names must be"):
        DashboardSettings(operators={"an na": {"password_hash": ANNA_HASH}})


def test_the_users_command_prints_an_entry_that_loads_and_logs_in(monkeypatch, tmp_path):
    out = io.StringIO()
    assert users_main(["add", "ops.anna", "--role", "admin", "--password-stdin"],
                      stdin=io.StringIO("a long passphrase\n"), out=out) == 0
    text = out.getvalue()
    toml, env = text.split("\n\n")
    assert "a long passphrase" not in text
    (tmp_path / "tickops.toml").write_text(toml)
    monkeypatch.chdir(tmp_path)
    loaded = load_settings().dashboard
    assert authenticate(loaded, "ops.anna", "a long passphrase") == Operator("ops.anna", "admin")
    monkeypatch.setenv("TICKOPS_DASHBOARD__OPERATORS", env.split("TICKOPS_DASHBOARD__OPERATORS=")[1].strip().strip("'"))
    (tmp_path / "tickops.toml").unlink()
    assert authenticate(load_settings().dashboard, "ops.anna", "a long passphrase") == Operator("ops.anna", "admin")
    assert users_main(["add", "an na", "--role", "viewer", "--password-stdin"], stdin=io.StringIO("x" * 20)) == 1


# ---------------------------------------------------------------- throttling (fake clock: no sleeping)

def test_failures_beyond_the_threshold_lock_out_for_exponentially_longer_up_to_the_maximum():
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(after_failures=3, initial_s=1.0, max_s=8.0), clock=clock)
    lockouts = []
    for _ in range(7):
        assert throttle.locked_for("user:anna") == 0
        lockouts.append(throttle.failed("user:anna"))
        clock.now += lockouts[-1]  # wait out each lockout
    assert lockouts == [0, 0, 1, 2, 4, 8, 8]
    throttle.failed("user:anna")
    clock.now += 7.5
    assert throttle.locked_for("user:anna") == pytest.approx(0.5)
    assert throttle.stats().lockouts == 6 and throttle.stats().refused == 1


def test_a_lockout_holds_per_user_from_any_client_and_per_client_for_any_user():
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(after_failures=2, initial_s=10.0), clock=clock)
    throttle.failed("user:anna", "client:10.0.0.1")
    throttle.failed("user:anna", "client:10.0.0.2")
    assert throttle.locked_for("user:anna", "client:10.0.0.3") == 10  # the name, from a new address
    for name in ("bob", "carl"):
        throttle.failed(f"user:{name}", "client:10.0.0.9")
    assert throttle.locked_for("user:dora", "client:10.0.0.9") == 10  # the address, with a new name
    clock.now += 10
    assert throttle.locked_for("user:anna", "client:10.0.0.3") == 0


def test_failures_are_forgotten_after_a_quiet_while_and_a_success_clears_the_user():
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(after_failures=2, initial_s=5.0, forget_s=60.0), clock=clock)
    throttle.failed("user:anna")
    clock.now += 61
    assert throttle.failed("user:anna") == 0  # the first failure was forgotten
    throttle.succeeded("user:anna")
    assert throttle.failed("user:anna") == 0
    assert throttle.stats().tracked == 1


def test_the_throttle_remembers_a_bounded_number_of_keys():
    throttle = LoginThrottle(clock=FakeClock(), max_keys=100)
    for i in range(1000):
        throttle.failed(f"user:guess-{i}")
    assert throttle.stats().tracked == 100 and throttle.stats().failures == 1000


def test_every_login_outcome_is_audited_and_a_locked_name_is_refused_even_with_the_right_password():
    clock = FakeClock()
    settings = _settings(lockout_after_failures=2, lockout_initial_s=30.0)
    throttle = throttle_for(settings, clock=clock)
    audited: list[tuple[str, str, str, str]] = []

    def audit(actor: str, action: str, subject: str, details: str) -> None:
        audited.append((actor, action, subject, details))

    def login(password: str, name: str = "anna"):
        return attempt_login(settings, throttle, audit, name, password, "10.1.2.3")

    assert login("wrong").operator is None
    locked = login("wrong again")
    assert locked.operator is None and "Locked for 30 s" in locked.message
    refused = login("s3cret-anna-pw")
    assert refused.operator is None and "try again in 30 s" in refused.message
    clock.now += 30
    assert login("s3cret-anna-pw").operator == Operator("anna", "operator")
    assert [(a, action) for a, action, _, _ in audited] == [
        ("anna", "login_failed"), ("anna", "login_failed"), ("anna", "login_locked"), ("anna", "login")]
    assert audited[1][3] == "client=10.1.2.3 lockout_s=30" and audited[3][3] == "client=10.1.2.3 role=operator"
    attempt_login(settings, throttle, audit, "x\x00" * 100, "pw", None)
    assert audited[-1][0] == ("x?" * 32) and audited[-1][3].startswith(f"client={LOCAL} ")
