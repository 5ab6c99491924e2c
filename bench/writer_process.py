"""The writer as its own process for the benchmarks (``python -m storage.writer``, as deployed), read
through its ``/metrics``.

The writer's histograms and counters live in that process, so the benchmark scrapes them at the
window's start and end; the freshness percentiles are then the export's bucket bounds (…, 100, 200,
500, 1000 ms: storage/writer_metrics.py), coarser than the in-process log-linear ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
FRESHNESS = "tickops_latency_recv_to_stored_seconds"


@dataclass(frozen=True)
class WriterScrape:
    stored: float
    lag: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound in s, cumulative count), ascending, +Inf last
    cpu_s: float


def percentile_ms(start: WriterScrape, end: WriterScrape, q: float) -> float | None:
    """The bucket bound (ms) under which a share ``q`` of the window's values fall; None without values."""
    counts = [(bound, e - s) for (bound, e), (_, s) in zip(end.buckets, start.buckets)]
    total = counts[-1][1] if counts else 0
    if total <= 0:
        return None
    for bound, cumulative in counts:
        if cumulative >= q * total:
            return round(bound * 1000, 2) if bound != float("inf") else None
    return None


class WriterProcess:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "storage.writer"], cwd=ROOT, env={**os.environ, **env})
        self._ps = psutil.Process(self.proc.pid)

    def scrape(self) -> WriterScrape | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        stored = lag = 0.0
        buckets: list[tuple[float, float]] = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "tickops_writer_stored_total":
                    stored = sample.value
                elif sample.name == "tickops_writer_lag":
                    lag = sample.value
                elif sample.name == f"{FRESHNESS}_bucket":
                    buckets.append((float(sample.labels["le"]), sample.value))
        cpu = self._ps.cpu_times()
        return WriterScrape(stored, lag, tuple(sorted(buckets)), cpu.user + cpu.system)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.scrape() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the writer process did not serve /metrics")
            time.sleep(0.5)

    def drain(self, timeout_s: float = 120) -> None:
        """Wait until the writer has stored what the bus holds (lag 0 and nothing more stored for 3 s)."""
        deadline, last, quiet_since = time.monotonic() + timeout_s, -1.0, time.monotonic()
        while time.monotonic() < deadline:
            scrape = self.scrape()
            if scrape is not None and scrape.stored != last:
                last, quiet_since = scrape.stored, time.monotonic()
            elif scrape is not None and scrape.lag == 0 and time.monotonic() - quiet_since > 3:
                return
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
