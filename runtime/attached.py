"""The dashboard's runtime when it is attached (``dashboard.attach = true``): no feed, bus or writer of its own.

Collectors (``python -m runtime run``) and writers (``python -m storage.writer``) run as their own
services; the dashboard only looks and acts:

    storage ──storage job (1 s)──► desired symbols, migrations      (StorageLink, as in the engine)
            ──alerts job (2 s)───► stored active alerts (the collectors' rule verdicts, acknowledgements)
            ──activity───────────► rows stored lately per table and source (storage/activity.py)
    each process's /healthz ──health_probes job (2 s)──► ok / degraded / down / unreachable, with details
    operator actions ──► storage (symbols, acknowledgements, audit log): the collectors' storage job
                         takes the symbols in within a second (runtime/storage_link.py)
    with the Kafka bus (a collector fleet, docs/HA.md) ──fleet job (0.5 s)──► FleetControl: symbol
                         changes go to the assignment topic first, and the Fleet page reads every
                         collector's status from the fleet status topic

It offers what the pages read of an :class:`runtime.engine.Engine` that holds without a pipeline
(settings, symbols, alerts, host sampler and jobs of this process); pages that need a pipeline in
this process (live quotes, latency histograms, validation) are not offered attached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from alerts.lifecycle import Alert, AlertBook
from alerts.notify import Notifier
from alerts.settings_audit import record_start
from config import Settings
from monitoring.health_probe import HealthProbes, ProbeResult
from monitoring.host import HostSampler
from runtime import operator_actions
from runtime.fleet import FleetControl
from runtime.fleet_status import FleetView
from runtime.jobs import JobRunner, JobStatus
from runtime.rollout_health import attached_health
from runtime.rollout_runner import RolloutRunner
from runtime.storage_link import StorageLink
from runtime.symbols import SymbolSpec
from storage.activity import StoredActivity, recent_activity
from storage.availability import StorageState
from storage.factory import open_store
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

HEALTH_POLL_S = 2.0
FLEET_POLL_S = 0.5
ALERTS_REFRESH_S = 2.0


@dataclass(frozen=True)
class AttachedStatus:
    """One moment of what an attached dashboard knows."""

    source: str
    started_ns: int
    storage: StorageState
    processes: list[ProbeResult] = field(default_factory=list)
    jobs: list[JobStatus] = field(default_factory=list)


class AttachedRuntime:
    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.started_ns = time.time_ns()
        self.source = f"dashboard:{settings.instance_id}"
        self.store = store or open_store(settings)
        # Its own audit chain: a collector may run under the same instance id.
        self.storage = StorageLink.from_settings(self.store, settings, audit_source=self.source)
        self.symbols = self.storage.symbols
        self.alert_store = self.storage.alert_store
        self.alert_book = AlertBook()  # replaced by the stored active alerts every ALERTS_REFRESH_S
        self.notifier = Notifier.from_settings(settings)  # acknowledgements made here are notified from here
        self.host = HostSampler(settings.data_dir)
        self.probes = HealthProbes(settings.dashboard.process_endpoints)
        self.jobs = JobRunner()
        self.rollout: RolloutRunner | None = None  # serve_rollouts(), as the engine's
        self.feed = None  # no feed in this process: pages that need one are not offered attached
        self.fleet: FleetControl | None = None  # with the Kafka bus: the desired set and the collectors' statuses
        if settings.bus.kind == "kafka" and settings.fleet.enabled:
            self.fleet = FleetControl(settings, stored=self.symbols.all)
        self._running = False

    def start(self) -> AttachedRuntime:
        if self._running:
            return self
        # The operators and their roles live in this process's settings: what changed is on record here.
        record_start(self.alert_store, "dashboard_start", self.source, self.settings.redacted(), self.source)
        self.storage.step()
        self._refresh_alerts()
        add = self.jobs.add
        add("storage", self.storage.step, interval_s=1)
        add("alerts", self._refresh_alerts, interval_s=ALERTS_REFRESH_S)
        add("health_probes", self.probes.poll, interval_s=HEALTH_POLL_S)
        add("host_sampler", self.host.sample, interval_s=5)
        if self.fleet is not None:
            add("fleet", self.fleet.poll, interval_s=FLEET_POLL_S)
        self.jobs.start()
        self._running = True
        log.info("dashboard attached", extra={"source": self.source, "store": repr(self.store),
                                              "endpoints": ", ".join(self.settings.dashboard.process_endpoints)})
        return self

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self.jobs.shutdown()
        if self.fleet is not None:
            self.fleet.close()
        self.storage.close()
        if self.notifier is not None:
            self.notifier.close()
        self.store.close()

    def _refresh_alerts(self) -> None:
        """The alerts the collectors stored; while storage is down the last ones stay (the banner says so)."""
        if not self.storage.ready:
            return
        try:
            self.alert_book = AlertBook(self.alert_store.active())
        except StorageError as exc:
            log.debug("stored alerts not read", extra={"error": str(exc)})

    def status(self) -> AttachedStatus:
        return AttachedStatus(self.source, self.started_ns, self.storage.state(), self.probes.results(),
                              self.jobs.status())

    def stored_activity(self, window_s: float = 300.0) -> list[StoredActivity]:
        """Rows stored in the last ``window_s`` per table and source; raises StorageError while storage is down."""
        return recent_activity(self.store, time.time_ns() - int(window_s * 1e9))

    # ------------------------------------------------------------------ operator actions

    def start_symbol(self, symbol: str, *, depth: bool = False, critical: bool = False, by: str) -> SymbolSpec:
        return operator_actions.start_symbol(self.symbols, self.alert_store, symbol, depth=depth, critical=critical,
                                             by=by, watch_limit=self.settings.feed.watch_limit, fleet=self.fleet)

    def stop_symbol(self, symbol: str, *, by: str) -> SymbolSpec:
        return operator_actions.stop_symbol(self.symbols, self.alert_store, symbol, by=by, fleet=self.fleet)

    def desired_symbols(self) -> list[SymbolSpec]:
        """The whole desired set: the assignment topic's in a fleet, else the stored one."""
        return self.fleet.desired() if self.fleet is not None else self.symbols.all()

    def serve_rollouts(self) -> RolloutRunner:
        """Run the staged rollouts from this dashboard, and take up one a previous dashboard left unfinished."""
        if self.rollout is None:
            self.rollout = RolloutRunner.serving(self, attached_health)
            self.jobs.add("rollout", self.rollout.step, interval_s=1)
        return self.rollout

    def fleet_view(self) -> FleetView:
        """Every collector's latest status (none known without the fleet status channel: bus not Kafka)."""
        if self.fleet is not None:
            return self.fleet.view()
        wanted = sum(1 for spec in self.symbols.all() if spec.level1)
        return FleetView(None, (), wanted, time.time_ns(), self.settings.fleet.stale_after_s)

    def acknowledge(self, rule: str, subject: str, *, by: str, note: str = "") -> Alert:
        return operator_actions.acknowledge(self.alert_book, self.alert_store, self.notifier, rule, subject,
                                            by=by, note=note)
