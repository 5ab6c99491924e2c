"""Host health samples (CPU, memory, disk, this process's RSS) kept in a bounded ring.

The RSS history is what the leak rule looks at: a steady positive slope over a long
window means memory grows without bound, long before the process is killed for it. The
first minutes after start are left out (:func:`rss_growth_after_warmup`): caches, the
bus and connection pools fill up then, and a slope fitted to them is not a leak.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class HostSample:
    ts_ns: int
    cpu_pct: float
    mem_pct: float
    disk_free_pct: float
    disk_free_bytes: int
    rss_bytes: int
    open_files: int
    threads: int


class HostSampler:
    def __init__(self, data_dir: Path, keep: int = 720) -> None:
        self._data_dir = Path(data_dir)
        self._process = psutil.Process(os.getpid())
        self._samples: deque[HostSample] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._process.cpu_percent(None)

    def sample(self) -> HostSample:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        disk = psutil.disk_usage(str(self._data_dir))
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            threads = self._process.num_threads()
            try:
                open_files = len(self._process.open_files())
            except psutil.Error:
                open_files = -1
        sample = HostSample(
            ts_ns=time.time_ns(),
            cpu_pct=psutil.cpu_percent(None),
            mem_pct=psutil.virtual_memory().percent,
            disk_free_pct=100.0 - disk.percent,
            disk_free_bytes=disk.free,
            rss_bytes=rss,
            open_files=open_files,
            threads=threads,
        )
        with self._lock:
            self._samples.append(sample)
        return sample

    def history(self) -> list[HostSample]:
        with self._lock:
            return list(self._samples)


def rss_slope_bytes_per_hour(samples: list[HostSample]) -> float:
    """Least-squares slope of RSS over time; 0 with fewer than two samples."""
    if len(samples) < 2:
        return 0.0
    xs = [(s.ts_ns - samples[0].ts_ns) / 3.6e12 for s in samples]
    ys = [float(s.rss_bytes) for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var


def rss_growth_after_warmup(
    samples: list[HostSample], *, started_ns: int, now_ns: int, warmup_s: float, window_s: float
) -> float | None:
    """RSS slope (bytes/h) over the last ``window_s`` of samples taken after ``warmup_s``; None until the
    samples after warm-up span (nearly) the whole window, so a young process is never judged on minutes."""
    first_ns = max(started_ns + int(warmup_s * 1e9), now_ns - int(window_s * 1e9))
    used = [sample for sample in samples if sample.ts_ns >= first_ns]
    if len(used) < 2 or used[-1].ts_ns - used[0].ts_ns < 0.9 * window_s * 1e9:
        return None
    return rss_slope_bytes_per_hour(used)
