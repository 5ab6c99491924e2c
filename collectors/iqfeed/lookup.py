"""Lookup port (9100): history requests with ids, timeouts, rate limit, and backfill.

One request is in flight at a time on one socket (history requests are rare and a
backfill is sequential anyway). Every request gets a fresh id that prefixes each reply
row, so rows left over from an abandoned request are recognised and skipped. A request
fails with a typed error: :class:`NoData` (``!NO_DATA!``), :class:`LookupTimeout` (no
reply line for ``timeout_s``; the socket is then dropped so its late rows cannot leak
into the next request), :class:`LookupThrottled` (IQFeed's rate limit; retried with
backoff) or :class:`LookupFailed`. A token bucket keeps us under IQFeed's ~50 requests
per second before IQFeed has to say so. A line longer than ``MAX_LINE_BYTES`` is a
protocol error that resets the connection: a server that never sends a newline would
otherwise grow the read buffer until the process runs out of memory.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from datetime import date
from typing import Callable, Final

from events import Event, FeedError, HistoryBar, HistoryTick, Trade
from collectors.iqfeed.protocol import (
    LookupFailed,
    LookupKind,
    LookupThrottled,
    LookupTimeout,
    NoData,
    ProtocolError,
    ProtocolVersionError,
    decode_lookup,
    history_daily_command,
    history_ticks_command,
    set_protocol_command,
)
from config import FeedSettings

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S: Final = 3.0
_HANDSHAKE_TIMEOUT_S: Final = 5.0
_THROTTLE_RETRIES: Final = 3
_THROTTLE_PAUSE_S: Final = 1.0
_END_AFTER_ERROR_S: Final = 1.0
# Lookup rows are a few hundred bytes; a megabyte without a newline is a broken or hostile server.
MAX_LINE_BYTES: Final = 1 << 20


class TokenBucket:
    """Blocking rate limiter: ``rate_per_s`` tokens a second, bursts up to ``capacity``.

    The default burst is half a second's worth: IQFeed's own bucket runs on its clock,
    not ours, and a full-size burst followed by requests at exactly the refill rate
    lands on its limit. ``clock`` and ``sleep`` are injectable so the arithmetic is
    tested without waiting.
    """

    def __init__(
        self,
        rate_per_s: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate_per_s = rate_per_s
        self.capacity = capacity if capacity is not None else max(1.0, rate_per_s / 2)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate_per_s if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class LookupClient:
    """History requests on the lookup port, one at a time, thread-safe."""

    def __init__(
        self,
        settings: FeedSettings,
        *,
        bucket: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.timeout_s = settings.lookup_timeout_s
        self.bucket = bucket or TokenBucket(settings.lookup_rate_per_s, clock=clock, sleep=sleep)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pending = ""
        self._ids = itertools.count(1)
        self.requests = 0
        self.failures = 0
        self.protocol_errors = 0

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --------------------------------------------------------------- requests

    def history_ticks(self, symbol: str, start_ns: int, end_ns: int) -> list[HistoryTick]:
        """Ticks from ``start_ns`` to ``end_ns`` (inclusive, UTC ns) via ``HTT``, oldest first."""
        events = self.request(
            lambda request_id: history_ticks_command(symbol, start_ns, end_ns, request_id), "ticks", symbol
        )
        return [e for e in events if isinstance(e, HistoryTick) and start_ns <= e.ts_ns <= end_ns]

    def daily_bars(self, symbol: str, first: date, last: date) -> list[HistoryBar]:
        """Daily bars from ``first`` to ``last`` (Eastern dates, inclusive) via ``HDT``, oldest first.

        ``volume`` is IQFeed's PeriodVolume, the day's volume; :class:`NoData` when none traded.
        """
        events = self.request(lambda request_id: history_daily_command(symbol, first, last, request_id), "daily", symbol)
        return [e for e in events if isinstance(e, HistoryBar)]

    def backfill(self, symbol: str, start_ns: int, end_ns: int) -> list[Trade]:
        """The trades of an outage window, marked ``backfilled``; empty when IQFeed has none."""
        try:
            ticks = self.history_ticks(symbol, start_ns, end_ns)
        except NoData:
            return []
        trades = [
            Trade(
                symbol=tick.symbol,
                price=tick.price,
                size=tick.size,
                ts_ns=tick.ts_ns,
                conditions=tick.conditions,
                market_center=tick.market_center,
                tick_id=tick.tick_id,
                total_volume=tick.total_volume,
                basis=tick.basis,
                backfilled=True,
            )
            for tick in ticks
        ]
        log.info("backfilled", extra={"symbol": symbol, "count": len(trades), "start_ns": start_ns, "end_ns": end_ns})
        return trades

    def request(self, command: Callable[[str], bytes], kind: LookupKind, symbol: str = "") -> list[Event]:
        """Send one request (built from its id) and collect its rows until ``!ENDMSG!``.

        Retries a throttled request a few times with a growing pause; every other
        failure is raised as the matching LookupFailed subclass.
        """
        for attempt in range(_THROTTLE_RETRIES + 1):
            self.bucket.acquire()
            try:
                return self._request_once(command, kind, symbol)
            except LookupThrottled:
                if attempt == _THROTTLE_RETRIES:
                    raise
                log.warning("lookup throttled by IQFeed", extra={"symbol": symbol, "attempt": attempt + 1})
                self._sleep(_THROTTLE_PAUSE_S * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _request_once(self, command: Callable[[str], bytes], kind: LookupKind, symbol: str) -> list[Event]:
        with self._lock:
            request_id = f"Q{next(self._ids)}"
            self.requests += 1
            try:
                sock = self._connect()
                sock.sendall(command(request_id))
                return self._collect(sock, request_id, kind, symbol)
            except NoData:
                raise  # an empty range is an answer, not a failure
            except LookupFailed:
                self.failures += 1
                raise
            except OSError as exc:
                self.failures += 1
                self._drop()
                raise LookupFailed(
                    f"lookup connection to {self.settings.host}:{self.settings.lookup_port} failed: {exc}"
                ) from exc

    def _collect(self, sock: socket.socket, request_id: str, kind: LookupKind, symbol: str) -> list[Event]:
        """Rows for ``request_id`` until its ``!ENDMSG!``.

        An error row with our id is followed by ``!ENDMSG!``; we read up to it (briefly)
        so the next request starts clean. An error without an id (bad parameter count,
        unknown command) has no end marker, so the socket is dropped instead.
        """
        what = f"lookup request {request_id} for {symbol or kind}"
        rows: list[Event] = []
        error: LookupFailed | None = None
        lines = self._lines(sock, what)
        while True:
            try:
                line = next(lines)
            except LookupTimeout:
                if error is not None:
                    raise error from None
                raise
            if line.startswith("S,"):
                continue
            try:
                reply = decode_lookup(line, kind, symbol)
            except ProtocolError as exc:
                self.protocol_errors += 1
                log.warning("protocol error", extra={"connection": "lookup", "reason": exc.reason, "line": line})
                continue
            if reply.request_id not in (request_id, ""):
                log.debug("stale lookup row skipped", extra={"connection": "lookup", "request_id": reply.request_id})
                continue
            if reply.end:
                if error is not None:
                    raise error
                return rows
            for event in reply.events:
                if isinstance(event, FeedError):
                    error = _error_for(event.message, symbol)
                    if not reply.request_id:
                        self._drop()
                        raise error
                    lines = self._lines(sock, what, _END_AFTER_ERROR_S)
            if error is None:
                rows.extend(reply.events)

    # ----------------------------------------------------------------- socket

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.create_connection((self.settings.host, self.settings.lookup_port), timeout=_CONNECT_TIMEOUT_S)
        self._sock = sock
        self._pending = ""
        sock.sendall(set_protocol_command(self.settings.protocol))
        wanted = f"S,CURRENT PROTOCOL,{self.settings.protocol}"
        for line in self._lines(sock, "lookup protocol handshake", _HANDSHAKE_TIMEOUT_S):
            if line.rstrip(",") == wanted:
                return sock
            if "not a valid protocol" in line or line.startswith("S,CURRENT PROTOCOL"):
                self._drop()
                raise ProtocolVersionError(
                    f"IQConnect lookup port answered {line!r} to protocol {self.settings.protocol}: "
                    "upgrade IQConnect or set feed.protocol"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _lines(self, sock: socket.socket, what: str, timeout_s: float | None = None):
        """Yield lines; raise LookupTimeout after ``timeout_s`` without any data."""
        limit = timeout_s if timeout_s is not None else self.timeout_s
        deadline = self._clock() + limit
        while True:
            while "\n" in self._pending:
                line, self._pending = self._pending.split("\n", 1)
                yield line.rstrip("\r")
            if len(self._pending) > MAX_LINE_BYTES:
                self._reject_overlong_line(what)
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._drop()
                raise LookupTimeout(f"{what}: no answer within {limit:g} s (feed.lookup_timeout_s)")
            sock.settimeout(min(remaining, 1.0))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self._drop()
                raise LookupFailed(f"{what}: IQConnect closed the lookup connection")
            self._pending += chunk.decode("latin-1")
            deadline = self._clock() + limit

    def _reject_overlong_line(self, what: str) -> None:
        """Count, log and reset: a line over the cap means the stream can no longer be trusted."""
        self.protocol_errors += 1
        received = len(self._pending)
        log.warning("protocol error: lookup line over the length cap; connection reset",
                    extra={"connection": "lookup", "bound": MAX_LINE_BYTES, "received": received,
                           "start": self._pending[:80]})
        self._drop()
        raise LookupFailed(
            f"{what}: IQConnect sent {received} bytes without a newline (the cap is {MAX_LINE_BYTES}); "
            "the lookup connection was reset, check IQConnect's version and health"
        )

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._pending = ""


def _error_for(message: str, symbol: str) -> LookupFailed:
    """Map IQFeed's lookup error text to our error types."""
    if "NO_DATA" in message:
        return NoData(f"no data for {symbol or 'the request'}: {message}")
    lowered = message.lower()
    if "maximum" in lowered or "too many" in lowered:
        return LookupThrottled(f"IQFeed rate limit: {message}")
    if "invalid symbol" in lowered:
        return LookupFailed(f"IQFeed does not know symbol {symbol!r}: {message}")
    return LookupFailed(f"IQFeed refused the request for {symbol or 'lookup'}: {message}")
