"""The simulator's own record of its trades: every trade the market made, one CSV row each.

Why: a pipeline test runs the simulator as a separate process and must compare what it
stored with what the simulator generated. The wire alone cannot tell a trade that was
never sent (nobody watched the symbol, a collector was down) from one that got lost, and
the lookup port's history is bounded; this file is complete.

Format (``--trade-log PATH``), ASCII, one header row, then one row per trade; a symbol's
trades come in the order the market made them (time order), different symbols' trades
are interleaved in blocks (each write goes symbol by symbol)::

    symbol,ts_ns,price,size,total_volume,tick_id,market_center,conditions,basis
    AAPL,1614610800123456000,123.4500,100,15300,48213,19,3D87,C

* ``ts_ns``: UTC epoch nanoseconds of the trade time as Level 1 sends it (Eastern wall
  clock, microseconds); a wall time that occurs twice (November's repeated hour) is read
  as its first occurrence, as IQFeed clients read it.
* ``price``: the text the wire carries (4 decimals); ``size``, ``total_volume``,
  ``tick_id``, ``market_center``: integers as sent.
* ``conditions``: the hex condition codes as sent (``3D87`` is 3D and 87), may be empty.
* ``basis``: ``C`` (last qualified), ``E`` (extended hours) or ``O`` (other).

Every trade is recorded, watched or not, sent or not (DTN link down, symbol silenced):
the same trades the lookup port's tick history holds, replayed ones included. A second
run with the same path appends under the one header. Rows are written at least every
second (``FLUSH_INTERVAL_S``) and at a clean stop (SIGTERM); a crash loses at most the
last second, and a row it cut in half is skipped by :func:`read_trade_log` with a warning.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from collectors.iqfeed.simulator.market import Tick
from collectors.iqfeed.simulator.wire import EASTERN, PRICE_TEXT, price

log = logging.getLogger(__name__)
_EXTRA = {"component": "iqfeed-simulator"}

COLUMNS = ("symbol", "ts_ns", "price", "size", "total_volume", "tick_id", "market_center", "conditions", "basis")
TRADE_LOG_HEADER = ",".join(COLUMNS) + "\n"
FLUSH_INTERVAL_S = 0.25
_BASES = frozenset("CEO")
_US_PER_HOUR = 3_600_000_000
_EPOCH = datetime(1970, 1, 1)


class TradeLogError(ValueError):
    """A file is not a simulator trade log, or a row is malformed; the message names the line."""


class LoggedTrade(NamedTuple):
    """One row of the trade log (see the module docstring for each field)."""

    symbol: str
    ts_ns: int
    price: float
    size: int
    total_volume: int
    tick_id: int
    market_center: int
    conditions: str
    basis: str


class EasternToUtc:
    """Eastern wall-clock microseconds -> UTC epoch nanoseconds, the offset cached per hour.

    DST changes on the hour, so one ``zoneinfo`` lookup per wall-clock hour is exact; the
    hour that occurs twice gets its first occurrence's offset (``fold=0``).
    :func:`format_rows` reads ``offsets`` itself: it runs once per trade.
    """

    def __init__(self) -> None:
        self.offsets: dict[int, int] = {}  # wall-clock hour -> UTC offset in microseconds

    def offset_us(self, local_us: int) -> int:
        hour = local_us // _US_PER_HOUR
        offset = self.offsets.get(hour)
        if offset is None:
            wall = (_EPOCH + timedelta(microseconds=hour * _US_PER_HOUR)).replace(tzinfo=EASTERN)
            offset = self.offsets[hour] = (wall.utcoffset() or timedelta(0)) // timedelta(microseconds=1)
        return offset

    def __call__(self, local_us: int) -> int:
        return (local_us - self.offset_us(local_us)) * 1000


def format_rows(symbol: str, ticks: Iterable[Tick], to_utc: EasternToUtc) -> str:
    """Trade-log rows (each with its line ending) for trades of one symbol."""
    offsets = to_utc.offsets
    rows = []
    for local_us, px, size, volume, _bid, _ask, tick_id, basis, center, conditions, _aggressor, _day in ticks:
        offset = offsets.get(local_us // _US_PER_HOUR)
        if offset is None:
            offset = to_utc.offset_us(local_us)
        rows.append(
            f"{symbol},{(local_us - offset) * 1000},{PRICE_TEXT.get(px) or price(px)},{size},{volume},{tick_id},"
            f"{center},{conditions},{basis}\n"
        )
    return "".join(rows)


def parse_row(text: str) -> LoggedTrade:
    """A row (without its line ending); ValueError saying what is wrong with it."""
    parts = text.split(",")
    if len(parts) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} fields, got {len(parts)}")
    symbol, ts_ns, px, size, volume, tick_id, center, conditions, basis = parts
    if not symbol:
        raise ValueError("empty symbol")
    if basis not in _BASES:
        raise ValueError(f"basis {basis!r}: C, E or O")
    return LoggedTrade(symbol, int(ts_ns), float(px), int(size), int(volume), int(tick_id), int(center),
                       conditions, basis)


def read_trade_log(path: Path) -> list[LoggedTrade]:
    """Every trade in a trade log, in file order.

    Raises :class:`TradeLogError` for a file without the header or with a malformed row.
    A last row without its line ending (cut off when the simulator was killed while
    writing) is skipped, with a warning.
    """
    with open(path, encoding="ascii", newline="") as handle:
        text = handle.read()
    if not text.startswith(TRADE_LOG_HEADER):
        raise TradeLogError(f"{path}: not a simulator trade log (first line must be {TRADE_LOG_HEADER.strip()!r})")
    rows = text[len(TRADE_LOG_HEADER):].split("\n")
    cut = rows.pop()  # "" when the file ends with a line ending
    if cut:
        log.warning("trade log ends in a row cut off mid-write; skipped",
                    extra={**_EXTRA, "path": str(path), "row": cut[:80]})
    trades = []
    for number, row in enumerate(rows, start=2):
        try:
            trades.append(parse_row(row))
        except ValueError as exc:
            raise TradeLogError(f"{path}:{number}: not a trade-log row ({exc}): {row[:80]!r}") from None
    return trades


class RecordingHistory(deque):  # type: ignore[type-arg]
    """A symbol's tick history that also queues each new trade for the trade log.

    ``SymbolState.trade`` appends every trade to its history, so swapping this in records
    every trade, synthetic or replayed, with no change to the stream's hot path, and a
    simulator without a trade log runs exactly the code it ran before. Each symbol queues
    into a list of its own: no tuple per trade for the garbage collector to track.
    """

    def __init__(self, maxlen: int | None, record: Callable[[Tick], None]) -> None:
        super().__init__((), maxlen)
        self._record = record

    def append(self, tick: Tick) -> None:
        deque.append(self, tick)
        self._record(tick)


class TradeLog:
    """Appends the trades queued by :class:`RecordingHistory` objects to the file.

    Used on the simulator's loop thread only: histories queue, :meth:`flush` writes. Each
    write holds the trades queued since the last one, symbol by symbol (a symbol's trades
    in the order they were made).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.written = 0
        self.failed = 0
        self._queues: list[tuple[str, list[Tick]]] = []
        self._to_utc = EasternToUtc()
        self._fd: int | None = None
        self._size = 0  # bytes of whole rows in the file: a failed write is cut back to it

    def history(self, symbol: str, maxlen: int | None) -> RecordingHistory:
        """A tick history for ``symbol`` whose trades go to this log."""
        queue: list[Tick] = []
        self._queues.append((symbol, queue))
        return RecordingHistory(maxlen, queue.append)

    def open(self) -> None:
        """Open for appending, writing the header to a new or empty file.

        Raises :class:`TradeLogError` when the file holds something else (so a wrong path
        never gets trade rows mixed into it) and OSError when it cannot be opened.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            head = os.pread(fd, len(TRADE_LOG_HEADER), 0)
            if head and head != TRADE_LOG_HEADER.encode():
                raise TradeLogError(f"{self.path}: not a simulator trade log; give a new file or an earlier trade log")
            if not head:
                os.write(fd, TRADE_LOG_HEADER.encode())
            self._size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        log.info("trade log open", extra={**_EXTRA, "path": str(self.path)})

    def flush(self) -> int:
        """Write the queued trades; returns how many were written.

        Unbuffered and all or nothing: a write that fails (a full disk) is cut back off the
        file, so the file never holds half a row, and its trades are counted in ``failed``
        and logged; they are not retried, so a full disk cannot grow the queues.
        """
        fd = self._fd
        if fd is None:
            return 0
        to_utc = self._to_utc
        parts = []
        count = 0
        for symbol, queue in self._queues:
            if queue:
                parts.append(format_rows(symbol, queue, to_utc))
                count += len(queue)
                queue.clear()  # the same list: the history holds its append
        if not count:
            return 0
        data = memoryview("".join(parts).encode("ascii"))
        size = len(data)
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError as exc:
            self.failed += count
            log.error("trade log write failed; trades lost from the log",
                      extra={**_EXTRA, "path": str(self.path), "trades": count, "error": str(exc)})
            try:
                os.ftruncate(fd, self._size)
            except OSError as cut:
                log.error("trade log: cannot cut the failed write back; the file may end in part of a row",
                          extra={**_EXTRA, "path": str(self.path), "error": str(cut)})
            return 0
        self._size += size
        self.written += count
        return count

    def close(self) -> None:
        """Write what is queued and close the file (safe to call twice)."""
        if self._fd is None:
            return
        self.flush()
        os.close(self._fd)
        self._fd = None
        log.info("trade log closed", extra={**_EXTRA, "path": str(self.path), "trades": self.written,
                                            "failed": self.failed})
