"""Backup append throughput on one core: the backup must never be what slows ingestion.

    .venv/bin/python bench/bench_backup.py [--events 500000] [--batch 100] [--repeat 3] [--min-rate 200000]

Events are a realistic Level 1 mix (60 % quotes, 40 % trades over 10 symbols, one
source with increasing seq) appended in batches of ``--batch`` to a
:class:`storage.backup.BackupWriter` with the default settings (zstd level 3, 256 KB
frames, 64 MB segments) in a fresh temporary directory; the time includes encoding,
compression, writes and sealing. Prints the best of ``--repeat`` runs in events/s, the
compressed bytes per event and the read-back rate (verify sha256 + decode), and exits 1
when appending is under ``--min-rate``.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events import Event, Quote, Trade
from storage.backup import BackupConfig, BackupWriter
from storage.segments import list_segments, verify_segment

TARGET_EVENTS_PER_S = 200_000
_SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "TSLA", "NVDA", "AMZN", "META", "GOOG", "IWM")


def make_events(count: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    prices = {symbol: rng.uniform(20, 600) for symbol in _SYMBOLS}
    ts = 1_795_000_000_000_000_000
    events: list[Event] = []
    for seq in range(1, count + 1):
        ts += rng.randint(50_000, 400_000)
        symbol = rng.choice(_SYMBOLS)
        prices[symbol] = round(prices[symbol] * (1 + rng.uniform(-0.0004, 0.0004)), 2)
        price = prices[symbol]
        envelope = {"source": "bench-1", "seq": seq, "recv_ns": ts + rng.randint(200_000, 2_000_000)}
        if rng.random() < 0.6:
            events.append(Quote(symbol=symbol, bid=price - 0.01, bid_size=rng.randint(1, 40) * 100, ask=price + 0.01,
                                ask_size=rng.randint(1, 40) * 100, ts_ns=ts, **envelope))
        else:
            events.append(Trade(symbol=symbol, price=price, size=rng.choice((1, 10, 100, 200, 500)), ts_ns=ts,
                                conditions=("17",), market_center=rng.choice((11, 19, 26)), tick_id=seq,
                                total_volume=seq * 100, basis="C", **envelope))
    return events


def run(events: list[Event], batch: int, directory: Path) -> tuple[float, int]:
    """Seconds to append and close, and the bytes written."""
    writer = BackupWriter(BackupConfig(directory=directory, instance_id="bench-1"))
    gc.collect()
    start = time.perf_counter()
    for index in range(0, len(events), batch):
        writer.append(events[index : index + batch])
    writer.close()
    elapsed = time.perf_counter() - start
    health = writer.health
    if health.events_written != len(events):
        raise SystemExit(f"backup wrote {health.events_written} of {len(events)} events: {health.last_error}")
    return elapsed, health.bytes_written


def read_back(directory: Path) -> float:
    start = time.perf_counter()
    count = sum(len(batch) for segment in list_segments(directory) for batch in verify_segment(segment).batches())
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-rate", type=float, default=TARGET_EVENTS_PER_S)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()

    events = make_events(args.events)
    best = float("inf")
    size = 0
    read_rate = 0.0
    for _ in range(args.repeat):
        directory = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=args.dir))
        try:
            elapsed, size = run(events, args.batch, directory)
            best = min(best, elapsed)
            read_rate = max(read_rate, read_back(directory))
        finally:
            shutil.rmtree(directory)
    rate = len(events) / best
    print(
        f"backup append: {rate:,.0f} events/s (best of {args.repeat}, {len(events):,} events in batches of "
        f"{args.batch}); {size / len(events):.1f} compressed bytes/event; read back {read_rate:,.0f} events/s"
    )
    if rate < args.min_rate:
        print(f"FAIL: under the target of {args.min_rate:,.0f} events/s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
