"""Level 1 decode throughput on one core: the feed must never be CPU-bound in parsing.

    .venv/bin/python bench/bench_decode.py [--lines 500000] [--repeat 8] [--min-rate 300000]
                                           [--pyiqfeed /path/to/pyiqfeed-checkout] [--fields iqfeed]

Lines are realistic ``Q`` updates in the field list the Level 1 connection selects
(``DEFAULT_UPDATE_FIELDS``, or IQFeed's default list without the trade date with
``--fields iqfeed``, the lines measured before 2026-11-30; mostly quotes, a third trades, some both, a heartbeat every
2,000 lines), generated from a fixed seed and preceded by the ``S,CURRENT UPDATE
FIELDNAMES`` line that announces that list, decoded through :meth:`Level1Decoder.decode`
exactly as a connection does. Prints the best, median and worst of ``--repeat`` runs in
lines/s and exits 1 when the best is under ``--min-rate``.

``--pyiqfeed`` names a checkout of pyiqfeed (github.com/akapur/pyiqfeed; not on PyPI,
needs numpy): the same lines then also go through its ``QuoteConn`` line processing
(split, dispatch by message type, ``_process_update`` for each ``Q``), runs interleaved
with ours so both see the same machine, and the script also exits 1 when our best rate
is under ``--min-ratio`` times pyiqfeed's. Nothing of pyiqfeed is copied here.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.iqfeed.protocol import DEFAULT_UPDATE_FIELDS, IQFEED_DEFAULT_FIELDS, Level1Decoder  # noqa: E402

TARGET_LINES_PER_S = 300_000
TARGET_RATIO_TO_PYIQFEED = 3.0
_SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "TSLA", "NVDA", "AMZN", "META", "GOOG", "IWM")
_CONDITIONS = ("", "17", "8717", "873D17", "3D", "400142")
# (Message Contents, share of lines): quote-only updates dominate real Level 1 traffic.
_CONTENTS = (("ba", 0.35), ("b", 0.12), ("a", 0.12), ("Cv", 0.18), ("Cbacv", 0.13), ("Ev", 0.05), ("Ov", 0.05))

LineProcessor = Callable[[str], object]


def make_lines(count: int, fields: Sequence[str] = DEFAULT_UPDATE_FIELDS, seed: int = 7) -> list[str]:
    """A deterministic session of Level 1 lines in ``fields`` order, starting at 09:30:00 Eastern."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in _CONTENTS]
    weights = [weight for _, weight in _CONTENTS]
    prices = {symbol: rng.uniform(20, 600) for symbol in _SYMBOLS}
    volumes = dict.fromkeys(_SYMBOLS, 1_000_000)
    lines = ["S,CURRENT UPDATE FIELDNAMES,Symbol," + ",".join(fields), "T,20261125 09:30:00"]
    micros = 9 * 3600 * 1_000_000 + 30 * 60 * 1_000_000
    for index in range(count - 2):
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
        values = {
            "Most Recent Trade": f"{price:.4f}",
            "Most Recent Trade Size": str(size),
            "Most Recent Trade Time": f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}",
            "Most Recent Trade Market Center": str(rng.choice((11, 19, 26, 5))),
            "Most Recent Trade Date": "11/25/2026",
            "Total Volume": str(volumes[symbol]),
            "Bid": f"{price - 0.01:.4f}",
            "Bid Size": str(rng.randint(1, 40) * 100),
            "Ask": f"{price + 0.01:.4f}",
            "Ask Size": str(rng.randint(1, 40) * 100),
            "Close": f"{price:.4f}",
            "Message Contents": rng.choices(kinds, weights)[0],
            "Most Recent Trade Conditions": rng.choice(_CONDITIONS),
        }
        lines.append(",".join(["Q", symbol, *(values.get(name, "") for name in fields)]) + ",")
    return lines


def tickops_processor() -> LineProcessor:
    """Our decoder, fresh, with a fixed clock (the first heartbeat replaces it anyway)."""
    return Level1Decoder(clock=lambda: 1_795_000_000_000_000_000).decode


def pyiqfeed_processor(checkout: Path) -> Callable[[], LineProcessor]:
    """A factory of pyiqfeed's own per-line processing, imported from ``checkout``.

    A ``QuoteConn`` is built but never connected; each line is split and handed to the
    handler its message type selects, which is what pyiqfeed's reader thread does per
    line (``_process_messages``), minus the socket and with no listener attached.
    """
    sys.path.insert(0, str(checkout))
    from pyiqfeed.conn import QuoteConn  # type: ignore[import-not-found]

    def make() -> LineProcessor:
        conn = QuoteConn(name="bench")
        conn._sock.close()  # never used: the lines come from memory
        handler = conn._processing_function

        def process(line: str) -> None:
            fields = line.split(",")
            handler(fields)(fields)

        return process

    return make


def one_pass(lines: list[str], process: LineProcessor) -> float:
    gc.collect()
    started = time.perf_counter()
    for line in lines:
        process(line)
    return len(lines) / (time.perf_counter() - started)


def spread(rates: list[float]) -> str:
    return f"best {max(rates):,.0f}, median {statistics.median(rates):,.0f}, worst {min(rates):,.0f} lines/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--min-rate", type=float, default=TARGET_LINES_PER_S)
    parser.add_argument("--pyiqfeed", type=Path, default=None, help="a pyiqfeed checkout to compare with")
    parser.add_argument("--min-ratio", type=float, default=TARGET_RATIO_TO_PYIQFEED)
    parser.add_argument("--fields", choices=("selected", "iqfeed"), default="selected",
                        help="the field list the lines follow: ours, or IQFeed's default")
    args = parser.parse_args()
    lines = make_lines(args.lines, DEFAULT_UPDATE_FIELDS if args.fields == "selected" else IQFEED_DEFAULT_FIELDS)
    theirs = pyiqfeed_processor(args.pyiqfeed) if args.pyiqfeed else None
    ours_rates: list[float] = []
    their_rates: list[float] = []
    for _ in range(args.repeat):  # interleaved: a slow minute on this machine hits both alike
        ours_rates.append(one_pass(lines, tickops_processor()))
        if theirs is not None:
            their_rates.append(one_pass(lines, theirs()))
    best = max(ours_rates)
    out = sys.stdout
    out.write(
        f"level1 decode: {best:,.0f} lines/s best of {args.repeat} x {len(lines):,} lines, {args.fields} fields "
        f"({spread(ours_rates)}; target {args.min_rate:,.0f})\n"
    )
    ok = best >= args.min_rate
    if their_rates:
        ratio = best / max(their_rates)
        out.write(f"pyiqfeed QuoteConn, same lines: {spread(their_rates)}\n")
        out.write(f"ratio of best rates: {ratio:.2f}x (target {args.min_ratio:g}x)\n")
        ok = ok and ratio >= args.min_ratio
    else:
        out.write("pyiqfeed: not compared (pass --pyiqfeed PATH to a checkout)\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
