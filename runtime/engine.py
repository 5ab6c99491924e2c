"""The engine: one object that owns the whole pipeline of a TickOps process.

    FeedClient threads ──sink──► Engine.ingest: stamp source+seq ─┬─► Validator, LiveState
                                                                  ├─► BackupWriter (zstd segments)
                                                                  └─► EventProducer ──► bus
    JobRunner (APScheduler): producer poll loop │ writer loop (bus ──► store) │ backup rotation
                             retention │ host sample │ alert rules │ symbol reconcile │ outages
                             │ backfill of closed Level 1 outages (lookup HTT, runtime/backfill.py)
                             │ catch-up of newly watched symbols from their watermark (runtime/catchup.py)
                             │ storage link (migrations, durable state, catch-up: runtime/storage_link.py)
                             │ end-of-day completeness (runtime/completeness/)

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
from dataclasses import replace

from alerts.lifecycle import Alert, AlertBook
from alerts.notify import Notifier
from alerts.rules import Observation, evaluate_rules
from alerts.settings_audit import record_start, settings_digest
from bus.base import Bus, BusError, TopicPartition
from bus.breaker import BreakerState
from bus.factory import build_producer, open_bus
from bus.producer import EventProducer
from bus.security import librdkafka_security
from bus.topics import TopicSet
from collectors.iqfeed.client import FeedClient
from collectors.iqfeed.iqconnect import IQConnectSupervisor
from collectors.iqfeed.protocol import SymbolLimitReached, validate_symbol
from collectors.market_hours import load_calendar, session_at, session_start_ns
from config import Settings
from events import Event, Trade
from monitoring.counter_window import CounterWindow
from monitoring.host import HostSampler, rss_growth_after_warmup
from monitoring.http import Health
from monitoring.uptime import COMPONENTS
from runtime import operator_actions
from runtime.backfill import Backfiller, TradeIdentity
from runtime.catchup import BacklogGate, CatchUp
from runtime.capacity import WatchPlan, plan_watches
from runtime.completeness.checker import DayChecker
from runtime.completeness.job import INTERVAL_S as COMPLETENESS_INTERVAL_S
from runtime.completeness.job import CompletenessJob, tolerances
from runtime.completeness.volumes import FeedVolumes
from runtime.fleet import Fleet
from runtime.fleet_alerts import scope_findings, takes_in
from runtime.fleet_departures import DepartureSweep
from runtime.fleet_status import FleetView, InstanceState, InstanceStatus, describe_instance
from runtime.health import HealthCheck
from runtime.jobs import JobRunner
from runtime.live_state import LiveState
from runtime.redundancy import Redundancy
from runtime.rollout_health import engine_health
from runtime.rollout_runner import RolloutRunner
from runtime.standby import add_standby, standby_specs
from runtime.status import EngineStatus
from runtime.storage_link import StorageLink
from runtime.stored_progress import StoredProgress
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
from storage.writer import Writer, WriterProgress, WriterStats, build_writer
from storage.writer_health import assess_writer
from storage.writer_status import WriterState, WriterStatusReporter

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
        # With the Kafka bus, the desired symbols live on the assignment topic and the collector group shares
        # them out (runtime/fleet.py, docs/HA.md); with the in-process bus this process watches them all.
        self.fleet: Fleet | None = None
        if settings.bus.kind == "kafka" and settings.fleet.enabled:
            self.fleet = Fleet(settings, stored=self.symbols.all, audit=self._audit_fleet)
            self.storage.take_in_alerts(self._takes_in)
        # Hot standby of critical symbols and the consistency check between the two watchers (docs/HA.md).
        self.redundancy = Redundancy(settings) if self.fleet is not None and settings.fleet.standby_critical else None
        self._rules_owner = self.fleet is None
        # As rules owner: resolve the alerts of collectors that left the fleet (runtime/fleet_departures.py).
        self._departures = (DepartureSweep(self.alert_store, settings.instance_id, actor=process_actor(),
                                           notify=self.notifier.notify if self.notifier else lambda alerts: None)
                            if self.fleet is not None else None)
        # The embedded writer's status for the Fleet page (storage/writer_status.py); writer processes send their own.
        self._writer_status = (WriterStatusReporter(settings.instance_id, settings.fleet.status_interval_s,
                                                    embedded=True)
                               if settings.storage.embedded_writer else None)
        self._stored_progress = (StoredProgress(self.store, TopicSet(settings.kafka.topic_prefix),
                                                settings.kafka.bootstrap_servers,
                                                security=librdkafka_security(settings.kafka))
                                 if settings.bus.kind == "kafka" and not settings.storage.embedded_writer else None)
        self._health = HealthCheck()
        self._reconcile_lock = threading.Lock()
        self.jobs = JobRunner()
        self.rollout: RolloutRunner | None = None  # only in the process the dashboard holds: serve_rollouts()
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
        self.feed_volumes = FeedVolumes()
        self.completeness = CompletenessJob(settings, self.store, checker=self._day_checker,
                                            wanted=self._completeness_symbols, behind=self._completeness_behind,
                                            last_trade_ns=self.feed_volumes.last_trade_ns)
        self._day_gate = BacklogGate(TopicSet(settings.kafka.topic_prefix).trades)
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
        if self.fleet is not None:
            self.fleet.start()
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
        if self.fleet is not None:
            self.fleet.leave()  # the others take this instance's symbols over while its feed still runs
        if self.feed is not None:
            self.feed.stop()
        if self.fleet is not None:
            self._report_writer("stopped")
            self.fleet.close(self._instance_status("stopped"), timeout_s=min(2.0, left()))
        if self.redundancy is not None:
            self.redundancy.close(timeout_s=min(2.0, left()))
        if self._stored_progress is not None:
            self._stored_progress.close()
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
        if self.fleet is not None:
            add("fleet", self._fleet_step, interval_s=1, loop=True)
        if self._departures is not None:
            add("fleet_departures", self._sweep_departures, interval_s=self.settings.fleet.status_interval_s)
        if self.redundancy is not None:
            add("consistency", lambda: self.redundancy.step(self.feed.feed_time_ns() if self.feed else None,
                                                            rules_owner=self._rules_owner), interval_s=1)
        if self.backup is not None:
            add("backup_rotation", self.backup.rotate_if_due, interval_s=0.25)
            add("backup_retention", self.backup.enforce_retention, interval_s=60)
        add("host_sampler", self.host.sample, interval_s=5)
        add("alerts", self.evaluate_alerts, interval_s=1)
        add("storage", self.storage.step, interval_s=1)
        add("symbols", self._reconcile_symbols, interval_s=2)
        add("outages", self._persist_outages, interval_s=2)
        add("backfill", self._backfill_outages, interval_s=BACKFILL_INTERVAL_S)
        if self.completeness.enabled:
            add("completeness", self.completeness.run, interval_s=COMPLETENESS_INTERVAL_S)
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
            published = events
            if self.redundancy is not None:  # a standby symbol's quotes, depth and status are its owner's to store
                self.redundancy.record(events)
                published = self.redundancy.publishable(events)
            if self.backup is not None:
                self.backup.append(published)
            self.producer.publish_many(published)
            self.backfill.recent.add(events, time.time_ns())  # what a backfill must not ingest again
            self.feed_volumes.record(events)  # the day's Total Volume, for the end-of-day check

    # ------------------------------------------------------------------ symbols

    def start_symbol(self, symbol: str, *, depth: bool = False, critical: bool = False, by: str) -> SymbolSpec:
        """Start watching ``symbol``; InvalidSymbol or SymbolLimitReached (nothing stored) when it cannot be;
        in a fleet BusUnavailable when Kafka did not take the change (runtime/operator_actions.py)."""
        spec = operator_actions.start_symbol(self.symbols, self.alert_store, symbol, depth=depth, critical=critical,
                                             by=by, watch_limit=self.settings.feed.watch_limit, fleet=self.fleet)
        self._reconcile_symbols()
        return spec

    def stop_symbol(self, symbol: str, *, by: str) -> SymbolSpec:
        spec = operator_actions.stop_symbol(self.symbols, self.alert_store, symbol, by=by, fleet=self.fleet)
        self._reconcile_symbols()
        self.live.forget(spec.symbol)
        return spec

    def desired_symbols(self) -> list[SymbolSpec]:
        """The whole desired set: the assignment topic's in a fleet, else the stored one (from memory)."""
        return self.fleet.desired() if self.fleet is not None else self.symbols.all()

    def serve_rollouts(self) -> RolloutRunner:
        """Run the dashboard's staged rollouts here (and take up the one the previous process left unfinished,
        runtime/rollout_runner.py). Only the process the dashboard holds does: every headless collector of a
        fleet would otherwise take up the same stored rollout."""
        if self.rollout is None:
            self.rollout = RolloutRunner.serving(self, engine_health)
            self.jobs.add("rollout", self.rollout.step, interval_s=1)
        return self.rollout

    def _wanted_specs(self) -> list[SymbolSpec]:
        """What this instance should watch: its share of the fleet's desired set, or all of it."""
        return self.fleet.wanted() if self.fleet is not None else self.symbols.all()

    def _reconcile_symbols(self) -> None:
        """Make the feed's watches match the desired state (in memory; the storage job takes in another
        process's changes, the fleet job this instance's share), so watches follow the operator while
        storage is down.

        Stops first, so that a stop always applies and frees room; then starts up to the watch limit,
        critical symbols first (runtime/capacity.py). A desired state larger than the limit (a fleet share,
        another process's, or a limit lowered since) is not an error of this job: the symbols beyond it
        are reported as unwatched.
        """
        if self.feed is None:
            return
        with self._reconcile_lock:
            wanted = self._wanted_specs()
            plan = plan_watches(wanted, self.feed.watched(), self.settings.feed.watch_limit)
            plan = self._with_standby(plan, wanted)
            chosen = set(plan.watch)
            depth = {s.symbol for s in wanted if s.depth}
            for symbol in sorted(self.feed.watched() - chosen):
                self.feed.unwatch(symbol)
                self._watched_since.pop(symbol, None)
                self.catchup.cancel([symbol])
            for symbol in sorted(self.feed.watched_depth() - depth):
                self.feed.unwatch_depth(symbol)
            unwatched = dict(plan.over_limit)
            watched = self.feed.watched()
            started: list[str] = []
            # Taken before the watches go out: an event answering a watch must count as after it, or the
            # catch-up would take it for the last one before the gap (and its watermark).
            watch_ns, feed_now = time.time_ns(), self.feed.feed_time_ns()
            for symbol in (s for s in plan.watch if s not in watched):
                try:
                    if self.feed.watch(symbol):
                        self._watched_since[symbol] = time.time_ns()
                        started.append(symbol)
                except SymbolLimitReached as exc:
                    unwatched[symbol] = str(exc)
            standby = self.redundancy.standby if self.redundancy is not None else frozenset()
            self._catch_up_started([s for s in started if s not in standby], watch_ns, feed_now)  # owners catch up
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

    # ------------------------------------------------------------------ fleet

    def _with_standby(self, plan: WatchPlan, wanted: list[SymbolSpec]) -> WatchPlan:
        """This instance's plan plus the critical symbols it stands by for (runtime/standby.py), in the room
        its limit leaves; tells the redundancy which watched symbols are critical and which only standby."""
        if self.redundancy is None:
            return plan
        standby = standby_specs(self.settings.instance_id, self.fleet.desired(), [s.symbol for s in wanted],
                                self.fleet.view(), self.redundancy.standby)
        both = add_standby(plan, standby, self.settings.feed.watch_limit)
        critical = {s.symbol for s in wanted if s.critical} | both.standby
        self.redundancy.watching(critical & set(both.plan.watch), both.standby, both.unfitted)
        return both.plan

    def _fleet_step(self) -> None:
        """Serve the collector group (a loop job): watch this instance's share as soon as it changes, and
        publish the status the Fleet page and the other instances read."""
        assert self.fleet is not None
        changed = self.fleet.poll()
        if self.fleet.came_back():
            self._reassert_alerts()
        if changed and self.feed is not None:
            before = self.feed.watched()
            self._reconcile_symbols()  # asks a catch-up for every new watch
            taken = self.fleet.taken_over(self.feed.watched() - before)
            if taken:
                self.catch_up(taken, "takeover")  # a dead or departed instance's symbols: their gap is named so
        owner = self.fleet.rules_owner
        if owner != self._rules_owner:
            self._rules_owner = owner
            log.info("fleet-wide alert rules %s", "taken over" if owner else "handed over",
                     extra={"instance": self.settings.instance_id})
            self.storage.take_in_alerts(self._takes_in)  # the fleet-wide alerts a previous owner left
            if owner and self._departures is not None:
                self._departures.forget()  # the previous owner may have died before sweeping a departure
        self.fleet.publish(lambda: self._instance_status("running"), force=changed)
        self._report_writer("running")

    def _reassert_alerts(self) -> None:
        """Back in the group after Kafka was unreachable: meanwhile the rules owner may have taken this
        instance for departed and resolved its alerts in storage. Store those still active here again, newer
        than that resolution, so the dashboards show them; the book itself is unchanged (nothing re-notified)."""
        now = time.time_ns()
        own = [replace(alert, updated_ns=now) for alert in self.alert_book.active()
               if takes_in(alert, self.settings.instance_id, rules_owner=False)]
        self.alert_store.save(own)
        if own:
            log.info("own active alerts stored again after rejoining the fleet",
                     extra={"instance": self.settings.instance_id, "alerts": len(own)})

    def _sweep_departures(self) -> None:
        if self._rules_owner and self.fleet is not None and self._departures is not None:
            self._departures.sweep(self.fleet.view())

    def _report_writer(self, state: WriterState) -> None:
        """The embedded writer's status on the fleet status channel, when due (and at once when it stops)."""
        if self.fleet is not None and self.fleet.partitions and self.writer is not None and self._writer_status:
            self._writer_status.report(self._writer_sample, self.fleet.send_status, state=state,
                                       force=state == "stopped")

    def _writer_sample(self) -> tuple[Health, WriterStats | None, list[TopicPartition]]:
        stats = self.writer.stats() if self.writer is not None else None
        return (assess_writer("writing" if stats else "waiting for storage", "", stats), stats,
                list(self.writer.progress().next) if self.writer is not None else [])

    def fleet_view(self) -> FleetView:
        """The fleet as this process sees it; embedded (no fleet) it is this one instance, as the Fleet page shows."""
        if self.fleet is not None:
            return self.fleet.view()
        wanted = sum(1 for spec in self.symbols.all() if spec.level1)
        writers = (self._writer_status.describe(self._writer_sample),) if self._writer_status is not None else ()
        return FleetView(None, (self._instance_status("running"),), wanted, time.time_ns(),
                         self.settings.fleet.stale_after_s, writers=writers)

    def _instance_status(self, state: InstanceState) -> InstanceStatus:
        status = self.status()
        return describe_instance(self.settings.instance_id, status, self._health(status),
                                 watch_limit=self.settings.feed.watch_limit, state=state, now_ns=time.time_ns())

    def _takes_in(self, alert: Alert) -> bool:
        return takes_in(alert, self.settings.instance_id, rules_owner=self._rules_owner)

    def _audit_fleet(self, action: str, details: str) -> None:
        """What the fleet did on its own, in this instance's chain, like its start and stop."""
        self.alert_store.audit(process_actor(), action, self.settings.instance_id, details)

    def _catch_up_started(self, symbols: list[str], watch_ns: int, feed_now: int | None) -> None:
        """Ask the catch-up for symbols whose watch just began: "restart" for a symbol's first watch in
        this process (what an earlier process stored is where it resumes), "start" for a later one."""
        if not symbols or not self.settings.feed.catch_up:
            return
        first = [s for s in symbols if s not in self._ever_watched]
        self._ever_watched.update(symbols)
        if first:
            self.catchup.request(first, "restart", feed_now, watched_ns=watch_ns)
        if len(first) < len(symbols):
            self.catchup.request([s for s in symbols if s not in first], "start", feed_now, watched_ns=watch_ns)

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
                                        self._writer_progress()):
            self.ingest(trades)

    def _writer_progress(self) -> WriterProgress | None:
        """Where storage stands on the bus, for the catch-up's gate: the in-process writer's word; with the
        writers apart, storage's positions against the broker's ends (runtime/stored_progress.py), asked
        only while a catch-up waits."""
        if self.writer is not None:
            return self.writer.progress()
        if self._stored_progress is None or not self.catchup.stats().symbols_pending:
            return None
        return self._stored_progress()

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

    def _day_checker(self) -> DayChecker | None:
        """The end-of-day check, recovering through ingest like an outage backfill (None until the feed runs)."""
        if self.feed is None or not self.storage.ready:
            return None
        return DayChecker(self.store, self.feed.lookup, deliver=self.ingest, checked_by=self.source,
                          tolerances=tolerances(self.settings), live_volume=self.feed_volumes.volume)

    def _completeness_behind(self) -> str:
        """Why the end-of-day check waits: catch-ups pending, or trades on the bus storage does not hold yet.
        The gate re-arms after each pass it lets through, so every check waits for what is on the bus then."""
        pending = self.catchup.stats().symbols_pending
        if pending:
            return f"{pending} newly watched symbols still catching up"
        reason = self._day_gate.reason(self._storage_behind(), self.writer.progress() if self.writer else None)
        if not reason:
            self._day_gate.reset()
        return reason

    def _completeness_symbols(self) -> list[SymbolSpec]:
        """The wanted symbols this process watches (all wanted ones before the feed runs)."""
        watched = self.feed.watched() if self.feed else None
        return [s for s in self.symbols.all() if s.level1 and (watched is None or s.symbol in watched)]

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
        overrides = {s.symbol: s.silent_after_s for s in self._wanted_specs() if s.silent_after_s > 0}
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
        capacity = status.fleet.capacity() if status.fleet is not None and self._rules_owner else None
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
            incomplete_days=self.completeness.incomplete_days(now_ns),
            backup_mirror_error=status.mirror.last_error if status.mirror else "",
            operator_snapshot_error=status.operator_snapshots.last_error if status.operator_snapshots else "",
            fleet_instances=capacity.instances if capacity else 0,
            fleet_wanted=capacity.wanted if capacity else 0,
            fleet_capacity=capacity.capacity if capacity else 0,
            fleet_capacity_after_loss=capacity.after_one_loss if capacity else None,
            inconsistent_feeds=self.redundancy.inconsistent() if self.redundancy is not None else {},
        )

    def _record_counters(self, status: EngineStatus) -> None:
        # malformed lines, and lines our own reader code failed on (a bug: logged with its traceback)
        self._errors.record(status.feed_counters.get("protocol_errors", 0) + status.feed_counters.get("reader_errors", 0))
        self._spool_bytes.record(status.producer.spool.bytes_used)
        self._dropped.record(status.producer.dropped)
        self._rejected.record(status.producer.rejected)

    def evaluate_alerts(self) -> list[Alert]:
        findings = evaluate_rules(self.observe(), self.settings.alerts)
        if self.fleet is not None:
            findings = scope_findings(findings, self.settings.instance_id, rules_owner=self._rules_owner)
        changed = self.alert_book.evaluate(findings, time.time_ns())
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
            watched=self.feed.watched() if self.feed else frozenset(),
            fleet=self.fleet.view() if self.fleet is not None else None,
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
            redundancy=self.redundancy.stats() if self.redundancy is not None else None,
        )
