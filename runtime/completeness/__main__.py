"""Check one past trading day from the command line, so an operator can prove it complete.

    python -m runtime.completeness --day YYYY-MM-DD [--symbol SYM ...]

The same check the engine runs after each close (``runtime/completeness/checker.py``),
against the configured store and IQConnect's lookup port (``feed.host``,
``feed.lookup_port``): stored volume against the feed's Total Volume (as the stored trades
carry it) and the daily bar; a shortfall is backfilled from the tick history straight into
storage, and the verdict recorded (it replaces an earlier one; the dashboard's Data
integrity page and the ``day_incomplete`` alert read it). Running it twice recovers nothing
the second time. Symbols default to the wanted ones plus every symbol with trades stored
that day. Each run is audited in the ``completeness`` chain of the audit trail
(``completeness_check`` before, ``completeness_check_done`` with the counts after), under
the OS user running it.

Exit status: 0 every symbol complete, 1 some incomplete or in excess, 2 bad usage, a day not
over yet, or storage or the lookup port failing. Needs a real lookup port: the embedded
simulator lives inside the dashboard's process.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date

from collectors.iqfeed.client import LookupFailed
from collectors.iqfeed.lookup import LookupClient
from collectors.iqfeed.protocol import InvalidSymbol, validate_symbol
from collectors.market_hours import OutsideCalendar
from config import Settings
from monitoring.logs import start_process
from runtime.completeness.checker import DayChecker, DirectInsert, RecoveryNotStored
from runtime.completeness.days import check_after_ns, day_bounds_ns
from runtime.completeness.job import tolerances
from runtime.symbols import SymbolRegistry
from storage.audit_anchor import anchor_path
from storage.audit_trail import record_tool_action
from storage.completeness import DayCheck, traded_symbols
from storage.factory import open_store
from storage.migrate import migrate
from storage.store import StorageError, Store

log = logging.getLogger("runtime.completeness")


class UsageError(ValueError):
    """The command line asks for something that cannot be checked; the message says why."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _symbol(text: str) -> str:
    try:
        return validate_symbol(text.strip())
    except InvalidSymbol as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_day(settings: Settings, store: Store, day: date, symbols: list[str], now_ns: int) -> list[DayCheck]:
    """Check ``day`` for ``symbols`` (all wanted and traded ones when empty); raises :class:`UsageError`."""
    try:
        after = check_after_ns(day, settings.completeness.grace_s)
    except OutsideCalendar as exc:
        raise UsageError(str(exc)) from None
    if after is None:
        raise UsageError(f"{day} is not a trading day (NYSE calendar)")
    if now_ns < after:
        raise UsageError(f"{day} is not over yet: it can be checked from {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(after / 1e9))} "
                         "(its extended session's end plus completeness.grace_s)")
    if not symbols:
        registry = SymbolRegistry(store)
        registry.refresh()
        wanted = {spec.symbol for spec in registry.all() if spec.level1}
        symbols = sorted(wanted | set(traded_symbols(store, *day_bounds_ns(day))))
    lookup = LookupClient(settings.feed)
    try:
        insert = DirectInsert(store, f"{settings.instance_id}.completeness")
        checker = DayChecker(store, lookup, deliver=insert, checked_by=insert.source, tolerances=tolerances(settings))
        return checker.check(day, symbols, now_ns)
    finally:
        lookup.close()


def _report(checks: list[DayCheck]) -> None:
    print(f"{'symbol':<12} {'verdict':<10} {'stored':>14} {'trades':>9} {'feed':>14} {'daily bar':>14} {'recovered':>9}")
    for c in checks:
        print(f"{c.symbol:<12} {c.verdict:<10} {c.stored_volume:>14,} {c.stored_trades:>9,} "
              f"{c.feed_volume:>14,} {c.bar_volume:>14,} {c.trades_recovered:>9,}")
    complete = sum(c.verdict == "complete" for c in checks)
    print(f"{complete} of {len(checks)} symbols complete (-1: reference unknown)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.completeness", description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=_day, required=True, help="the trading day (US/Eastern date), YYYY-MM-DD")
    parser.add_argument("--symbol", type=_symbol, action="append", default=[], dest="symbols",
                        help="a symbol to check (repeatable); default: the wanted symbols and those traded that day")
    args = parser.parse_args(argv)
    try:
        checks = _run(args.day, args.symbols)
    except LookupFailed as exc:
        print(f"error: {exc}. The check needs IQConnect's lookup port (feed.host, feed.lookup_port); the embedded "
              "simulator runs only inside the dashboard's process.", file=sys.stderr)
        return 2
    except (UsageError, StorageError, RecoveryNotStored) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(checks)
    return 0 if all(c.verdict == "complete" for c in checks) else 1


def _run(day: date, symbols: list[str]) -> list[DayCheck]:
    settings = start_process("completeness")  # a bad setting: what to fix on stderr, exit 2
    store = open_store(settings)
    request = f"symbols={','.join(symbols) or 'wanted and traded'}"
    try:
        migrate(store)
        record_tool_action(store, "completeness", "completeness_check", day.isoformat(), request,  # no record, no run
                           anchor=anchor_path(settings.data_dir))
        checks = check_day(settings, store, day, symbols, time.time_ns())
        record_tool_action(store, "completeness", "completeness_check_done", day.isoformat(),
                           f"{request} symbols_checked={len(checks)} "
                           f"not_complete={sum(c.verdict != 'complete' for c in checks)} "
                           f"trades_recovered={sum(c.trades_recovered for c in checks)}", anchor=anchor_path(settings.data_dir))
        return checks
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
