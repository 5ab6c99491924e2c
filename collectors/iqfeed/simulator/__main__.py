"""``python -m collectors.iqfeed.simulator``: run the IQFeed simulator as a process.

It also stands in for ``iqconnect.exe`` in supervisor tests: IQConnect's own launch
arguments (``-product X -version V -login L -password P -autoconnect -savelogininfo``)
are accepted (``-login`` shows in ``S,STATS``; the rest are ignored), and three flags
simulate what a supervisor must handle: ``--wrong-login`` (admin Status never becomes
Connected), ``--connect-delay`` (Not Connected for that long first) and ``--exit-after``
(the process dies with exit code 3, like a crash). SIGTERM and SIGINT stop it cleanly
(exit code 0). Once every port listens it logs one line naming the four ports.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from collectors.iqfeed.simulator.config import SimulatorConfig, SimulatorConfigError
from collectors.iqfeed.simulator.server import IQFeedSimulator, SimulatorStartError

log = logging.getLogger("collectors.iqfeed.simulator")
CRASH_EXIT_CODE = 3
GC_GEN0_THRESHOLD = 100_000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m collectors.iqfeed.simulator",
        description="Protocol-faithful IQFeed/IQConnect simulator (Level 1, Level 2, admin, lookup).",
        allow_abbrev=False,
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--level1-port", type=int, default=5009, help="Level 1 port (default 5009; 0 = ephemeral)")
    p.add_argument("--level2-port", type=int, default=9200, help="Level 2 port (default 9200)")
    p.add_argument("--admin-port", type=int, default=9300, help="admin port (default 9300)")
    p.add_argument("--lookup-port", type=int, default=9100, help="lookup port (default 9100)")
    p.add_argument("--symbols", default="", help="comma-separated symbols, or a count of generated symbols")
    p.add_argument("--rate", type=float, default=1000.0, help="synthetic Level 1 events per second (0 = none)")
    p.add_argument("--replay", type=Path, help="IQFeed tick-history file to replay instead of synthetic data")
    p.add_argument("--replay-symbol", help="symbol the replay file is for (default: the first symbol)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor 1..1000; 0 = as fast as possible")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--shift-to-today", action="store_true", help="move replayed dates so the first day is today")
    p.add_argument("--watch-limit", type=int, default=500, help="symbols watchable at once (default 500)")
    p.add_argument("--watch-limit-per-connection", action="store_true",
                   help="each Level 1 connection has its own --watch-limit, as if each client had its own "
                        "IQConnect (one shared market); default: one limit over all connections")
    p.add_argument("--history-ticks", type=int, default=500_000,
                   help="trades kept in memory for lookups over all symbols (default 500000, at least 100 per "
                        "symbol; about 300 bytes each): a backfill cannot reach further back")
    p.add_argument("--trade-log", type=Path,
                   help="append every trade the market makes to this CSV file (the simulator's own record; "
                        "read it with collectors.iqfeed.simulator.trade_log.read_trade_log)")
    p.add_argument("--wrong-login", action="store_true", help="never connect to (simulated) DTN")
    p.add_argument("--connect-delay", type=float, default=0.0, help="seconds Not Connected before Connected")
    p.add_argument("--exit-after", type=float, help="die with exit code 3 after this many seconds")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    # IQConnect's launch arguments, so the simulator can be started where iqconnect.exe would be.
    for flag in ("-product", "-version", "-login", "-password"):
        p.add_argument(flag, dest="iq_" + flag[1:], help=argparse.SUPPRESS)
    for flag in ("-autoconnect", "-savelogininfo"):
        p.add_argument(flag, action="store_true", dest="iq_" + flag[1:], help=argparse.SUPPRESS)
    return p


def _symbols(text: str) -> dict[str, object]:
    text = text.strip()
    if not text:
        return {}
    if text.isdigit():
        return {"symbol_count": int(text)}
    return {"symbols": tuple(s.strip() for s in text.split(",") if s.strip())}


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        level1_port=args.level1_port,
        level2_port=args.level2_port,
        admin_port=args.admin_port,
        lookup_port=args.lookup_port,
        rate=args.rate,
        seed=args.seed,
        replay=args.replay,
        replay_symbol=args.replay_symbol,
        speed=args.speed or None,
        shift_to_today=args.shift_to_today,
        watch_limit=args.watch_limit,
        watch_limit_per_connection=args.watch_limit_per_connection,
        login_ok=not args.wrong_login,
        login_id=args.iq_login or "",
        connect_delay=args.connect_delay,
        history_ticks=args.history_ticks,
        trade_log=args.trade_log,
        **_symbols(args.symbols),  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, ignored = parser.parse_known_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if ignored:
        log.warning("ignoring unknown arguments: %s", " ".join(ignored), extra={"arguments": ignored})
    try:
        config = build_config(args)
    except SimulatorConfigError as exc:
        parser.error(str(exc))
    simulator = IQFeedSimulator(config)
    try:
        simulator.start()
    except SimulatorStartError as exc:
        log.error("%s", exc)
        return 1
    # The stream allocates a few short-lived, acyclic objects per message; with the
    # default gen0 threshold (700) the collector runs thousands of times a second.
    # This process is ours alone, so collect less often (the library leaves a host
    # process's settings alone).
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    deadline = time.monotonic() + args.exit_after if args.exit_after is not None else None
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            log.error("--exit-after reached: exiting with code %d (simulated crash)", CRASH_EXIT_CODE)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)  # no clean-up: a crash leaves sockets to the OS
        stop.wait(0.05 if deadline is not None else 0.5)
    log.info("signal received: stopping")
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
