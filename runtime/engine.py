"""The engine: one object that owns the whole pipeline of a TickOps process.

    FeedClient threads ──sink──► Engine.ingest: stamp source+seq ─┬─► Validator, LiveState
                                                                  ├─► BackupWriter (zstd segments)
                                                                  └─► EventProducer ──► bus
    JobRunner (APScheduler): producer poll loop │ writer loop (bus ──► store) │ backup rotation
                             retention │ host sample │ alert rules │ symbol reconcile │ outages
                             │ backfill of closed Level 1 outages (lookup HTT, runtime/backfill.py)
                             │ catch-up of newly watched symbols from their watermark (runtime/catchup.py)
                             │ storage link (migrations, durable state, catch-up: runtime/storage_link.py)

The same object runs embedded in Streamlit (``st.cache_resource``) and headless
(``python -m runtime run``). Durable state (desired symbols, alerts, audit log,
outage windows) lives in the store, so a restart or a second process sees it; the
engine keeps its own copy in memory and runs without storage (down at start or later),
catching up when it answers.

``source`` is ``<instance_id>@<session start ms>``: seq restarts at 1 with every
session, and the session stamp keeps (source, seq) unique across restarts.
"""

from __future__ import annotations

import logging
import threading
import time

from alerts.lifecycle import Alert, AlertBook
from alerts.notify import Notifier
from alerts.rules import Observation, evaluate_rules
from alerts.settings_audit import record_start, settings_digest
from bus.base import Bus, BusError
from bus.breaker import BreakerState
from bus.factory import build_producer, open_bus
from bus.producer import EventProducer
from bus.topics import TopicSet
from collectors.iqfeed.client import FeedClient
from collectors.iqfeed.iqconnect import IQConnectSupervisor
from collectors.iqfeed.protocol import SymbolLimitReached, validate_symbol
from collectors.market_hours import load_calendar, session_at, session_start_ns
from config import Settings
from events import Event, Trade
from monitoring.counter_window import CounterWindow
from monitoring.host import HostSampler, rss_growth_after_warmup
from monitoring.uptime import COMPONENTS
from runtime import operator_actions
from runtime.backfill import Backfiller, TradeIdentity
from runtime.catchup import CatchUp
from runtime.jobs import JobRunner
from runtime.live_state import LiveState
from runtime.status import EngineStatus
from runtime.storage_link import StorageLink
from runtime.symbols import SymbolSpec
from runtime.uptime import SAMPLE_INTERVAL_S, UptimeTracker, component_health
from runtime.validation import Validator
from storage.audit_trail import process_actor
from storage.backup import BackupWriter
from storage.factory import open_store
from storage.mirror import BackupMirror
from storage.operator_backup import OperatorSnapshots, snapshot_directory
from storage.outages import StoredOutage, outage_columns
from storage.store import StorageError, Store, sql_string
from storage.writer import Writer, build_writer

log = logging.getLogger(__name__)

# The embedded simulator's universe: the configured symbols plus liquid names an
# operator is likely to add from the sidebar; anything else answers "symbol not found".
DEMO_UNIVERSE = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V", "SPY", "QQQ", "IWM",
    "DIA", "XOM", "UNH", "JNJ", "WMT", "PG", "MA", "HD", "BAC", "KO", "PEP", "AMD", "INTC", "NFLX", "DIS",
)


BACKFILL_INTERVAL_S = 2.0
# A stop's drain ends once the writer has read nothing for this long (longer than a Kafka fetch's
# 500 ms wait, and than the writer's 1 s lag refresh) and has no lag left.
DRAIN_QUIET_S = 1.2


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


