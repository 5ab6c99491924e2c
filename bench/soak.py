"""Memory soak: does the collector's RSS keep growing at a steady rate once warmed up?

    .venv/bin/python bench/soak.py --rate 20000 --symbols 1000 --minutes 30 [--warmup-minutes 10]
        [--bus kafka|memory] [--store server|chdb] [--writer embedded|process] [--json]

Runs the same pipeline as bench/e2e.py (simulator process -> this process's engine -> bus ->
writer -> storage), samples this process's RSS every 10 s, and fits a least-squares slope to
the samples after the warm-up. The benchmark's own record of every ingested seq (8 bytes an
event, 9 MiB a minute at 20k events/s) lives in the same process: the engine's RSS is judged
with that array's size taken off each sample (``harness_mb``), and the raw slope is printed too. The target (BENCHMARKS.md) is growth under 1 % per 10 minutes;
the run also ends with the exact loss and duplicate count of e2e.py. Exit status 1 when the
target is missed or anything was lost or doubled. With ``--writer process`` (bench/writer_process.py)
the writer's own process is sampled and judged the same way, and the writer's lag at the end is
printed: a writer that fell behind would grow by its backlog, not by a leak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_run import pipeline  # noqa: E402

SAMPLE_S = 10.0


def slope_per_s(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples."""
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30, help="measured after the warm-up")
    parser.add_argument("--warmup-minutes", type=float, default=10)
    parser.add_argument("--bus", choices=["kafka", "memory"], default="kafka")
    parser.add_argument("--store", choices=["server", "chdb"], default="server")
    parser.add_argument("--writer", choices=["embedded", "process"], default="embedded")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.writer == "process" and (args.bus, args.store) != ("kafka", "server"):
        parser.error("--writer process needs --bus kafka --store server")

    me = psutil.Process(os.getpid())
    samples: list[tuple[float, float]] = []
    raw_samples: list[tuple[float, float]] = []
    writer_samples: list[tuple[float, float]] = []
    writer_lag = None
    with pipeline(rate=args.rate, symbols=args.symbols, bus=args.bus, store=args.store, writer=args.writer) as run:
        writer = psutil.Process(run.writer.proc.pid) if run.writer else None
        time.sleep(args.warmup_minutes * 60)
        start = time.monotonic()
        ingested0 = run.engine.status().ingested
        while time.monotonic() - start < args.minutes * 60:
            at, rss = time.monotonic() - start, me.memory_info().rss / 2**20
            harness = run.ingested.buffer_info()[1] * run.ingested.itemsize / 2**20
            raw_samples.append((at, rss))
            samples.append((at, rss - harness))
            if writer is not None:
                writer_samples.append((samples[-1][0], writer.memory_info().rss / 2**20))
            # always, on stderr with --json: a run that dies in its cleanup still leaves its samples
            print(f"{at:7.0f} s  rss {rss:8.1f} MiB  harness {harness:7.1f} MiB"
                  + (f"  writer {writer_samples[-1][1]:8.1f} MiB" if writer_samples else ""),
                  file=sys.stderr if args.json else sys.stdout, flush=True)
            time.sleep(SAMPLE_S)
        rate = (run.engine.status().ingested - ingested0) / (time.monotonic() - start)
        if run.writer is not None:
            scrape = run.writer.scrape()
            writer_lag = scrape.lag if scrape else None
        counts = run.finish()
    first = samples[0][1]
    growth_pct_per_10min = slope_per_s(samples) * 600 / first * 100
    result = {
        **counts, "rate": round(rate), "rss_start_mb": round(first, 1), "rss_end_mb": round(samples[-1][1], 1),
        "rss_max_mb": round(max(v for _, v in samples), 1), "growth_pct_per_10min": round(growth_pct_per_10min, 3),
        "raw_growth_pct_per_10min": round(slope_per_s(raw_samples) * 600 / raw_samples[0][1] * 100, 3),
        "minutes": args.minutes, "warmup_minutes": args.warmup_minutes, "bus": args.bus, "store": args.store,
        "symbols": args.symbols, "sim_rate": args.rate, "writer": args.writer,
    }
    writer_growth = 0.0
    if writer_samples:
        writer_growth = slope_per_s(writer_samples) * 600 / writer_samples[0][1] * 100
        result.update({"writer_rss_start_mb": round(writer_samples[0][1], 1),
                       "writer_rss_end_mb": round(writer_samples[-1][1], 1),
                       "writer_growth_pct_per_10min": round(writer_growth, 3), "writer_lag_at_end": writer_lag})
    print(json.dumps(result) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items()))
    met = growth_pct_per_10min < 1.0 and writer_growth < 1.0 and counts["lost"] == 0 and counts["duplicates"] == 0
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
