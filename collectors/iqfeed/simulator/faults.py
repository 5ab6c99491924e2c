"""Fault injection: the failures our IQFeed client must survive, on demand.

Every method may be called from any thread (a test) or from the simulator's own loop
(the admin port's ``S,SIM FAULT`` command). From another thread the call runs on the
loop and returns once the fault is in effect, so a test can act on it immediately.

What each fault does:

* ``drop_connections()``: every client socket is closed now; listening goes on.
* ``stall(seconds)``: the simulator freezes: no heartbeats, STATS, market data or
  replies. Sockets stay open; commands sent meanwhile are answered when it ends, and
  the market does not move while frozen.
* ``server_disconnect()``: IQConnect loses DTN: ``S,SERVER DISCONNECTED`` then
  ``S,SERVER RECONNECT FAILED`` on Level 1 and 2, admin Status ``Not Connected``, no
  market data (the market moves on: lookups show the ticks the stream missed).
  Heartbeats continue: IQConnect itself is alive.
* ``server_reconnect()``: ``S,SERVER CONNECTED``, fresh ``F``/``P`` for every Level 1
  watch and ``S,CLEAR DEPTH`` plus a summary for every Level 2 watch, data resumes.
* ``malformed(rate_per_s)``: garbage lines on Level 1 and 2 at that rate (0 stops).
* ``refuse_connections(seconds)``: listening sockets close (connects are refused) and
  reopen on the same ports after ``seconds``; open connections are left alone.
* ``silence_symbol(symbol, seconds=None)``: nothing is streamed for the symbol (until
  cleared when ``seconds`` is None); its market moves on and lookups show it.
* ``clear()``: ends every fault above at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collectors.iqfeed.simulator.hub import Hub

log = logging.getLogger(__name__)
_EXTRA = {"component": "iqfeed-simulator"}
T = TypeVar("T")


class SimulatorNotRunning(RuntimeError):
    """A fault was requested while the simulator is not running: call ``start()`` first."""


class Listeners(Protocol):
    """What the server offers for :meth:`Faults.refuse_connections`."""

    def close_listeners(self) -> None: ...

    async def reopen_listeners(self) -> None: ...


def garbage_line(n: int, symbol: str) -> str:
    """The ``n``-th malformed line: kinds rotate so a client meets every sort of damage."""
    kinds = (
        f"Q,{symbol},12.3x4,abc,,\r\n",  # numbers that are not numbers
        f"Q,{symbol}\r\n",  # truncated update
        "\x00\xff\xfe#?garbage#?\r\n",  # binary junk
        "X,unknown message type,1,2,3,\r\n",  # a message type IQFeed never sends
        f"8,{symbol},Z,notaprice,-5,,,\r\n",  # depth update with a bad side and price
        "S,\r\n",  # empty system message
    )
    return kinds[n % len(kinds)]


def _on_loop(method: Callable[..., T]) -> Callable[..., T]:
    """Run the method on the simulator loop; from another thread, wait until it is done."""

    @functools.wraps(method)
    def call(self: Faults, *args: object) -> T:
        loop = self.hub.loop
        if loop is None or not loop.is_running():
            raise SimulatorNotRunning("the simulator is not running: call start() first")
        if threading.get_ident() == self.hub.loop_thread_id:
            return method(self, *args)
        done = asyncio.run_coroutine_threadsafe(_as_coroutine(method, self, *args), loop)
        return done.result(timeout=30)

    return call


async def _as_coroutine(method: Callable[..., T], *args: object) -> T:
    return method(*args)


class Faults:
    """Fault state plus the public fault controls (``sim.faults``)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.listeners: Listeners | None = None
        self.stalled_until = 0.0
        self.malformed_rate = 0.0
        self.malformed_count = 0
        self._silenced: dict[str, float | None] = {}
        self._reopen: asyncio.TimerHandle | None = None
        self._stall_end: asyncio.TimerHandle | None = None

    # -- read by the simulator ---------------------------------------------------------

    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    async def wait_stall_end(self) -> None:
        while self.stalled():
            await asyncio.sleep(min(0.05, max(0.001, self.stalled_until - time.monotonic())))

    def expire(self, now: float) -> None:
        """End silences whose time is up."""
        for symbol, until in list(self._silenced.items()):
            if until is not None and now >= until:
                self._unsilence(symbol)

    # -- the controls --------------------------------------------------------------------

    @_on_loop
    def drop_connections(self) -> None:
        """Close every client socket now; the server keeps listening."""
        sessions = self.hub.all_sessions()
        log.info("fault: dropping %d connections", len(sessions), extra={**_EXTRA, "fault": "drop_connections"})
        for session in sessions:
            session.abort()

    @_on_loop
    def stall(self, seconds: float) -> None:
        """Freeze for ``seconds``: no heartbeats, data or replies; sockets stay open."""
        self.stalled_until = max(self.stalled_until, time.monotonic() + seconds)
        log.info("fault: stall %.3fs", seconds, extra={**_EXTRA, "fault": "stall", "seconds": seconds})
        if self._stall_end is not None:
            self._stall_end.cancel()
        self._stall_end = self.hub.loop.call_later(seconds, self._end_stall)  # type: ignore[union-attr]

    def _end_stall(self) -> None:
        if self.stalled():  # a longer stall was asked for meanwhile
            self._stall_end = self.hub.loop.call_later(self.stalled_until - time.monotonic(), self._end_stall)  # type: ignore[union-attr]
            return
        self._stall_end = None
        for session in self.hub.all_sessions():
            session.resume()

    @_on_loop
    def server_disconnect(self) -> None:
        """IQConnect loses DTN: disconnected and reconnect-failed messages, no data."""
        log.info("fault: DTN server disconnect", extra={**_EXTRA, "fault": "server_disconnect"})
        self.hub.link.fault_disconnect()

    @_on_loop
    def server_reconnect(self) -> None:
        """IQConnect is back on DTN: connected message, summaries again, data resumes."""
        log.info("fault: DTN server reconnect", extra={**_EXTRA, "fault": "server_reconnect"})
        self.hub.link.fault_reconnect()

    @_on_loop
    def malformed(self, rate_per_s: float) -> None:
        """Send garbage lines on Level 1 and 2 at ``rate_per_s`` (0 stops)."""
        log.info("fault: malformed lines at %s/s", rate_per_s, extra={**_EXTRA, "fault": "malformed"})
        self.malformed_rate = max(0.0, float(rate_per_s))

    @_on_loop
    def refuse_connections(self, seconds: float) -> None:
        """Close the listening sockets for ``seconds``, then listen again on the same ports."""
        if self.listeners is None:
            raise SimulatorNotRunning("no listeners to close")
        log.info("fault: refusing connections for %.3fs", seconds, extra={**_EXTRA, "fault": "refuse_connections"})
        self.listeners.close_listeners()
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = self.hub.loop.call_later(seconds, self._schedule_reopen)  # type: ignore[union-attr]

    def _schedule_reopen(self) -> None:
        self._reopen = None
        assert self.listeners is not None
        self.hub.spawn(self.listeners.reopen_listeners())

    @_on_loop
    def silence_symbol(self, symbol: str, seconds: float | None = None) -> None:
        """Stream nothing for ``symbol`` for ``seconds`` (None: until cleared)."""
        st = self.hub.states.get(symbol)
        if st is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        st.silenced = True
        self.hub.route(st)
        self._silenced[symbol] = None if seconds is None else time.monotonic() + seconds
        log.info("fault: silencing %s", symbol, extra={**_EXTRA, "fault": "silence_symbol", "symbol": symbol})

    def _unsilence(self, symbol: str) -> None:
        self._silenced.pop(symbol, None)
        st = self.hub.states[symbol]
        st.silenced = False
        self.hub.route(st)

    @_on_loop
    def clear(self) -> None:
        """End every fault now."""
        log.info("fault: clear", extra={**_EXTRA, "fault": "clear"})
        self.malformed_rate = 0.0
        for symbol in list(self._silenced):
            self._unsilence(symbol)
        if self.hub.link.fault_disconnected:
            self.hub.link.fault_reconnect()
        if self._reopen is not None:
            self._reopen.cancel()
            self._schedule_reopen()
        if self.stalled():
            self.stalled_until = 0.0
            if self._stall_end is not None:
                self._stall_end.cancel()
            self._end_stall()
