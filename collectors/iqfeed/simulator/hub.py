"""The simulator's shared state and its loops: market stream, heartbeats, STATS, faults.

Everything here runs on the simulator's one asyncio loop, so no locks are needed.

Hot path (the reason for its shape): each stream batch (every ~5 ms, cut into chunks of
at most ``MAX_CHUNK`` events when catching up) draws the due number of market events,
applies each to its symbol's state, formats one ``Q`` line per distinct field selection
among the symbol's watchers, appends it to each watcher's queue, and finally writes every
queue with one socket write. The usual case (one watcher, default fields, no book, not
silenced: ``SymbolState.l1_append``, kept by :meth:`Hub.route`) is formatted inline in
:meth:`Hub.synthetic_batch` from the state's pre-joined parts; everything else goes
through :meth:`Hub.emit`. Symbols with a Level 2 watcher also have an order book that is
synced to the Level 1 quote after each event.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from itertools import repeat

from collectors.iqfeed.simulator.admin import AdminSession, StatsFields, stats_line
from collectors.iqfeed.simulator.book import BUY, SELL, OrderBook
from collectors.iqfeed.simulator.config import SimulatorConfig
from collectors.iqfeed.simulator.faults import Faults, garbage_line
from collectors.iqfeed.simulator.fields import DEFAULT_UPDATE_FIELDS, FormatterRegistry
from collectors.iqfeed.simulator.level1 import IQFEED_VERSION, Level1Session
from collectors.iqfeed.simulator.level2 import LEVELS, MARKET_MAKER, ORDERS, Level2Session
from collectors.iqfeed.simulator.lookup import LookupService, RateLimiter
from collectors.iqfeed.simulator.market import TRADE, SymbolState, SyntheticMarket, Tick
from collectors.iqfeed.simulator.replay import ReplayMarket, tick_precision
from collectors.iqfeed.simulator.session import ClientSession
from collectors.iqfeed.simulator.stats import PORTS, Counters, SimulatorStats
from collectors.iqfeed.simulator.trade_log import FLUSH_INTERVAL_S, TradeLog
from collectors.iqfeed.simulator.wire import US_PER_DAY, US_PER_SECOND, EasternClock, TimeText, heartbeat, stats_time

log = logging.getLogger(__name__)
_EXTRA = {"component": "iqfeed-simulator"}

BATCH_INTERVAL_S = 0.005
MAX_CATCH_UP_S = 0.25
REPLAY_CHUNK = 2000
MAX_CHUNK = 4000  # synthetic events drawn and written at once
SLOW_READER_TIMEOUT_S = 10.0
_CLIENT_TYPES = {"admin": 0, "level1": 1, "level2": 2, "lookup": 3}


class DtnLink:
    """Whether the simulated IQConnect is connected to DTN, and what that tells clients.

    Connected when the login is good, the connect delay has passed, and neither a
    client (``S,DISCONNECT``) nor a fault took the link down.
    """

    def __init__(self, hub: Hub, login_ok: bool) -> None:
        self.hub = hub
        self.login_ok = login_ok
        self.ready_at = float("inf")  # set when the simulator starts: start + connect delay
        self.user_disconnected = False
        self.fault_disconnected = False
        self.connected = False
        self.ever_connected = False
        self.reconnections = 0
        self.attempted_reconnections = 0
        self.connected_since_us = 0
        self._wake: asyncio.TimerHandle | None = None

    def refresh(self) -> None:
        early = self.ready_at - time.monotonic()
        if early > 0 and self._wake is None and self.hub.loop is not None:
            self._wake = self.hub.loop.call_later(early, self._woken)
        want = self.login_ok and not self.user_disconnected and not self.fault_disconnected and early <= 0
        if want == self.connected:
            return
        self.connected = want
        hub = self.hub
        if want:
            if self.ever_connected:
                self.reconnections += 1
            self.ever_connected = True
            self.connected_since_us = hub.clock.now()
            log.info("DTN link connected", extra={**_EXTRA, "reconnections": self.reconnections})
            hub.broadcast(["S,SERVER CONNECTED\r\n"], ("level1", "level2"))
            hub.resend_watches()
        else:
            log.info("DTN link disconnected", extra={**_EXTRA, "fault": self.fault_disconnected})
            lines = ["S,SERVER DISCONNECTED\r\n"]
            if self.fault_disconnected:
                self.attempted_reconnections += 1
                lines.append("S,SERVER RECONNECT FAILED\r\n")
            hub.broadcast(lines, ("level1", "level2"))

    def _woken(self) -> None:
        self._wake = None
        self.refresh()

    def user_connect(self) -> None:
        self.user_disconnected = False
        self.refresh()

    def user_disconnect(self) -> None:
        self.user_disconnected = True
        self.refresh()

    def fault_disconnect(self) -> None:
        self.fault_disconnected = True
        self.refresh()

    def fault_reconnect(self) -> None:
        self.fault_disconnected = False
        self.refresh()


class Hub:
    """Symbols, sessions, subscriptions and the loops that feed them."""

    def __init__(self, config: SimulatorConfig, replay_ticks: list[Tick] | None = None) -> None:
        self.config = config
        self.clock = EasternClock()
        self.text = TimeText()
        self.stats = Counters()
        self.formatters = FormatterRegistry()
        self.default_formatter = self.formatters.get(DEFAULT_UPDATE_FIELDS)
        self.default_protocol = config.protocol_versions[0]
        self.auth_key = f"SIM{config.seed:05d}"
        self.login_id = config.login_id
        self.product = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread_id = 0
        self.sessions: dict[str, set[ClientSession]] = {port: set() for port in PORTS}
        self.watch_counts: dict[str, int] = {}
        per_symbol = config.history_per_symbol
        self.states: dict[str, SymbolState] = {}
        self.trade_log = TradeLog(config.trade_log) if config.trade_log is not None else None
        for index, symbol in enumerate(config.universe):
            limit = max(per_symbol, len(replay_ticks)) if replay_ticks and symbol == config.replay_symbol else per_symbol
            st = self.states[symbol] = SymbolState(symbol, index, self.text, limit)
            if self.trade_log is not None:
                st.history = self.trade_log.history(symbol, limit)
        self.book_rng = random.Random(config.seed + 1)
        self.replay_ticks = replay_ticks
        self.replay_started = asyncio.Event()
        self.market_time_us = replay_ticks[0].time_us if replay_ticks else 0
        self._replay_t0 = 0.0
        # A replay owns the market: the other symbols stay quiet and quoteless.
        self.synthetic = None if replay_ticks else SyntheticMarket(list(self.states.values()), config.seed, self.clock.now())
        if replay_ticks:
            self.states[config.replay_symbol or ""].precision = tick_precision(replay_ticks)
            self.stats.replay_ticks_total = len(replay_ticks)
        self.replay = ReplayMarket(config.seed)
        self.lookup = LookupService(self.states, RateLimiter(config.lookup_rate_limit, time.monotonic))
        self.link = DtnLink(self, config.login_ok)
        self.faults = Faults(self)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_kb = (0.0, 0.0)
        self._started_mono = time.monotonic()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the loops (called on the simulator loop once the ports listen)."""
        if self.trade_log is not None:
            self.trade_log.open()
        self.loop = loop
        self.loop_thread_id = threading.get_ident()
        self._started_mono = time.monotonic()
        self.link.ready_at = self._started_mono + self.config.connect_delay
        self.link.refresh()
        self.spawn(self._heartbeats())
        self.spawn(self._stats_loop())
        self.spawn(self._housekeeping())
        self.spawn(self._replay() if self.replay_ticks else self._synthetic())
        if self.trade_log is not None:
            self.spawn(self._flush_trade_log(self.trade_log))

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", exc_info=task.exception(), extra=_EXTRA)

    async def close(self) -> None:
        for session in self.all_sessions():
            session.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.trade_log is not None:
            self.trade_log.close()

    # -- sessions and subscriptions -----------------------------------------------------------

    def all_sessions(self) -> list[ClientSession]:
        return [s for sessions in self.sessions.values() for s in sessions]

    def register(self, session: ClientSession) -> None:
        self.sessions[session.port].add(session)
        self.stats.accepted[session.port] += 1
        self.stats.clients[session.port] = len(self.sessions[session.port])
        log.debug("client connected", extra={**_EXTRA, "port": session.port, "client_id": session.client_id})

    def unregister(self, session: ClientSession) -> None:
        if isinstance(session, Level1Session):
            for symbol in list(session.watches):
                self.unwatch_l1(session, self.states[symbol])
        elif isinstance(session, Level2Session):
            for symbol, view in list(session.watches):
                self.unwatch_l2(session, self.states[symbol], view)
        self.sessions[session.port].discard(session)
        self.stats.clients[session.port] = len(self.sessions[session.port])
        log.debug("client disconnected", extra={**_EXTRA, "port": session.port, "client_id": session.client_id})

    def watch_l1(self, session: Level1Session, st: SymbolState, trades_only: bool) -> bool:
        """Add or change a Level 1 watch; False when the watch limit forbids a new symbol.

        The limit counts distinct symbols over every connection (one IQConnect), or, with
        ``watch_limit_per_connection``, over the session's own watches only.
        """
        symbol = st.symbol
        if symbol not in session.watches:
            count = self.watch_counts.get(symbol, 0)
            if self.config.watch_limit_per_connection:
                if len(session.watches) >= self.config.watch_limit:
                    return False
            elif count == 0 and len(self.watch_counts) >= self.config.watch_limit:
                return False
            self.watch_counts[symbol] = count + 1
        session.watches[symbol] = trades_only
        self._set_l1_watchers(st, [w for w in st.l1_watchers if w[0] is not session] + [(session, trades_only)])
        self._maybe_start_replay(st)
        return True

    def unwatch_l1(self, session: Level1Session, st: SymbolState) -> None:
        symbol = st.symbol
        if session.watches.pop(symbol, None) is None:
            return
        self._set_l1_watchers(st, [w for w in st.l1_watchers if w[0] is not session])
        left = self.watch_counts[symbol] - 1
        if left:
            self.watch_counts[symbol] = left
        else:
            del self.watch_counts[symbol]

    def formatter_changed(self, session: Level1Session) -> None:
        """A Level 1 client selected other fields: regroup the watchers of its symbols."""
        for symbol in session.watches:
            st = self.states[symbol]
            self._set_l1_watchers(st, st.l1_watchers)

    def _set_l1_watchers(self, st: SymbolState, watchers: list[tuple[object, bool]]) -> None:
        # grouped by field selection, so one formatted line serves consecutive watchers
        st.l1_watchers = sorted(watchers, key=lambda w: id(w[0].formatter))  # type: ignore[attr-defined]
        self.route(st)

    def route(self, st: SymbolState) -> None:
        """Set the stream's fast path for ``st`` after its watchers, book or silence changed.

        ``st.l1_append`` is the queue of the symbol's one Level 1 watcher when that is the
        usual case: every event, default fields, no order book, not silenced. The stream's
        hot loop then formats and queues the line itself; otherwise it is None and each
        event goes through :meth:`emit`.
        """
        watchers = st.l1_watchers
        if (
            len(watchers) == 1
            and not watchers[0][1]
            and watchers[0][0].formatter is self.default_formatter  # type: ignore[attr-defined]
            and st.book is None
            and not st.silenced
        ):
            st.l1_append = watchers[0][0].out.append  # type: ignore[attr-defined]
        else:
            st.l1_append = None

    def watch_l2(self, session: Level2Session, st: SymbolState, view: str) -> list[str]:
        """Add a Level 2 watch; returns the view's summary lines for the new watcher."""
        book = st.book
        if book is None:
            book = st.book = OrderBook(st.symbol, st.precision, st.tick, self.config.book_depth, self.book_rng, self.text)
            book.sync(st.bid, st.bid_size, st.ask, st.ask_size, self.market_now())
            self.route(st)
        watchers = st.l2_watchers[view]
        if session not in watchers:
            watchers.append(session)
        session.watches.add((st.symbol, view))
        self._set_wants(st)
        self._maybe_start_replay(st)
        return self.depth_summary(st, view)

    def unwatch_l2(self, session: Level2Session, st: SymbolState, view: str) -> None:
        session.watches.discard((st.symbol, view))
        watchers = st.l2_watchers[view]
        if session in watchers:
            watchers.remove(session)
        if not any(st.l2_watchers.values()):
            st.book = None  # nobody watches its depth: stop simulating it
            self.route(st)
        else:
            self._set_wants(st)

    def _set_wants(self, st: SymbolState) -> None:
        book = st.book
        assert book is not None
        book.want_orders = bool(st.l2_watchers[ORDERS])
        book.want_levels = bool(st.l2_watchers[LEVELS])
        book.want_mm = bool(st.l2_watchers[MARKET_MAKER])

    def depth_summary(self, st: SymbolState, view: str) -> list[str]:
        book = st.book
        assert book is not None
        now = self.market_now()
        if view == ORDERS:
            return book.snapshot_orders(now)
        if view == LEVELS:
            return book.snapshot_levels(now)
        return book.snapshot_mm(now)

    def resend_watches(self) -> None:
        """After (re)connecting to DTN: fresh summaries for every watch, books cleared first."""
        for session in self.sessions["level1"]:
            assert isinstance(session, Level1Session)
            session.send_lines([line for symbol in session.watches for line in session.snapshot(self.states[symbol])])
        for session in self.sessions["level2"]:
            assert isinstance(session, Level2Session)
            lines: list[str] = []
            for symbol, view in sorted(session.watches):
                st = self.states[symbol]
                assert st.book is not None
                lines += st.book.clear_lines() + self.depth_summary(st, view)
            session.send_lines(lines)

    def broadcast(self, lines: list[str], ports: Iterable[str]) -> None:
        for port in ports:
            for session in list(self.sessions[port]):
                if session.welcomed:
                    session.send_lines(lines)

    def flush_streams(self) -> None:
        for port in ("level1", "level2"):
            for session in list(self.sessions[port]):
                if session.out:
                    session.flush()

    # -- clocks and status ---------------------------------------------------------------------

    def market_now(self) -> int:
        """Market time (Eastern wall-clock us): the wall clock, or the replay's clock."""
        if not self.replay_ticks:
            return self.clock.now()
        speed = self.config.speed
        if speed and self.replay_started.is_set() and not self.stats.replay_finished:
            return self.replay_ticks[0].time_us + int((time.monotonic() - self._replay_t0) * speed * US_PER_SECOND)
        return self.market_time_us

    def stats_fields(self) -> StatsFields:
        """The ``S,STATS`` values of the whole simulator (one IQConnect).

        Each call moves the per-second byte rates on, so the once-a-second loop calls it
        once for all admin connections.
        """
        counters = self.stats
        uptime = max(1.0, time.monotonic() - self._started_mono)
        kb_sent = sum(counters.bytes.values()) / 1024
        kb_received = sum(s.bytes_received for s in self.all_sessions()) / 1024
        last_sent, last_received = self._last_kb
        self._last_kb = (kb_sent, kb_received)
        link = self.link
        return StatsFields(
            connected=link.connected,
            max_symbols=self.config.watch_limit,
            symbols=len(self.watch_counts),
            clients=len(self.all_sessions()),
            seconds_since_update=0,
            reconnections=link.reconnections,
            attempted_reconnections=link.attempted_reconnections,
            start_time=stats_time(link.connected_since_us) if link.connected else "",
            market_time=stats_time(self.market_now()),
            version=IQFEED_VERSION,
            login_id=self.login_id,
            kb_received=kb_received,
            kb_per_s_received=max(0.0, kb_received - last_received),
            avg_kb_per_s_received=kb_received / uptime,
            kb_sent=kb_sent,
            kb_per_s_sent=max(0.0, kb_sent - last_sent),
            avg_kb_per_s_sent=kb_sent / uptime,
        )

    def stats_line(self, session: ClientSession) -> str:
        """``S,STATS`` for ``session`` (see :meth:`seen_by`)."""
        return stats_line(self.seen_by(self.stats_fields(), session))

    def seen_by(self, fields: StatsFields, session: ClientSession) -> StatsFields:
        """``fields`` as the IQConnect that ``session`` talks to reports them.

        With one IQConnect (the default) that is every connection. With a watch limit per
        connection each Level 1 connection is an IQConnect of its own: its Symbols are its
        own watches. Clients cannot say which IQConnect they mean, so the client name
        (``S,SET CLIENT NAME``) ties them together: an admin connection reports the Level 1
        connections with its name, and Clients counts the connections with that name (an
        unnamed connection is alone). Byte counts stay the simulator's totals.
        """
        if not self.config.watch_limit_per_connection:
            return fields
        name = session.client_name
        named = [s for s in self.all_sessions() if s.client_name == name] if name else [session]
        if isinstance(session, Level1Session):
            level1: list[Level1Session] = [session]
        else:
            level1 = [s for s in named if isinstance(s, Level1Session)]
        symbols = len(set().union(*(s.watches for s in level1)))
        return replace(fields, symbols=symbols, clients=len(named))

    def client_stats_lines(self) -> list[str]:
        lines = []
        for session in self.all_sessions():
            symbols = len(getattr(session, "watches", ()))
            started = f"{self.text.compact_date(session.connected_us)} {self.text.hms(session.connected_us).replace(':', '')}"
            queued = session.transport.get_write_buffer_size() / 1024 if session.transport else 0.0
            lines.append(
                f"S,CLIENTSTATS,{_CLIENT_TYPES[session.port]},{session.client_id},{session.client_name},{started},"
                f"{symbols},0,{session.bytes_sent / 1024:.2f},{session.bytes_received / 1024:.2f},{queued:.2f},\r\n"
            )
        return lines

    def snapshot(self) -> SimulatorStats:
        c = self.stats
        return SimulatorStats(
            messages_sent=dict(c.messages),
            bytes_sent=dict(c.bytes),
            clients_connected=dict(c.clients),
            connections_accepted=dict(c.accepted),
            clients_dropped=c.clients_dropped,
            market_events=c.market_events,
            malformed_sent=c.malformed_sent,
            lookup_requests=self.lookup.requests,
            lookup_rate_limited=self.lookup.rate_limited,
            replay_ticks_sent=c.replay_ticks_sent,
            replay_ticks_total=c.replay_ticks_total,
            replay_finished=c.replay_finished,
            dtn_connected=self.link.connected,
            watched_symbols=len(self.watch_counts),
            trades_logged=self.trade_log.written if self.trade_log is not None else 0,
            trade_log_failures=self.trade_log.failed if self.trade_log is not None else 0,
        )

    # -- the market stream -----------------------------------------------------------------

    def emit(self, st: SymbolState, flags: int, t_us: int) -> None:
        """Fan one market event of ``st`` out to its Level 1 (and Level 2) watchers."""
        if st.book is not None:
            self._book_event(st, flags, t_us)
        if st.silenced or not self.link.connected:
            return
        last_formatter = None
        text = ""
        for session, trades_only in st.l1_watchers:
            if trades_only and not flags & TRADE:
                continue
            formatter = session.formatter  # type: ignore[attr-defined]
            if formatter is not last_formatter:
                last_formatter = formatter
                text = formatter.update(st)
            session.out.append(text)

    def _book_event(self, st: SymbolState, flags: int, t_us: int) -> None:
        book = st.book
        assert book is not None
        if flags & TRADE:
            for side in ((SELL, BUY) if st.aggressor != 2 else (BUY, SELL)):
                best = book.best(side)
                if best is not None and best.price == st.last:
                    book.execute(side, st.last_size, t_us)
                    break
        book.sync(st.bid, st.bid_size, st.ask, st.ask_size, t_us)
        if self.book_rng.random() < 0.5:
            book.noise(t_us)
        deliver = not st.silenced and self.link.connected
        for view, lines in ((ORDERS, book.out_orders), (LEVELS, book.out_levels), (MARKET_MAKER, book.out_mm)):
            if lines:
                if deliver:
                    for session in st.l2_watchers[view]:
                        session.out.extend(lines)
                lines.clear()

    async def _synthetic(self) -> None:
        rate = self.config.rate
        if rate <= 0:
            return
        carry = 0.0
        last = time.monotonic()
        last_us = self.clock.now()
        while True:
            await asyncio.sleep(BATCH_INTERVAL_S)
            if self.faults.stalled():
                await self.faults.wait_stall_end()
                last, last_us = time.monotonic(), self.clock.now()
                continue
            now = time.monotonic()
            due = rate * min(now - last, MAX_CATCH_UP_S) + carry
            last = now
            count = int(due)
            carry = due - count
            now_us = self.clock.now()
            # A batch that caught up after a slow one is cut into chunks, each written out
            # before the next is drawn: the queued text stays small (cache-friendly).
            chunks = -(-count // MAX_CHUNK)
            for chunk in range(chunks):
                first = count * chunk // chunks
                end = count * (chunk + 1) // chunks
                start_us = last_us + (now_us - last_us) * chunk // chunks
                end_us = last_us + (now_us - last_us) * (chunk + 1) // chunks
                self.synthetic_batch(end - first, start_us, end_us)
                self.flush_streams()
            last_us = now_us

    def synthetic_batch(self, count: int, last_us: int, now_us: int) -> None:
        """Draw ``count`` market events spread over (``last_us``, ``now_us``] and queue them.

        The stream's hot loop. Event times step evenly (whole microseconds) from
        ``last_us``. A symbol with a fast path (``st.l1_append``, see :meth:`route`) gets
        its ``Q`` line formatted and queued right here, with the default field selection
        written out (the same line as ``UpdateFormatter(DEFAULT_UPDATE_FIELDS).update``);
        anything else goes through :meth:`emit`.
        """
        market = self.synthetic
        assert market is not None
        picks = market.pick(count, now_us)
        step = market.step
        emit = self.emit
        gap = (now_us - last_us) // count
        times: Iterable[int] = range(last_us + gap, last_us + gap * count + 1, gap) if gap > 0 else repeat(now_us, count)
        if not self.link.connected:
            for st, t_us in zip(picks, times):
                emit(st, step(st, t_us), t_us)
        else:
            for st, t_us in zip(picks, times):
                flags = step(st, t_us)
                append = st.l1_append
                if append is None:
                    emit(st, flags, t_us)
                else:
                    append(
                        f"Q,{st.f_trade_part},{st.f_bid},{st.f_bid_size},{st.f_ask},{st.f_ask_size},"
                        f"{st.f_ohlc},{st.f_contents},{st.f_conds},\r\n"
                    )
        self.stats.market_events += count

    def _maybe_start_replay(self, st: SymbolState) -> None:
        if self.replay_ticks and st.symbol == self.config.replay_symbol and not self.replay_started.is_set():
            self._replay_t0 = time.monotonic()
            self.replay_started.set()

    async def _replay(self) -> None:
        ticks = self.replay_ticks
        assert ticks
        st = self.states[self.config.replay_symbol or ""]
        speed = self.config.speed or 0.0
        await self.replay_started.wait()
        log.info("replay started", extra={**_EXTRA, "symbol": st.symbol, "ticks": len(ticks), "speed": speed})
        first_us = ticks[0].time_us
        index, total = 0, len(ticks)
        day = -1
        while index < total:
            if self.faults.stalled():
                began = time.monotonic()
                await self.faults.wait_stall_end()
                self._replay_t0 += time.monotonic() - began
                continue
            if speed:
                due_us = first_us + int((time.monotonic() - self._replay_t0) * speed * US_PER_SECOND)
                end = index
                while end < total and ticks[end].time_us <= due_us and end - index < REPLAY_CHUNK:
                    end += 1
            else:
                end = min(total, index + REPLAY_CHUNK)
            for tick in ticks[index:end]:
                if tick.time_us // US_PER_DAY != day:  # a new date: tell clients before its first trade
                    day = tick.time_us // US_PER_DAY
                    self._date_heartbeat(tick.time_us)
                self.market_time_us = tick.time_us
                self.emit(st, self.replay.apply(st, tick), tick.time_us)
            self.stats.replay_ticks_sent += end - index
            self.stats.market_events += end - index
            index = end
            self.flush_streams()
            if speed and index < total:
                wait_s = (ticks[index].time_us - due_us) / (speed * US_PER_SECOND)
                await asyncio.sleep(min(max(wait_s, 0.0), 0.05))
            else:
                await self._wait_for_readers(st)
        self.stats.replay_finished = True
        log.info("replay finished", extra={**_EXTRA, "symbol": st.symbol, "ticks": total})

    def _date_heartbeat(self, t_us: int) -> None:
        if not self.link.connected:
            return
        line = heartbeat(self.text, t_us)
        for session in self.sessions["level1"]:
            if session.timestamps:  # type: ignore[attr-defined]
                session.out.append(line)

    async def _wait_for_readers(self, st: SymbolState) -> None:
        """As-fast-as-possible replay goes at the pace of its slowest reader, for a bounded time."""
        await asyncio.sleep(0)
        began = time.monotonic()
        while True:
            readers = [s for s, _ in st.l1_watchers] + [s for views in st.l2_watchers.values() for s in views]
            busy = [s for s in readers if s.paused and not s.closed]  # type: ignore[attr-defined]
            if not busy:
                return
            if time.monotonic() - began > SLOW_READER_TIMEOUT_S:
                for session in busy:
                    log.warning("dropping slow replay reader", extra={**_EXTRA, "client_id": session.client_id})
                    self.stats.clients_dropped += 1
                    session.abort()
                return
            await asyncio.sleep(0.002)

    # -- periodic work ---------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.001)
            if self.faults.stalled():
                continue
            line = heartbeat(self.text, self.market_now())
            for port in ("level1", "level2"):
                for session in list(self.sessions[port]):
                    if session.welcomed and session.timestamps:  # type: ignore[attr-defined]
                        session.send(line)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.002)
            if self.faults.stalled() or not self.sessions["admin"]:
                continue
            fields = self.stats_fields()
            client_lines: list[str] | None = None
            for session in list(self.sessions["admin"]):
                if not session.welcomed:
                    continue
                session.send(stats_line(self.seen_by(fields, session)))
                if isinstance(session, AdminSession) and session.client_stats:
                    client_lines = client_lines or self.client_stats_lines()
                    session.send_lines(client_lines)

    async def _flush_trade_log(self, trade_log: TradeLog) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            trade_log.flush()

    async def _housekeeping(self) -> None:
        """Fault timers and malformed lines, every 20 ms."""
        carry = 0.0
        last = time.monotonic()
        symbol = next(iter(self.states))
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            elapsed, last = now - last, now
            self.faults.expire(now)
            rate = self.faults.malformed_rate
            if not rate or self.faults.stalled():
                carry = 0.0
                continue
            due = rate * elapsed + carry
            count = int(due)
            carry = due - count
            for _ in range(count):
                line = garbage_line(self.faults.malformed_count, symbol)
                self.faults.malformed_count += 1
                self.stats.malformed_sent += 1
                for port in ("level1", "level2"):
                    for session in self.sessions[port]:
                        if session.welcomed:
                            session.out.append(line)
            self.flush_streams()
