"""``python -m collectors.iqfeed.simulator`` as a process, as a supervisor would launch it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.simulator_client import LineClient, connect, fields

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on \S+: level1=(\d+) level2=(\d+) admin=(\d+) lookup=(\d+)")
IQCONNECT_ARGS = ["-product", "TICKOPS", "-version", "1.0", "-login", "416828", "-password", "secret",
                  "-autoconnect", "-savelogininfo"]


def _launch(*flags: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "collectors.iqfeed.simulator", "--level1-port", "0", "--level2-port", "0",
         "--admin-port", "0", "--lookup-port", "0", "--symbols", "AAPL,MSFT", "--rate", "50", *flags],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        match = LISTENING.search(line)
        if match:
            names = ("level1", "level2", "admin", "lookup")
            return proc, dict(zip(names, (int(g) for g in match.groups())))
    proc.kill()
    raise AssertionError(f"no listening line; exit code {proc.wait()}")


def test_help_lists_the_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "collectors.iqfeed.simulator", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0
    for flag in ("--host", "--level1-port", "--level2-port", "--admin-port", "--lookup-port", "--symbols", "--rate",
                 "--replay", "--speed", "--seed", "--shift-to-today", "--watch-limit", "--watch-limit-per-connection", "--wrong-login",
                 "--exit-after", "--connect-delay", "--history-ticks", "--trade-log"):
        assert flag in out.stdout


def test_iqconnect_arguments_are_accepted_and_sigterm_stops_cleanly() -> None:
    proc, ports = _launch(*IQCONNECT_ARGS)
    try:
        with connect(ports["level1"]) as client, LineClient(ports["admin"]) as admin:
            client.send("wAAPL")
            assert client.expect("P,AAPL,")
            stats = fields(admin.expect("S,STATS,"))
            assert stats[12] == "Connected" and stats[14] == "416828"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()


def test_exit_after_dies_with_code_3_and_wrong_login_never_connects() -> None:
    proc, ports = _launch("--exit-after", "1.5", "--wrong-login", *IQCONNECT_ARGS)
    try:
        with LineClient(ports["admin"]) as admin:
            assert fields(admin.expect("S,STATS,"))[12] == "Not Connected"
        assert proc.wait(timeout=15) == 3
    finally:
        proc.kill()


def test_a_bad_setting_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "collectors.iqfeed.simulator", "--speed", "5000"], cwd=ROOT,
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "speed=5000" in out.stderr


def test_watch_limit_per_connection_flag_gives_each_connection_its_own_limit() -> None:
    proc, ports = _launch("--watch-limit", "1", "--watch-limit-per-connection")
    try:
        with connect(ports["level1"]) as one, connect(ports["level1"]) as two:
            one.send("wAAPL")
            one.expect("P,AAPL,")
            two.send("wMSFT")
            assert two.expect("P,").startswith("P,MSFT,")
            one.send("wMSFT")
            assert one.expect("S,SYMBOL") == "S,SYMBOL LIMIT REACHED,MSFT"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
