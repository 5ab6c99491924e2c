"""Dashboard render times in a real browser, with 1000 symbols live.

    .venv/bin/python bench/dashboard.py [--symbols 1000] [--rate 5000] [--repeat 5] [--json]

Starts `streamlit run app.py` with the embedded default (simulator, in-process bus, chDB)
watching ``--symbols`` simulated symbols at ``--rate`` messages/s, opens each page in Debian's
chromium (Playwright) ``--repeat`` times and records the time from navigation until the page's
script has finished and its main content is visible (a metric on Overview, the table on Live
feeds and Latency). Also samples the Streamlit process's CPU while one browser tab stays on the
Overview page (its live fragment refreshing). Target (BENCHMARKS.md): Overview and Live feeds
under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.iqfeed.simulator.config import generated_symbols  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PAGES = {  # path -> what shows the page rendered
    "": ("stMetric", "Events received"),
    "live_feeds": ("stDataFrame", None),
    "latency": ("stDataFrame", None),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(data: Path, symbols: int, rate: float) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
    env.update({
        "TICKOPS_DATA_DIR": str(data), "TICKOPS_MONITORING__ENABLED": "false", "TICKOPS_LOG_LEVEL": "WARNING",
        "TICKOPS_FEED__SYMBOLS": json.dumps(list(generated_symbols(symbols))),
        "TICKOPS_FEED__WATCH_LIMIT": str(max(500, symbols)), "TICKOPS_FEED__SIMULATOR_RATE": str(rate),
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=data, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("streamlit did not become healthy within 120 s")


def _render_s(page, url: str, test_id: str, text: str | None) -> float:
    began = time.perf_counter()
    page.goto(url)
    target = page.get_by_test_id(test_id)
    if text:
        target = target.filter(has_text=text)
    target.first.wait_for(state="visible", timeout=60_000)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60_000)  # the script run finished
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=30, help="seconds of data before measuring")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    results: dict[str, object] = {"symbols": args.symbols, "rate": args.rate}
    with tempfile.TemporaryDirectory() as data:
        proc, url = _start(Path(data), args.symbols, args.rate)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page()
                _render_s(page, url, "stMetric", "Events received")  # creates the engine: not measured
                time.sleep(args.warmup)
                for path, (test_id, text) in PAGES.items():
                    times = [_render_s(page, f"{url}/{path}", test_id, text) for _ in range(args.repeat)]
                    name = path or "overview"
                    results[f"{name}_median_s"] = round(statistics.median(times), 3)
                    results[f"{name}_min_s"] = round(min(times), 3)
                    results[f"{name}_max_s"] = round(max(times), 3)
                page.goto(url)
                streamlit = psutil.Process(proc.pid)
                streamlit.cpu_percent(None)
                time.sleep(20)
                results["streamlit_cpu_percent_overview_open"] = round(streamlit.cpu_percent(None), 1)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(60)
    results["load"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results) if args.json else "\n".join(f"{k:>36}: {v}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
