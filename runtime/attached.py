"""The dashboard's runtime when it is attached (``dashboard.attach = true``): no feed, bus or writer of its own.

Collectors (``python -m runtime run``) and writers (``python -m storage.writer``) run as their own
services; the dashboard only looks and acts:

    storage ──storage job (1 s)──► desired symbols, migrations      (StorageLink, as in the engine)
            ──alerts job (2 s)───► stored active alerts (the collectors' rule verdicts, acknowledgements)
            ──activity───────────► rows stored lately per table and source (storage/activity.py)
    each process's /healthz ──health_probes job (2 s)──► ok / degraded / down / unreachable, with details
    operator actions ──► storage (symbols, acknowledgements, audit log): the collectors' storage job
                         takes the symbols in within a second (runtime/storage_link.py)

It offers what the pages read of an :class:`runtime.engine.Engine` that holds without a pipeline
(settings, symbols, alerts, host sampler and jobs of this process); pages that need a pipeline in
this process (live quotes, latency histograms, validation) are not offered attached. The fleet
status channel of issue 11 is meant to replace the /healthz polling with each instance's full status.
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
from runtime.jobs import JobRunner, JobStatus
from runtime.storage_link import StorageLink
from runtime.symbols import SymbolSpec
from storage.activity import StoredActivity, recent_activity
from storage.availability import StorageState
from storage.factory import open_store
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

HEALTH_POLL_S = 2.0
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
        self.feed = None  # no feed in this process: pages that need one are not offered attached
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

    def start_symbol(self, symbol: str, *, depth: bool = False, by: str) -> SymbolSpec:
        return operator_actions.start_symbol(self.symbols, self.alert_store, symbol, depth=depth, by=by,
                                             watch_limit=self.settings.feed.watch_limit)

    def stop_symbol(self, symbol: str, *, by: str) -> SymbolSpec:
        return operator_actions.stop_symbol(self.symbols, self.alert_store, symbol, by=by)

    def acknowledge(self, rule: str, subject: str, *, by: str, note: str = "") -> Alert:
        return operator_actions.acknowledge(self.alert_book, self.alert_store, self.notifier, rule, subject,
                                            by=by, note=note)
