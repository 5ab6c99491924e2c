"""Streaming sockets to IQConnect: Level 1, Level 2 and admin, each self-healing.

Each connection owns one reader thread with a blocking socket and a short read timeout
(so it can notice stop requests and a silent feed). The thread connects, performs the
protocol handshake (``S,SET PROTOCOL`` -> ``S,CURRENT PROTOCOL``), subscribes, and then
decodes lines and hands events to the sink in one batch per socket read, stamped with
``recv_ns``. Whatever ends a connection (EOF, socket error, watchdog, handshake failure)
leads to the same path: close, record the outage, back off exponentially with jitter,
reconnect, and on success re-select fields and re-watch every symbol.

Liveness, per port:
- Level 1: ``T`` heartbeats once a second; none for ``heartbeat_timeout_s`` means the
  socket or IQConnect is dead (``heartbeat_timeout``).
- Admin: ``S,STATS`` once a second, watched the same way (``stats_timeout``).
- Level 2 sends no heartbeat. A dead Level 2 socket is found by (1) EOF/socket errors,
  (2) TCP keepalive, and (3) the Level 1 watchdog: both sockets are served by the same
  IQConnect process, so when Level 1 declares the feed dead the client also recycles
  Level 2 (see ``FeedClient``). If a Level 2 socket does send ``T`` lines it gets the
  heartbeat watchdog as well.

DTN-side states (``S,SERVER DISCONNECTED``, ``S,SERVER RECONNECT FAILED``, admin
``Not Connected``) keep the socket but open an outage window until IQConnect reports
the DTN connection back, and are surfaced through ``dtn_connected``.

A bug in our own code (a hook, a callback, bookkeeping) never ends a reader thread: it
is counted as ``reader_errors``, logged with its traceback, and the reader either goes
on with the next event or reconnects; see ``_LineConnection._handle_lines``.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Final, Iterable

from events import Depth, Event, FeedError, Heartbeat, Quote, SymbolNotFound, System, Trade
from collectors.iqfeed.protocol import (
    DEFAULT_UPDATE_FIELDS,
    DepthBook,
    Level1Decoder,
    ProtocolError,
    ProtocolVersionError,
    SymbolLimitReached,
    decode_admin,
    decode_level2,
    depth_unwatch_command,
    depth_watch_command,
    format_command,
    select_update_fields_command,
    set_protocol_command,
    unwatch_command,
    validate_symbol,
    watch_command,
)
from collectors.market_hours import Session, session_at
from config import FeedSettings

log = logging.getLogger(__name__)

EventSink = Callable[[list[Event]], None]

READ_TIMEOUT_S: Final = 0.2
CONNECT_TIMEOUT_S: Final = 3.0
HANDSHAKE_TIMEOUT_S: Final = 5.0
MAX_LINE_CHARS: Final = 1 << 20
MAX_OUTAGE_WINDOWS: Final = 10_000
_SILENCE_CHECK_S: Final = 0.5
READER_ERROR_LOG_INTERVAL_S: Final = 10.0
"""After one reader error is logged with its traceback, further ones within this many
seconds are only counted (and their number is told with the next logged one)."""


@dataclass(frozen=True, slots=True)
class OutageWindow:
    """A span without data, for gap detection and backfill.

    ``connection`` is level1/level2/admin; ``symbol`` is empty for a whole connection
    and set when only one symbol went silent. ``end_ns`` is None while it lasts.
    ``start_ns`` is the wall time of the last data received before the outage (for a
    silent feed, when the silence began rather than when the watchdog noticed it).
    """

    start_ns: int
    end_ns: int | None
    cause: str
    connection: str
    symbol: str = ""


class OutageLog:
    """Thread-safe record of outage windows; at most one open window per (connection, symbol)."""

    def __init__(self, limit: int = MAX_OUTAGE_WINDOWS) -> None:
        self._lock = threading.Lock()
        self._windows: deque[OutageWindow] = deque(maxlen=limit)
        self._open: dict[tuple[str, str], int] = {}

    def open(self, connection: str, cause: str, start_ns: int, symbol: str = "") -> bool:
        """Open a window unless one is open for the same key; True when opened."""
        key = (connection, symbol)
        with self._lock:
            if key in self._open:
                return False
            self._windows.append(OutageWindow(start_ns, None, cause, connection, symbol))
            self._open[key] = id(self._windows[-1])
        log.warning("outage started", extra={"connection": connection, "cause": cause, "symbol": symbol})
        return True

    def close(self, connection: str, end_ns: int, symbol: str = "") -> OutageWindow | None:
        """Close the open window for the key, if any, and return it."""
        key = (connection, symbol)
        with self._lock:
            marker = self._open.pop(key, None)
            if marker is None:
                return None
            for index in range(len(self._windows) - 1, -1, -1):
                window = self._windows[index]
                if id(window) == marker:
                    closed = replace(window, end_ns=max(end_ns, window.start_ns))
                    self._windows[index] = closed
                    break
            else:  # trimmed away by the size limit while open
                return None
        log.info(
            "outage ended",
            extra={"connection": connection, "cause": closed.cause, "symbol": symbol,
                   "duration_s": round((closed.end_ns - closed.start_ns) / 1e9, 3)},  # type: ignore[operator]
        )
        return closed

    def windows(self) -> list[OutageWindow]:
        with self._lock:
            return list(self._windows)


class Counters:
    """Thread-safe named counters shared by the connections of one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class Backoff:
    """Exponential backoff with jitter: delays spread between half and all of the step."""

    def __init__(self, initial_s: float, max_s: float, rng: Callable[[], float] = random.random) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._rng = rng
        self._attempt = 0

    def next_delay(self) -> float:
        step = min(self.max_s, self.initial_s * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return step * (0.5 + 0.5 * self._rng())

    def reset(self) -> None:
        self._attempt = 0


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """A snapshot of one connection for dashboards and health checks."""

    name: str
    connected: bool
    dtn_connected: bool | None
    last_heartbeat: float | None
    reconnects: int
    last_error: str


class _Down(Exception):
    """Ends the current socket; the message is the outage cause."""


class _LineConnection:
    """Shared machinery: connect, handshake, read lines, watchdog, reconnect.

    Subclasses say how to decode a line (:meth:`_decode`), what to send once the
    handshake is done (:meth:`_on_ready`), and how to react to control events
    (:meth:`_on_control`). ``clock`` (monotonic seconds) and ``wall_clock`` (epoch ns)
    are injectable so tests can reason about time.
    """

    name = "base"
    liveness_timeout_s: float | None = None

    def __init__(
        self,
        settings: FeedSettings,
        port: int,
        sink: EventSink,
        *,
        outages: OutageLog | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = time.time_ns,
        rng: Callable[[], float] = random.random,
        on_dtn_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_dtn_change = on_dtn_change
        self.port = port
        self._sink = sink
        self.outages = outages if outages is not None else OutageLog()
        self.counters = counters if counters is not None else Counters()
        self._clock = clock
        self._wall_clock = wall_clock
        self._backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s, rng)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._ready = False
        self._ready_event = threading.Event()
        self._kick: str | None = None
        self._ever_ready = False
        self._reconnects = 0
        self._last_error = ""
        self._last_recv_ns = 0
        self._last_recv_mono = 0.0
        self._last_beat_mono: float | None = None
        self._dtn_connected: bool | None = None
        self._dtn_ever_connected = False
        self.version_error: ProtocolVersionError | None = None
        """Set when IQConnect refused our protocol version; cleared by a good handshake."""
        self._skips_logged: set[str] = set()
        self._error_logged_mono: float | None = None
        self._errors_unlogged = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the reader thread; it connects and keeps reconnecting until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"feedclient-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the reader thread and close the socket; joins the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the handshake and subscriptions are done (True) or the timeout passes."""
        return self._ready_event.wait(timeout_s)

    def force_reconnect(self, cause: str) -> None:
        """Ask the reader to drop the socket and reconnect (used to tie Level 2 to Level 1)."""
        self._kick = cause

    @property
    def state(self) -> ConnectionState:
        return ConnectionState(
            name=self.name,
            connected=self._ready,
            dtn_connected=self._dtn_connected,
            last_heartbeat=self._last_beat_mono,
            reconnects=self._reconnects,
            last_error=self._last_error,
        )

    def send(self, command: bytes) -> bool:
        """Send one command if the connection is up; False when it is not (it is resent on reconnect)."""
        with self._send_lock:
            sock = self._sock
            if sock is None or not self._ready:
                return False
            try:
                sock.sendall(command)
            except OSError as exc:
                log.warning("send failed", extra={"connection": self.name, "error": str(exc)})
                return False
        return True

    def _send_now(self, command: bytes) -> None:
        """Send from the reader thread, ready or not (handshake, re-watch).

        An OSError propagates to the reader loop and ends the socket like any other.
        """
        with self._send_lock:
            if self._sock is not None:
                self._sock.sendall(command)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        """The reader thread: one socket after another until :meth:`stop`.

        Nothing raised in here may end the thread (it would stop this connection for
        good, with no reconnect): whatever escapes one socket's life, even from the
        outage bookkeeping, is a reader error and the loop backs off and reconnects.
        """
        while not self._stop.is_set():
            try:
                self._connect_and_serve()
            except Exception as exc:  # noqa: BLE001 - the reader thread must outlive any bug
                self._reader_error(exc, "reconnect")
            if self._stop.is_set():
                break
            # An IQConnect too old for our protocol will not change soon: retry slowly.
            delay = self._backoff.max_s if self.version_error else self._backoff.next_delay()
            log.info("reconnecting", extra={"connection": self.name, "delay_s": round(delay, 3)})
            self._stop.wait(delay)
        self._ready_event.clear()

    def _connect_and_serve(self) -> None:
        """Connect, serve the socket until something ends it, then record why."""
        try:
            sock = socket.create_connection((self.settings.host, self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            self._went_down(f"connect_failed: {exc}")
            return
        try:
            self._serve(sock)
            cause = "stopped"
        except _Down as down:
            cause = str(down)
        except ProtocolVersionError as exc:
            cause = "protocol_version"
            self.version_error = exc
            log.error("protocol version refused", extra={"connection": self.name, "error": str(exc)})
        except OSError as exc:
            cause = f"socket_error: {exc}"
        except Exception as exc:  # noqa: BLE001 - a bug outside the per-event net (watchdog hooks, set-up)
            self._reader_error(exc, "serve")
            cause = f"reader_error: {type(exc).__name__}"
        finally:
            with self._send_lock:
                self._sock = None
                self._ready = False
            sock.close()
        if not self._stop.is_set():
            self._went_down(cause)

    def _went_down(self, cause: str) -> None:
        self._ready_event.clear()
        self._last_error = str(self.version_error) if cause == "protocol_version" else cause
        if self._ever_ready:
            start_ns = self._last_recv_ns or self._wall_clock()
            self.outages.open(self.name, cause.split(":")[0], start_ns)
        log.warning("connection down", extra={"connection": self.name, "cause": cause})

    def _serve(self, sock: socket.socket) -> None:
        """One socket's life: handshake, then read until something ends it (raises _Down)."""
        sock.settimeout(READ_TIMEOUT_S)
        _enable_keepalive(sock)
        with self._send_lock:
            self._sock = sock
        self._kick = None
        self._last_beat_mono = None
        self._begin_socket()
        sock.sendall(set_protocol_command(self.settings.protocol))
        deadline = self._clock() + HANDSHAKE_TIMEOUT_S
        pending = ""
        while not self._stop.is_set():
            if self._kick is not None:
                raise _Down(self._kick)
            now = self._clock()
            if not self._ready and now > deadline:
                raise _Down("handshake_timeout")
            if self._ready:
                self._check_liveness(now)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise _Down("connection_closed")
            recv_ns = self._wall_clock()
            self._last_recv_ns = recv_ns
            self._last_recv_mono = self._clock()
            text = pending + chunk.decode("latin-1")
            lines = text.split("\n")
            pending = lines.pop()
            if len(pending) > MAX_LINE_CHARS:
                self._protocol_error(ProtocolError("line longer than 1 MiB without a line break", pending[:200]))
                pending = ""
            if lines:
                self._handle_lines(lines, recv_ns)

    def _handle_lines(self, lines: list[str], recv_ns: int) -> None:
        """Decode one read's lines, hand their events to the hooks, then to the sink in one batch.

        A line IQFeed garbled is a protocol error (counted, logged, skipped). An
        exception from our own code while handling a decoded event is a reader error
        (:meth:`_reader_error`: counted as ``reader_errors``, logged with its
        traceback), and what follows is chosen to lose the least data:

        - a market event (Trade, Quote, Depth) whose hook (:meth:`_on_data`) fails is
          not published (the hook decides whether it should be, and it could not say),
          and the reader goes on with the next event. Reconnecting instead would lose
          every quote and depth change until the socket is back, which backfill
          (trades only) cannot recover, and would do so again for every such line;
        - a control event whose handling fails (:meth:`_on_control`: handshake,
          re-subscription, DTN state, outage windows) may leave the connection half
          updated, e.g. "ready" without its watches sent, a loss that no later line
          repairs. The rest of the read is still decoded and delivered, then the socket
          ends like any other fault (cause ``reader_error``): outage window,
          reconnect, re-select fields, re-watch every symbol, backfill of the gap.

        ``_Down``, ``ProtocolVersionError`` and ``OSError`` are the reader's own control
        flow and pass through; the events of the read so far are delivered first.
        The sink has its own net (``sink_errors``): its failure is the engine's.
        """
        events: list[Event] = []
        decode = self._decode
        on_data = self._on_data
        broken: str | None = None
        try:
            for line in lines:
                if line.endswith("\r"):
                    line = line[:-1]
                try:
                    decoded = decode(line)
                except ProtocolError as exc:
                    self._protocol_error(exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - a decoder bug must not kill the reader
                    self._protocol_error(ProtocolError(f"decoder failure {type(exc).__name__}: {exc}", line))
                    continue
                summary = line.startswith("P,")
                for event in decoded:
                    event.recv_ns = recv_ns
                    try:
                        if type(event) in _DATA_TYPES:
                            if on_data(event, recv_ns, summary):
                                events.append(event)
                        else:
                            self._on_control(event, recv_ns)
                            events.append(event)
                    except _READER_CONTROL_FLOW:
                        raise
                    except Exception as exc:  # noqa: BLE001 - see the docstring: count, log, go on
                        self._reader_error(exc, "event", line, event)
                        if type(event) not in _DATA_TYPES:
                            broken = f"reader_error: {type(exc).__name__} handling {type(event).__name__}"
        finally:
            self.counters.add("lines", len(lines))
            if events:
                self.counters.add("events", len(events))
                try:
                    self._sink(events)
                except Exception:  # noqa: BLE001 - the sink's failure is the engine's, not the feed's
                    self.counters.add("sink_errors")
                    log.exception("event sink failed", extra={"connection": self.name, "count": len(events)})
        if broken is not None:
            raise _Down(broken)

    def _reader_error(self, exc: BaseException, stage: str, line: str = "", event: Event | None = None) -> None:
        """A bug in our own code while reading: count it and log it with its traceback.

        ``stage`` says where: ``event`` (handling one decoded event), ``serve`` (the
        socket loop outside the per-event net, e.g. a watchdog hook) or ``reconnect``
        (the outage bookkeeping between sockets). A bug that fires on every line would
        flood the log, so after one traceback the next ones within
        :data:`READER_ERROR_LOG_INTERVAL_S` are only counted; the next logged one says
        how many were not (``unlogged``).
        """
        self.counters.add("reader_errors")
        now = self._clock()
        if self._error_logged_mono is not None and now - self._error_logged_mono < READER_ERROR_LOG_INTERVAL_S:
            self._errors_unlogged += 1
            return
        self._error_logged_mono = now
        unlogged, self._errors_unlogged = self._errors_unlogged, 0
        # extra= keys must not be LogRecord attributes (message, msg, args, name, ...): that raises KeyError.
        log.error(
            "reader error: a bug in the feed client, not in IQFeed's data",
            exc_info=exc,
            extra={
                "connection": self.name,
                "stage": stage,
                "error": f"{type(exc).__name__}: {exc}",
                "line": line[:300],
                "event_type": type(event).__name__ if event is not None else "",
                "unlogged": unlogged,
            },
        )

    def _protocol_error(self, error: ProtocolError) -> None:
        self.counters.add("protocol_errors")
        log.warning(
            "protocol error", extra={"connection": self.name, "reason": error.reason, "line": error.line}
        )

    # --------------------------------------------------------- control events

    def _on_control(self, event: Event, recv_ns: int) -> None:
        """Handshake, heartbeats, errors; subclasses extend for their own system messages."""
        if type(event) is Heartbeat:
            self._last_beat_mono = self._clock()
        elif type(event) is System:
            if event.name == "CURRENT PROTOCOL":
                self._check_protocol(event)
            elif event.connected is not None:
                self._dtn_report(event, recv_ns)
            elif event.name == "SYMBOL LIMIT REACHED" and event.fields:
                self.counters.add("symbol_limit_reached")
                self._rejected(event.fields[0], "symbol_limit_reached")
        elif type(event) is FeedError:
            if "not a valid protocol" in event.message:
                raise ProtocolVersionError(
                    f"IQConnect on port {self.port} refused protocol {self.settings.protocol} "
                    f"({event.message!r}): upgrade IQConnect to a version that speaks it, "
                    "or set feed.protocol to the version it offers"
                )
            self.counters.add("feed_errors")
            log.warning("IQFeed error", extra={"connection": self.name, "error": event.message})
        elif type(event) is SymbolNotFound:
            self.counters.add("symbol_not_found")
            self._rejected(event.symbol, "symbol_not_found")

    def _check_protocol(self, event: System) -> None:
        offered = event.fields[0] if event.fields else ""
        if offered != self.settings.protocol:
            raise ProtocolVersionError(
                f"IQConnect on port {self.port} answered protocol {offered!r} to our {self.settings.protocol}: "
                "upgrade IQConnect or set feed.protocol accordingly"
            )
        if self._ready:
            return
        with self._send_lock:
            self._ready = True
        now = self._clock()
        self._last_beat_mono = now
        self._backoff.reset()
        if self._ever_ready:
            self._reconnects += 1
            self.counters.add("reconnects")
        self._ever_ready = True
        self._last_error = ""
        self.version_error = None
        self._on_ready()
        if self._dtn_connected is not False:
            self.outages.close(self.name, self._wall_clock())
        self._ready_event.set()
        log.info("connection ready", extra={"connection": self.name, "port": self.port})

    def _check_liveness(self, now: float) -> None:
        timeout = self.liveness_timeout_s
        if timeout is not None and self._last_beat_mono is not None and now - self._last_beat_mono > timeout:
            self.counters.add("heartbeat_timeouts")
            raise _Down(f"{self._liveness_cause}")

    _liveness_cause = "heartbeat_timeout"

    def _dtn_report(self, event: System, recv_ns: int) -> None:
        """IQConnect told us its DTN state (``S,SERVER ...`` or ``S,STATS`` Status).

        Losing DTN after having had it opens an outage window (a start-up that is not
        connected yet is no gap); regaining it closes the window once the socket is
        ready and re-watches everything, in case IQConnect forgot the watches.
        """
        connected = bool(event.connected)
        previous = self._dtn_connected
        self._dtn_connected = connected
        if connected:
            self._dtn_ever_connected = True
            if self._ready:
                self.outages.close(self.name, recv_ns)
        elif self._dtn_ever_connected:
            self.outages.open(self.name, _DTN_CAUSES.get(event.name, "dtn_not_connected"), recv_ns)
        if previous is connected:
            return
        log.log(
            logging.INFO if connected else logging.WARNING,
            "DTN connection state",
            extra={"connection": self.name, "connected": connected},
        )
        if self._on_dtn_change is not None:
            self._on_dtn_change(connected)
        if connected and previous is False and self._ready:
            self.resubscribe()

    # ------------------------------------------------------------- hooks

    def _begin_socket(self) -> None:
        """Reset per-socket state before the handshake."""

    def _decode(self, line: str) -> list[Event]:
        raise NotImplementedError

    def _on_ready(self) -> None:
        """Send what a fresh socket needs (fields, subscriptions)."""

    def resubscribe(self) -> None:
        """Re-send every subscription (after DTN comes back)."""

    def _on_data(self, event: Event, recv_ns: int, summary: bool) -> bool:
        """A market event arrived (Trade, Quote, Depth); False drops it. ``summary``: from a ``P`` line."""
        return True

    def _skipped(self, counter: str, line: str) -> None:
        """A recognised line that yields no event (see the decoders): count it; log the first of each kind.

        Some kinds come with every watch (Level 1 ``F``) or in bulk (news, market-maker
        quotes), so only the first line of each kind per connection is logged, at
        DEBUG, as a sample; the counter tells the rest.
        """
        self.counters.add(counter)
        if counter not in self._skips_logged:
            self._skips_logged.add(counter)
            log.debug(
                "line kind not published; further ones are only counted",
                extra={"connection": self.name, "counter": counter, "line": line[:300]},
            )

    def _rejected(self, symbol: str, reason: str) -> None:
        """IQFeed refused a symbol (not found, over the account limit)."""
        self.counters.add("rejected_symbols")
        log.warning("symbol rejected by IQFeed", extra={"connection": self.name, "symbol": symbol, "reason": reason})


_DATA_TYPES: Final = frozenset({Trade, Quote, Depth})
_READER_CONTROL_FLOW: Final = (_Down, ProtocolVersionError, OSError)
"""Exceptions that end a socket on purpose: never treated as reader errors."""
_DTN_CAUSES: Final = {
    "SERVER DISCONNECTED": "server_disconnected",
    "SERVER RECONNECT FAILED": "server_reconnect_failed",
    "STATS": "dtn_not_connected",
}


def _enable_keepalive(sock: socket.socket) -> None:
    """TCP keepalive: the only liveness signal a quiet Level 2 socket has of its own."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class _Subscriptions:
    """The symbols a connection should be watching: thread-safe, limited, re-sent on reconnect."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.symbols: set[str] = set()
        self.rejected: dict[str, str] = {}

    def add(self, symbol: str) -> bool:
        """Add a (validated) symbol; False if already there; SymbolLimitReached at the limit."""
        if symbol in self.symbols:
            return False
        if len(self.symbols) >= self.limit:
            raise SymbolLimitReached(
                f"cannot watch {symbol}: {len(self.symbols)} symbols are watched and feed.watch_limit is "
                f"{self.limit}; unwatch one or raise the limit (and the IQFeed account's)"
            )
        self.symbols.add(symbol)
        return True

    def reject(self, symbol: str, reason: str) -> None:
        """Remember that IQFeed refused a symbol (it stays wanted: re-sent on reconnect)."""
        with self.lock:
            self.rejected[symbol] = reason

    def remove(self, symbol: str) -> bool:
        self.rejected.pop(symbol, None)
        if symbol not in self.symbols:
            return False
        self.symbols.discard(symbol)
        return True


class Level1Connection(_LineConnection):
    """Port 5009: trades and quotes; selects the update fields and watches symbols.

    Besides the whole-feed watchdog it notices a single watched symbol that stays
    silent for its session's threshold (``symbol_silence_s`` in the regular session, the
    extended and closed thresholds otherwise, judged at the feed's time) while other
    symbols trade: that opens an outage
    window for the symbol and re-watches it. The window closes on the symbol's next
    trade or quote, whatever happened in between (reconnects, re-watches), or when it
    is unwatched.
    """

    name = "level1"

    def __init__(
        self,
        settings: FeedSettings,
        sink: EventSink,
        *,
        update_fields: Iterable[str] = DEFAULT_UPDATE_FIELDS,
        on_feed_dead: Callable[[str], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(settings, settings.level1_port, sink, **kwargs)  # type: ignore[arg-type]
        self.liveness_timeout_s = settings.heartbeat_timeout_s
        self.update_fields = tuple(update_fields)
        self.subscriptions = _Subscriptions(settings.watch_limit)
        self._on_feed_dead = on_feed_dead
        self._decoder = Level1Decoder(clock=self._wall_clock, on_skip=self._skipped)
        self._last_seen: dict[str, float] = {}
        # symbol -> when it was last re-watched for its silence; a key here is a symbol whose
        # per-symbol outage window is open, until its next data (or unwatch) closes it
        self._silent: dict[str, float] = {}
        self._last_data_mono = 0.0
        self._next_silence_check = 0.0
        self.feed_time_ns: int | None = None
        """The feed's clock: the latest heartbeat's time (a replay's time in a replay); None before the first."""

    def watch(self, symbol: str) -> bool:
        """Watch trades and quotes; InvalidSymbol/SymbolLimitReached before anything is sent."""
        symbol = validate_symbol(symbol)
        subs = self.subscriptions
        with subs.lock:
            if not subs.add(symbol):
                return False
            self._last_seen[symbol] = self._clock()
            self.send(watch_command(symbol))
        log.info("watch", extra={"connection": self.name, "symbol": symbol})
        return True

    def unwatch(self, symbol: str) -> bool:
        symbol = validate_symbol(symbol)
        subs = self.subscriptions
        with subs.lock:
            if not subs.remove(symbol):
                return False
            self._last_seen.pop(symbol, None)
            self.send(unwatch_command(symbol))
        self._silent.pop(symbol, None)
        self.outages.close(self.name, self._wall_clock(), symbol)
        log.info("unwatch", extra={"connection": self.name, "symbol": symbol})
        return True

    def _begin_socket(self) -> None:
        self._decoder.new_socket()  # the heartbeat date survives: never the local clock's date

    def _decode(self, line: str) -> list[Event]:
        return self._decoder.decode(line)

    def _on_ready(self) -> None:
        self._send_now(format_command("S", "SET CLIENT NAME", self.settings.client_name))
        self._send_now(select_update_fields_command(self.update_fields))
        self._send_now(format_command("S", "TIMESTAMPSON"))
        self.resubscribe()

    def resubscribe(self) -> None:
        """Re-watch every symbol (after a reconnect, or after DTN comes back).

        A silent symbol's window stays open (``_silent`` is kept): a re-watch is no sign
        that the symbol streams again, only its next data is, and forgetting the window
        here would leave it open for good (no backfill, no later silences recorded).
        """
        subs = self.subscriptions
        now = self._clock()
        with subs.lock:
            symbols = sorted(subs.symbols)
            for symbol in symbols:
                self._last_seen[symbol] = now
                self._send_now(watch_command(symbol))
        log.info("resubscribed", extra={"connection": self.name, "count": len(symbols)})

    def _on_data(self, event: Event, recv_ns: int, summary: bool) -> bool:
        """Track per-symbol liveness; keep a summary's quote but not its trade.

        A ``P`` summary comes on every watch, so on every reconnect and re-watch, and
        carries the last trade. That trade is either one we already streamed or one
        made during an outage, which :meth:`FeedClient.backfill` fetches with its
        neighbours; publishing it would store it twice. So it is counted
        (``summary_trades_skipped``) and dropped. A summary is a snapshot, not a sign
        that the symbol streams, so it does not end a silence either.
        """
        if summary:
            if type(event) is Trade:
                self.counters.add("summary_trades_skipped")
                return False
            return True
        symbol = event.symbol  # type: ignore[union-attr]
        now = self._last_recv_mono
        self._last_seen[symbol] = now
        self._last_data_mono = now
        if self._silent and symbol in self._silent:
            del self._silent[symbol]
            self.outages.close(self.name, recv_ns, symbol)
        return True

    def _rejected(self, symbol: str, reason: str) -> None:
        super()._rejected(symbol, reason)
        self.subscriptions.reject(symbol, reason)

    def _on_control(self, event: Event, recv_ns: int) -> None:
        if type(event) is Heartbeat:
            self.feed_time_ns = event.ts_ns
        super()._on_control(event, recv_ns)

    def _check_liveness(self, now: float) -> None:
        try:
            super()._check_liveness(now)
        except _Down as down:
            if self._on_feed_dead is not None:
                self._on_feed_dead(str(down))
            raise
        if now >= self._next_silence_check:
            self._next_silence_check = now + _SILENCE_CHECK_S
            self._check_silent_symbols(now)

    def _silence_limit_s(self) -> float:
        """The silence threshold of the session running at the feed's time (its latest heartbeat, which
        in a replay is the replay's time): quiet symbols are normal outside the regular session."""
        session = session_at(self._decoder.when.ns)
        feed = self.settings
        if session is Session.REGULAR:
            return feed.symbol_silence_s
        if session is Session.CLOSED:
            return feed.symbol_silence_closed_s
        return feed.symbol_silence_extended_s

    def _check_silent_symbols(self, now: float) -> None:
        """Open a window for, and re-watch, each symbol silent while the feed is otherwise live."""
        limit = self._silence_limit_s()
        if limit <= 0 or self._dtn_connected is False or now - self._last_data_mono > limit:
            return
        subs = self.subscriptions
        with subs.lock:
            stale = [
                symbol for symbol in subs.symbols
                if symbol not in subs.rejected and now - self._last_seen.get(symbol, now) > limit
            ]
            for symbol in stale:
                last_try = self._silent.get(symbol)
                if last_try is not None and now - last_try < limit:
                    continue
                if last_try is None:
                    silent_for_ns = int((now - self._last_seen[symbol]) * 1e9)
                    self.outages.open(self.name, "symbol_silent", self._wall_clock() - silent_for_ns, symbol)
                    self.counters.add("silent_symbols")
                self._silent[symbol] = now
                self._send_now(unwatch_command(symbol))
                self._send_now(watch_command(symbol))


class Level2Connection(_LineConnection):
    """Port 9200: market depth; watches order books (``WPL``/``WOR``).

    No heartbeat of its own: see the module docstring for how a dead socket is found.
    """

    name = "level2"

    def __init__(self, settings: FeedSettings, sink: EventSink, **kwargs: object) -> None:
        super().__init__(settings, settings.level2_port, sink, **kwargs)  # type: ignore[arg-type]
        self.subscriptions = _Subscriptions(settings.watch_limit)
        self.book: DepthBook = settings.depth_book

    def watch(self, symbol: str) -> bool:
        symbol = validate_symbol(symbol)
        with self.subscriptions.lock:
            if not self.subscriptions.add(symbol):
                return False
            self.send(depth_watch_command(symbol, self.book))
        log.info("watch depth", extra={"connection": self.name, "symbol": symbol})
        return True

    def unwatch(self, symbol: str) -> bool:
        symbol = validate_symbol(symbol)
        with self.subscriptions.lock:
            if not self.subscriptions.remove(symbol):
                return False
            self.send(depth_unwatch_command(symbol, self.book))
        log.info("unwatch depth", extra={"connection": self.name, "symbol": symbol})
        return True

    def _begin_socket(self) -> None:
        self.liveness_timeout_s = None  # until this socket shows it sends heartbeats

    def _decode(self, line: str) -> list[Event]:
        return decode_level2(line, self._skipped)

    def _on_ready(self) -> None:
        self.resubscribe()

    def resubscribe(self) -> None:
        """Re-watch every depth symbol (after a reconnect, or after DTN comes back)."""
        with self.subscriptions.lock:
            symbols = sorted(self.subscriptions.symbols)
            for symbol in symbols:
                self._send_now(depth_watch_command(symbol, self.book))
        log.info("resubscribed", extra={"connection": self.name, "count": len(symbols)})

    def _on_control(self, event: Event, recv_ns: int) -> None:
        super()._on_control(event, recv_ns)
        if type(event) is Heartbeat:
            self.liveness_timeout_s = self.settings.heartbeat_timeout_s

    def _rejected(self, symbol: str, reason: str) -> None:
        super()._rejected(symbol, reason)
        self.subscriptions.reject(symbol, reason)


class AdminConnection(_LineConnection):
    """Port 9300: whether IQConnect is connected to DTN (``S,STATS`` once a second).

    Keeping this socket open also keeps IQConnect alive: it exits a few seconds after
    its last client leaves. ``S,STATS`` doubles as its heartbeat.
    """

    name = "admin"
    _liveness_cause = "stats_timeout"

    def __init__(
        self,
        settings: FeedSettings,
        sink: EventSink | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(settings, settings.admin_port, sink or _discard, **kwargs)  # type: ignore[arg-type]
        self.liveness_timeout_s = settings.heartbeat_timeout_s

    def _decode(self, line: str) -> list[Event]:
        return decode_admin(line)

    def _on_control(self, event: Event, recv_ns: int) -> None:
        super()._on_control(event, recv_ns)
        if type(event) is System and event.name == "STATS":  # type: ignore[union-attr]
            self._last_beat_mono = self._clock()


def _discard(events: list[Event]) -> None:
    """Sink for an admin connection whose events nobody needs (the supervisor's)."""
