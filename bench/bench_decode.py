"""Level 1 decode throughput on one core: the feed must never be CPU-bound in parsing.

    .venv/bin/python bench/bench_decode.py [--lines 500000] [--repeat 5] [--min-rate 300000]

Lines are realistic default-field-list ``Q`` updates (mostly quotes, a third trades,
some both, a heartbeat every 2,000 lines) generated from a fixed seed, decoded through
:meth:`Level1Decoder.decode` exactly as a connection does. Prints the best of
``--repeat`` runs in lines/s and exits 1 when it is under ``--min-rate``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.iqfeed.protocol import Level1Decoder  # noqa: E402

TARGET_LINES_PER_S = 300_000
_SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "TSLA", "NVDA", "AMZN", "META", "GOOG", "IWM")
_CONDITIONS = ("", "17", "8717", "873D17", "3D", "400142")
# (Message Contents, share of lines): quote-only updates dominate real Level 1 traffic.
_CONTENTS = (("ba", 0.35), ("b", 0.12), ("a", 0.12), ("Cv", 0.18), ("Cbacv", 0.13), ("Ev", 0.05), ("Ov", 0.05))


def make_lines(count: int, seed: int = 7) -> list[str]:
    """A deterministic session of Level 1 lines starting at 09:30:00 Eastern."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in _CONTENTS]
    weights = [weight for _, weight in _CONTENTS]
    prices = {symbol: rng.uniform(20, 600) for symbol in _SYMBOLS}
    volumes = dict.fromkeys(_SYMBOLS, 1_000_000)
    lines = ["T,20261125 09:30:00"]
    micros = 9 * 3600 * 1_000_000 + 30 * 60 * 1_000_000
    for index in range(count - 1):
        if index % 2000 == 1999:
            seconds = micros // 1_000_000
            lines.append(f"T,20261125 {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")
            continue
        micros += rng.randint(50, 400)
        symbol = rng.choice(_SYMBOLS)
        prices[symbol] = round(prices[symbol] * (1 + rng.uniform(-0.0004, 0.0004)), 2)
        price = prices[symbol]
        size = rng.choice((1, 10, 50, 100, 100, 200, 500))
        volumes[symbol] += size
        seconds, fraction = divmod(micros, 1_000_000)
        stamp = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"
        contents = rng.choices(kinds, weights)[0]
        lines.append(
            f"Q,{symbol},{price:.4f},{size},{stamp},{rng.choice((11, 19, 26, 5))},{volumes[symbol]},"
            f"{price - 0.01:.4f},{rng.randint(1, 40) * 100},{price + 0.01:.4f},{rng.randint(1, 40) * 100},"
            f",,,{price:.4f},{contents},{rng.choice(_CONDITIONS)},"
        )
    return lines


def measure(lines: list[str], repeat: int) -> float:
    """Best lines/s over ``repeat`` passes, each with a fresh decoder."""
    best = 0.0
    for _ in range(repeat):
        decode = Level1Decoder(clock=lambda: 1_795_000_000_000_000_000).decode
        gc.collect()
        started = time.perf_counter()
        for line in lines:
            decode(line)
        elapsed = time.perf_counter() - started
        best = max(best, len(lines) / elapsed)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--min-rate", type=float, default=TARGET_LINES_PER_S)
    args = parser.parse_args()
    lines = make_lines(args.lines)
    rate = measure(lines, args.repeat)
    sys.stdout.write(
        f"level1 decode: {rate:,.0f} lines/s (best of {args.repeat} x {len(lines):,} lines; "
        f"target {args.min_rate:,.0f})\n"
    )
    return 0 if rate >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())
