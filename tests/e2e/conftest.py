"""A real Streamlit server (subprocess) and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def start_dashboard(data: Path, settings: dict[str, str] | None = None,
                    address: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` with the embedded default in ``data`` (``settings``: TICKOPS_* env on top),
    listening on ``address``; returns once healthy (reached through 127.0.0.1)."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TICKOPS_")}
    env["TICKOPS_DATA_DIR"] = str(data)
    env["TICKOPS_MONITORING__ENABLED"] = "false"
    env.update(settings or {})
    log = open(data / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", address,
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not become healthy; log:\n{(data / 'streamlit.log').read_text()[-3000:]}")
        time.sleep(0.5)


def stop_dashboard(proc: subprocess.Popen, timeout_s: float = 30) -> int | None:
    """SIGTERM, then the exit code; None (after SIGKILL) when it did not exit in time."""
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served by `streamlit run app.py` with the embedded default, in a temp data dir
    (module scope: its engine stops after the module's tests instead of running all session)."""
    proc, url = start_dashboard(tmp_path_factory.mktemp("dashboard"))
    try:
        yield url
    finally:
        stop_dashboard(proc)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: scripts/install_system.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()
