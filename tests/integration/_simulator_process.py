"""The simulator as a process of its own (``python -m collectors.iqfeed.simulator``) on ephemeral ports,
as the fleet tests run it: each collector's IQConnect, or one shared market."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on \S+: level1=(\d+) level2=(\d+) admin=(\d+) lookup=(\d+)")


def start_simulator(log_path: Path, *args: str) -> tuple[subprocess.Popen, dict[str, int]]:
    """Start it with ``args`` (ports are ephemeral) and return it with its ports once it listens."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [os.environ.get("TICKOPS_PYTHON", sys.executable), "-m", "collectors.iqfeed.simulator",
             "--level1-port", "0", "--level2-port", "0", "--admin-port", "0", "--lookup-port", "0", *args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return proc, dict(zip(("level1", "level2", "admin", "lookup"), (int(g) for g in match.groups())))
        assert proc.poll() is None, log_path.read_text()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the simulator did not start listening: {log_path.read_text(errors='replace')[-2000:]}")
