"""IQConnectSupervisor with the simulator standing in for iqconnect.exe as a real process."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from collectors.iqfeed.iqconnect import IQConnectSupervisor, LaunchCommandError
from config import FeedSettings
from tests.integration._feed_support import wait_until
from tests.ports import free_ports

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Zq81-never-in-logs"
LOGIN = "demo-user-4471"


def stand_in_settings(*flags: str, connect_timeout_s: float = 8.0) -> FeedSettings:
    """Settings whose launch command starts the simulator where iqconnect.exe would be."""
    level1, level2, admin, lookup = free_ports(4)
    simulator = (
        f"{shlex.quote(sys.executable)} -m collectors.iqfeed.simulator --host 127.0.0.1 "
        f"--level1-port {level1} --level2-port {level2} --admin-port {admin} --lookup-port {lookup} "
        f"--symbols AAPL --rate 20 --seed 7 {' '.join(flags)} "
        "-product {product} -version {version} -login {login} -password {password} -autoconnect"
    )
    return FeedSettings(
        mode="iqconnect", host="127.0.0.1", level1_port=level1, level2_port=level2, admin_port=admin,
        lookup_port=lookup, product_id="TICKOPS_TEST", product_version="1.0", login=SecretStr(LOGIN),
        password=SecretStr(PASSWORD), launch_command=simulator, connect_timeout_s=connect_timeout_s,
        heartbeat_timeout_s=2.0, reconnect_initial_s=0.1, reconnect_max_s=0.3,
        restart_initial_s=0.2, restart_max_s=0.5,
    )


@contextmanager
def supervising(settings: FeedSettings) -> Iterator[IQConnectSupervisor]:
    supervisor = IQConnectSupervisor(settings, cwd=ROOT)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()
        assert not supervisor.state.running, "IQConnect must be stopped with its supervisor"


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert PASSWORD not in text, f"password leaked in log record {record.getMessage()!r}"


def test_launches_waits_for_connected_and_never_logs_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with supervising(stand_in_settings("--connect-delay", "0.5")) as supervisor:
        assert supervisor.wait_connected(20), supervisor.state
        state = supervisor.state
        assert state.running and state.dtn_connected is True and state.restarts == 0 and state.problem == ""
        assert PASSWORD in supervisor.command  # the child gets it ...
        assert PASSWORD not in supervisor.display_command and "***" in supervisor.display_command
        time.sleep(1.5)  # the admin connection stays open; IQConnect stays up
        assert supervisor.state.running and supervisor.state.restarts == 0
    assert any(r.getMessage() == "launching IQConnect" for r in caplog.records)
    assert any(r.getMessage() == "iqconnect output" for r in caplog.records), "child output is logged"
    assert_no_secret_logged(caplog)


def test_never_connected_is_reported_as_a_login_problem_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with supervising(stand_in_settings("--wrong-login", connect_timeout_s=1.5)) as supervisor:
        assert wait_until(lambda: supervisor.state.restarts >= 1, 20), supervisor.state
        assert "login or entitlement" in supervisor.state.problem
        assert not supervisor.wait_connected(0.1)
    assert any("login or entitlement" in str(getattr(r, "problem", "")) for r in caplog.records)
    assert_no_secret_logged(caplog)


def test_a_crashed_iqconnect_is_restarted_and_connects_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with supervising(stand_in_settings("--exit-after", "2")) as supervisor:
        assert supervisor.wait_connected(20)
        first_pid = supervisor.state.pid
        assert wait_until(lambda: supervisor.state.restarts >= 1, 20), supervisor.state
        assert supervisor.state.last_exit_code == 3
        assert wait_until(lambda: supervisor.state.dtn_connected is True and supervisor.state.pid != first_pid, 20)
    assert_no_secret_logged(caplog)


def test_bad_launch_template_is_a_clear_configuration_error() -> None:
    settings = FeedSettings(launch_command="wine iqconnect.exe -login {user}")
    with pytest.raises(LaunchCommandError, match="placeholders"):
        IQConnectSupervisor(settings)


def test_launch_under_xvfb_keeps_a_password_with_spaces_as_one_argument() -> None:
    settings = FeedSettings(launch_under_xvfb=True, product_id="P", login=SecretStr("me"),
                            password=SecretStr("two words"))
    command = IQConnectSupervisor(settings).command
    assert command[:3] == ["xvfb-run", "-a", "wine"]
    assert command[command.index("-password") + 1] == "two words"