class Engine:
    def __init__(self, settings: Settings, *, store: Store | None = None, bus: Bus | None = None) -> None:
        self.settings = settings
        self.started_ns = time.time_ns()
        self.source = f"{settings.instance_id}@{self.started_ns // 1_000_000}"
        self.store = store or open_store(settings)
        # Migrations, desired symbols and alerts: in memory first, storage when it answers (possibly not yet).
        self.storage = StorageLink.from_settings(self.store, settings)
        self.bus = bus or open_bus(settings)
        self.producer: EventProducer = build_producer(settings, self.bus)
        self.writer: Writer | None = None
        self.backup = BackupWriter.from_settings(settings) if settings.backup.enabled else None
        self.operator_snapshots, self.mirror = self._backup_copies()
        self.uptime = UptimeTracker(settings.instance_id, settings.monitoring.uptime_objective,
                                    components=tuple(c for c in COMPONENTS
                                                     if c != "writer" or settings.storage.embedded_writer))
        self.validator = Validator()
        self.live = LiveState()
        self.host = HostSampler(settings.data_dir)
        self.symbols = self.storage.symbols
        self.alert_store = self.storage.alert_store
        self.alert_book: AlertBook = self.storage.alert_book
        self.notifier = Notifier.from_settings(settings)  # None unless [notify] names a channel
        self.jobs = JobRunner()
        self.simulator = None
        self.iqconnect: IQConnectSupervisor | None = None  # feed.mode = "iqconnect" with feed.supervise
        self.feed: FeedClient | None = None
        self._seq = 0
        self._ingest_lock = threading.Lock()
        self._persisted_outages: dict[tuple[str, str, int], int | None] = {}
        self.backfill = Backfiller(fetch=self._trade_history, stored=self._stored_trades)
        self.catchup = CatchUp(self.store, source=self.source, topic=TopicSet(settings.kafka.topic_prefix).trades,
                               fetch=self._trade_history, stored=self._stored_trades, recent=self.backfill.recent,
                               record_gaps=self._record_gaps, max_s=settings.feed.catch_up_max_s,
                               batch=settings.feed.catch_up_batch)
        self._ever_watched: set[str] = set()  # a symbol's first watch in this process is a restart
        self._watched_since: dict[str, int] = {}
        self._unwatched: dict[str, str] = {}
        # Recent history of counters the alert rules judge over a window, never since start.
        keep_s = max(settings.alerts.dropped_window_s, 120.0)
        self._errors = CounterWindow(keep_s, start=0)
        self._spool_bytes = CounterWindow(keep_s)
        self._dropped = CounterWindow(keep_s, start=0)
        self._rejected = CounterWindow(keep_s, start=0)
        self._running = False
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Engine:
        if self._running:
            return self
        feed_settings = self.settings.feed
        redacted = self.settings.redacted()
        # Chained once storage answers; what changed is judged against this instance's previous start then.
        record_start(self.alert_store, "engine_start", self.settings.instance_id, redacted, self.source)
        self.symbols.seed(feed_settings.symbols, feed_settings.depth_symbols)
        self.storage.step()  # migrations, stored symbols and alerts; while storage is down its job retries
        load_calendar()  # a second of pandas under the interpreter lock: before events flow, not in a rule
        if feed_settings.mode == "simulator":
            feed_settings = self._start_simulator()
        elif feed_settings.supervise:  # launched first; the feed's connections retry until it listens
            self.iqconnect = IQConnectSupervisor(feed_settings)
            self.iqconnect.start()
        self.feed = FeedClient(feed_settings, sink=self.ingest)
        self.feed.start()
        self._reconcile_symbols()
        try:
            # Otherwise the writer job builds it once migrations have run; none with writer processes apart.
            if self.storage.ready and self.settings.storage.embedded_writer:
                self._try_build_writer()
        except BusError as exc:
            log.warning("bus unreachable at start; the writer job retries with backoff",
                        extra={"bus": repr(self.bus), "error": str(exc)})
        self._add_jobs()
        self.jobs.start()
        self._running = True
        log.info("engine started", extra={"source": self.source, "bus": repr(self.bus), "store": repr(self.store),
                                          "settings": redacted, "settings_digest": settings_digest(redacted)})
        return self

    def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop the feed, then flush everything downstream so nothing received is lost.

        Everything after the feed shares one deadline (``drain_timeout_s``, default the setting),
        whatever is down: what storage does not take by then stays uncommitted on the bus, what the
        broker does not take goes to the spool, and the next start picks both up.
        """
        if not self._running:
            return
        self._running = False
        timeout_s = self.settings.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        deadline = time.monotonic() + timeout_s

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._stopping.set()
        if self.writer is not None:
            self.writer.stop()  # ends a retry loop waiting for storage (an assignment while it is down)
        self.jobs.shutdown()
        if self.feed is not None:
            self.feed.stop()
        if self.iqconnect is not None:
            self.iqconnect.stop()
        if self.writer is None:
            self.producer.flush(left())
        else:
            self._drain(left())
            self.writer.close(flush_timeout_s=left())
        self.producer.close(left())
        if self.backup is not None:
            self.backup.close()
        self.uptime.close(self.store if self.storage.ready else None)
        try:
            self._persist_outages()
        except StorageError as exc:
            log.warning("feed outage windows not stored at shutdown", extra={"error": str(exc)})
        self.alert_store.audit(process_actor(), "engine_stop", self.settings.instance_id,
                               f"session={self.source} ingested={self._seq}")
        self.storage.close()
        if self.notifier is not None:
            self.notifier.close(timeout_s=min(2.0, max(0.5, left())))
        if self.simulator is not None:
            self.simulator.stop()
        log.info("engine stopped", extra={"source": self.source, "ingested": self._seq})

    def _drain(self, timeout_s: float) -> None:
        """Deliver and store what is in flight: poll the producer and step the writer together until the
        producer has nothing unacknowledged, the writer has read nothing for DRAIN_QUIET_S and has no lag
        left, or the deadline passes.

        Together, because each can wait for the other: a full in-process bus takes the spool's replay
        only as fast as the writer makes room. Quiet for DRAIN_QUIET_S, because three empty polls were
        not enough: a Kafka fetch can take up to its 500 ms wait to bring the last events.
        """
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            self.producer.poll(0)
            if self.writer.step(timeout_s=0.1):
                quiet_since = time.monotonic()
            elif (self.producer.idle() and time.monotonic() - quiet_since >= DRAIN_QUIET_S
                  and self.writer.stats().total_lag == 0):
                break
        self.writer.flush(max(0.0, deadline - time.monotonic()))

    def _start_simulator(self):
        from collectors.iqfeed.simulator import IQFeedSimulator, SimulatorConfig

        feed = self.settings.feed
        universe = list(dict.fromkeys([*feed.symbols, *feed.depth_symbols, *DEMO_UNIVERSE]))
        self.simulator = IQFeedSimulator(SimulatorConfig(
            host="127.0.0.1", level1_port=0, level2_port=0, admin_port=0, lookup_port=0,
            symbols=universe, rate=feed.simulator_rate, seed=feed.simulator_seed, watch_limit=feed.watch_limit,
        )).start()
        sim = self.simulator
        return feed.model_copy(update={
            "host": "127.0.0.1", "level1_port": sim.level1_port, "level2_port": sim.level2_port,
            "admin_port": sim.admin_port, "lookup_port": sim.lookup_port,
        })

    def _try_build_writer(self) -> None:
        if self.writer is None:
            self.writer = build_writer(self.settings, self.bus, self.store)
            if self._stopping.is_set():  # built while stop() ran: its retry loops must see the stop too
                self.writer.stop()

    def _writer_step(self) -> None:
        """One writer step (a loop job repeats it). A bus that is down at start raises here;
        the job runner counts it and backs off while the producer spools, and the writer is
        built once the bus answers. Until storage is migrated (down since the start) there is
        nothing to build it on: the step waits briefly and the events stay on the bus."""
        if not self.storage.wait_migrated(0.2):
            return
        self._try_build_writer()
        self.writer.step(timeout_s=0.05)

    def _producer_step(self) -> None:
        """Serve delivery reports, probes and spool replay every few ms (a loop job)."""
        self.producer.poll(0.005)
        time.sleep(0.005)

    def _add_jobs(self) -> None:
        add = self.jobs.add
        add("producer", self._producer_step, interval_s=1, loop=True)
        if self.settings.storage.embedded_writer:
            add("writer", self._writer_step, interval_s=1, loop=True)
        if self.backup is not None:
            add("backup_rotation", self.backup.rotate_if_due, interval_s=0.25)
            add("backup_retention", self.backup.enforce_retention, interval_s=60)
        add("host_sampler", self.host.sample, interval_s=5)
        add("alerts", self.evaluate_alerts, interval_s=1)
        add("storage", self.storage.step, interval_s=1)
        add("symbols", self._reconcile_symbols, interval_s=2)
        add("outages", self._persist_outages, interval_s=2)
        add("backfill", self._backfill_outages, interval_s=BACKFILL_INTERVAL_S)
        add("uptime", self._track_uptime, interval_s=SAMPLE_INTERVAL_S)
        if self.operator_snapshots is not None:
            add("operator_snapshot", lambda: self.operator_snapshots.run_if_due(self.storage.ready), interval_s=5)
        if self.mirror is not None:
            add("backup_mirror", self.mirror.sync, interval_s=self.settings.backup.mirror_interval_s)

    def _backup_copies(self) -> tuple[OperatorSnapshots | None, BackupMirror | None]:
        """The operator table snapshots (with the backup) and the mirror (when a mirror directory is set)."""
        if self.backup is None:
            return None, None
        backup = self.settings.backup
        directory = self.backup.config.directory
        snapshots = OperatorSnapshots(self.store, snapshot_directory(directory), instance_id=self.settings.instance_id,
                                      interval_s=backup.operator_snapshot_s, keep=backup.operator_snapshot_keep)
        mirror = None
        if backup.mirror_directory is not None:
            mirror = BackupMirror(directory, backup.mirror_directory, retention_ns=self.backup.config.retention_ns)
        return snapshots, mirror

    def _track_uptime(self) -> None:
        """Sample each component's health; store closed minutes when storage answers (kept until then)."""
        self.uptime.sample(component_health(self.status()))
        if self.storage.ready:
            try:
                self.uptime.persist(self.store)
            except StorageError as exc:
                log.warning("uptime minutes not stored; kept for the next try",
                            extra={"unsaved": self.uptime.unsaved, "error": str(exc)})

    # ------------------------------------------------------------------ ingest path

    def ingest(self, events: list[Event]) -> None:
        """Called from feed reader threads: stamp, check, back up and publish, in seq order."""
        if not events:
            return
        with self._ingest_lock:
            seq = self._seq
            for event in events:
                seq += 1
                event.source = self.source
                event.seq = seq
            self._seq = seq
            self.validator.feed(events)
            self.live.update(events)
            if self.backup is not None:
                self.backup.append(events)
            self.producer.publish_many(events)
            self.backfill.recent.add(events, time.time_ns())  # what a backfill must not ingest again

    # ------------------------------------------------------------------ symbols

    def start_symbol(self, symbol: str, *, depth: bool = False, by: str) -> SymbolSpec:
        """Start watching ``symbol``; InvalidSymbol or SymbolLimitReached (nothing stored) when it cannot be."""
        spec = operator_actions.start_symbol(self.symbols, self.alert_store, symbol, depth=depth, by=by,
                                             watch_limit=self.settings.feed.watch_limit)
        self._reconcile_symbols()
        return spec

    def stop_symbol(self, symbol: str, *, by: str) -> SymbolSpec:
        spec = operator_actions.stop_symbol(self.symbols, self.alert_store, symbol, by=by)
        self._reconcile_symbols()
        self.live.forget(spec.symbol)
        return spec

    def _reconcile_symbols(self) -> None:
        """Make the feed's watches match the desired state (in memory; the storage job takes in another
        process's changes), so watches follow the operator while storage is down.

        Stops first, so that a stop always applies and frees room; then starts, in symbol order,
        up to the watch limit. A desired state larger than the limit (another process's, or a limit
        lowered since) is not an error of this job: the symbols beyond it are reported as unwatched.
        """
        if self.feed is None:
            return
        wanted = self.symbols.all()
        level1 = {s.symbol for s in wanted if s.level1}
        depth = {s.symbol for s in wanted if s.depth}
        for symbol in sorted(self.feed.watched() - level1):
            self.feed.unwatch(symbol)
            self._watched_since.pop(symbol, None)
            self.catchup.cancel([symbol])
        for symbol in sorted(self.feed.watched_depth() - depth):
            self.feed.unwatch_depth(symbol)
        unwatched: dict[str, str] = {}
        started: list[str] = []
        for symbol in sorted(level1 - self.feed.watched()):
            try:
                if self.feed.watch(symbol):
                    self._watched_since[symbol] = time.time_ns()
                    started.append(symbol)
            except SymbolLimitReached as exc:
                unwatched[symbol] = str(exc)
        self._catch_up_started(started)
        for symbol in sorted(depth - self.feed.watched_depth()):
            try:
                self.feed.watch_depth(symbol)
            except SymbolLimitReached as exc:
                unwatched.setdefault(symbol, f"depth: {exc}")
        if unwatched.keys() != self._unwatched.keys():
            level = logging.WARNING if unwatched else logging.INFO
            log.log(level, "symbols over the watch limit", extra={
                "unwatched": len(unwatched), "limit": self.settings.feed.watch_limit,
                "sample": ", ".join(sorted(unwatched)[:10])})
        self._unwatched = unwatched

    def _catch_up_started(self, symbols: list[str]) -> None:
        """Ask the catch-up for symbols whose watch just began: "restart" for a symbol's first watch in
        this process (what an earlier process stored is where it resumes), "start" for a later one."""
        if not symbols or not self.settings.feed.catch_up:
            return
        first = [s for s in symbols if s not in self._ever_watched]
        self._ever_watched.update(symbols)
        feed_now = self.feed.feed_time_ns() if self.feed else None
        if first:
            self.catchup.request(first, "restart", feed_now)
        if len(first) < len(symbols):
            self.catchup.request([s for s in symbols if s not in first], "start", feed_now)

    def catch_up(self, symbols: list[str], cause: str = "takeover") -> None:
        """Backfill ``symbols`` from their watermarks: this instance has just started watching them
        (e.g. taken over from a dead instance). Safe to call for symbols whose watch the symbols job
        began: the pending catch-up is kept, renamed by ``cause``. Returns at once; the backfill job runs it."""
        if self.settings.feed.catch_up:
            self.catchup.request([validate_symbol(s.strip()) for s in symbols], cause,
                                 self.feed.feed_time_ns() if self.feed else None)

    # ------------------------------------------------------------------ outages

    def _persist_outages(self) -> None:
        """Store new and changed outage windows; forget those the (bounded) outage log dropped."""
        if self.feed is None or not self.storage.ready:  # kept in the feed's list until storage answers
            return
        windows = self.feed.outages
        persisted = self._persisted_outages
        present = {(w.connection, w.symbol, w.start_ns) for w in windows}
        for key in persisted.keys() - present:
            del persisted[key]
        changed = [w for w in windows if persisted.get((w.connection, w.symbol, w.start_ns), -1) != w.end_ns]
        if not changed:
            return
        self.store.insert_columns("feed_outages", *outage_columns(
            [StoredOutage(self.source, w.connection, w.symbol, w.cause, w.start_ns, w.end_ns) for w in changed],
            time.time_ns()))
        for window in changed:
            persisted[(window.connection, window.symbol, window.start_ns)] = window.end_ns

    # ------------------------------------------------------------------ backfill

    def _backfill_outages(self) -> None:
        """Recover the trades closed Level 1 outage windows missed (see runtime/backfill.py).

        Each list is ingested before the next is computed, so that a trade recovered for
        one window is recognised by an overlapping one.
        """
        if self.feed is None or not self.storage.ready:  # live trades in storage decide what is missing
            return
        for trades in self.backfill.recover(self.feed.outages, self.feed.watched(), time.time_ns(),
                                            self._storage_behind()):
            self.ingest(trades)
        for trades in self.catchup.step(self.feed.feed_time_ns(), self.feed.watched(), self._storage_behind(),
                                        self.writer.progress() if self.writer is not None else None):
            self.ingest(trades)

    def _record_gaps(self, gaps: list[StoredOutage]) -> None:
        """Restart gaps go through the write-behind queue: kept in order while storage is down."""
        self.storage.writes.insert("feed_outages", *outage_columns(gaps, time.time_ns()))

    def _storage_behind(self) -> str:
        """Why storage may lack events ingested long ago (a backfill then waits), or "".

        RecentTrades covers rows on their way to storage for minutes; a spooling bus or
        failing writes can hold rows back for longer.
        """
        spool = self.producer.stats().spool
        if spool.unacked:
            return f"{spool.unacked} events in the spool"
        if self.writer is not None and self.writer.stats().retrying:
            return "storage writes failing"
        return ""

    def _trade_history(self, symbol: str, start_ns: int, end_ns: int) -> list[Trade]:
        assert self.feed is not None, "backfill runs only while the feed exists"
        return self.feed.backfill(symbol, start_ns, end_ns)

    def _stored_trades(self, symbol: str, start_ns: int, end_ns: int) -> list[TradeIdentity]:
        rows = self.store.query(
            f"SELECT ts_ns, total_volume, price, size FROM {self.store.table('trades')} "
            f"WHERE symbol = {sql_string(symbol)} AND ts_ns >= {int(start_ns)} AND ts_ns <= {int(end_ns)}"
        )
        return [(int(ts), int(volume), float(price), int(size)) for ts, volume, price, size in rows]

    # ------------------------------------------------------------------ alerts

    def acknowledge(self, rule: str, subject: str, *, by: str, note: str = "") -> Alert:
        return operator_actions.acknowledge(self.alert_book, self.alert_store, self.notifier, rule, subject,
                                            by=by, note=note)

    def observe(self, now_ns: int | None = None) -> Observation:
        """The snapshot the alert rules judge; rates and recent changes come from counter windows."""
        now_ns = now_ns or time.time_ns()
        cfg = self.settings.alerts
        status = self.status()
        live = self.live.snapshot()
        overrides = {s.symbol: s.silent_after_s for s in self.symbols.all() if s.silent_after_s > 0}
        watched = self.feed.watched() if self.feed else frozenset()
        heartbeat_age = None
        feed_connected = True
        dtn = None
        iqconnect = status.iqconnect
        if status.feed is not None:
            last = status.feed.level1.last_heartbeat
            heartbeat_age = None if last is None else time.monotonic() - last
            feed_connected = status.feed.level1.connected
            dtn = status.feed.dtn_connected
        self._record_counters(status)
        live_window = self.producer.latency.window(cfg.latency_window_s)
        fresh_window = self.writer.latency.window(cfg.latency_window_s) if self.writer else None
        host = status.host
        return Observation(
            now_ns=now_ns,
            session=session_at(now_ns).value,
            session_start_ns=session_start_ns(now_ns),
            watched={s: (live[s].last_event_recv_ns if s in live else None) for s in watched},
            watched_since_ns=dict(self._watched_since),
            unwatched=tuple(sorted(status.unwatched)),
            silent_override_s=overrides,
            heartbeat_age_s=heartbeat_age,
            feed_connected=feed_connected,
            dtn_connected=dtn,
            iqconnect_problem=iqconnect.problem if iqconnect else "",
            iqconnect_restarts=iqconnect.restarts if iqconnect else 0,
            bus_reachable=status.producer.breaker.state is BreakerState.CLOSED,
            spool_bytes=status.producer.spool.bytes_used,
            spool_growth_bytes_per_s=self._spool_bytes.rate_per_s(30),
            dropped_recent=int(self._dropped.change(cfg.dropped_window_s)),
            rejected_recent=int(self._rejected.change(cfg.dropped_window_s)),
            spool_write_error=status.producer.spool.last_error if status.producer.spool.failing else "",
            storage_write_failures_recent=status.writer.write_failures if status.writer and status.writer.retrying else 0,
            consumer_lag=status.writer.total_lag if status.writer else 0,
            errors_per_min=self._errors.rate_per_s(60) * 60,
            disk_free_pct=host.disk_free_pct if host else 100.0,
            rss_slope_bytes_per_h=rss_growth_after_warmup(
                self.host.history(), started_ns=self.started_ns, now_ns=now_ns,
                warmup_s=cfg.memory_warmup_s, window_s=cfg.memory_window_s),
            live_p99_ms=_ms(live_window.percentile(0.99)),
            live_samples=live_window.count,
            fresh_p99_ms=_ms(fresh_window.percentile(0.99)) if fresh_window else None,
            fresh_samples=fresh_window.count if fresh_window else 0,
            backup_degraded=status.backup.last_error if status.backup and status.backup.state == "degraded" else "",
            failing_jobs={j.name: j.last_error for j in status.jobs if j.consecutive_failures >= 3},
            storage_down_since_ns=None if status.storage.ready else (status.storage.down_since_ns or self.started_ns),
            storage_error=status.storage.last_error,
            storage_pending_writes=status.storage.pending_writes,
            backup_mirror_error=status.mirror.last_error if status.mirror else "",
            operator_snapshot_error=status.operator_snapshots.last_error if status.operator_snapshots else "",
        )

    def _record_counters(self, status: EngineStatus) -> None:
        # malformed lines, and lines our own reader code failed on (a bug: logged with its traceback)
        self._errors.record(status.feed_counters.get("protocol_errors", 0) + status.feed_counters.get("reader_errors", 0))
        self._spool_bytes.record(status.producer.spool.bytes_used)
        self._dropped.record(status.producer.dropped)
        self._rejected.record(status.producer.rejected)

    def evaluate_alerts(self) -> list[Alert]:
        changed = self.alert_book.evaluate(evaluate_rules(self.observe(), self.settings.alerts), time.time_ns())
        self.alert_store.save(changed)
        for alert in changed:
            level = logging.WARNING if alert.state == "firing" else logging.INFO
            log.log(level, "alert %s", alert.state, extra={"rule": alert.rule, "subject": alert.subject,
                                                          "summary": alert.summary, "severity": alert.severity})
        if self.notifier is not None:
            self.notifier.notify(changed)  # queues only; delivery runs on the notifier's thread
        return changed

    # ------------------------------------------------------------------ status

    def status(self) -> EngineStatus:
        history = self.host.history()
        sim = self.simulator
        return EngineStatus(
            source=self.source,
            started_ns=self.started_ns,
            feed=self.feed.state if self.feed else None,
            iqconnect=self.iqconnect.state if self.iqconnect else None,
            feed_counters=self.feed.counters if self.feed else {},
            outages=self.feed.outages if self.feed else [],
            rejected_symbols=self.feed.rejected_symbols() if self.feed else {},
            unwatched=dict(self._unwatched),
            producer=self.producer.stats(),
            writer=self.writer.stats() if self.writer else None,
            backup=self.backup.health if self.backup else None,
            validation=self.validator.snapshot(),
            jobs=self.jobs.status(),
            host=history[-1] if history else None,
            ingested=self._seq,
            simulator_ports={} if sim is None else {
                "level1": sim.level1_port, "level2": sim.level2_port, "admin": sim.admin_port, "lookup": sim.lookup_port,
            },
            notifications=self.notifier.stats() if self.notifier else None,
            backfill=self.backfill.stats(),
            catch_up=self.catchup.stats(),
            bus_stats=self.bus.stats(),
            store_stats=self.store.stats(),
            storage=self.storage.state(),
            uptime=self.uptime.report(),
            mirror=self.mirror.health if self.mirror else None,
            operator_snapshots=self.operator_snapshots.health if self.operator_snapshots else None,
        )
