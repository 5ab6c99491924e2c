"""EngineStatus: one moment of a whole TickOps process, as the dashboard, metrics, health and alert
rules read it. Its own module so that those readers depend on this snapshot, not on the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.notify.notifier import NotifierStats
from bus.producer import ProducerStats
from collectors.iqfeed.client import FeedState
from collectors.iqfeed.connections import OutageWindow
from collectors.iqfeed.iqconnect import SupervisorState
from monitoring.host import HostSample
from monitoring.uptime import UptimeReport
from runtime.backfill import BackfillStats
from runtime.catchup import CatchUpStats
from runtime.fleet_status import FleetView
from runtime.jobs import JobStatus
from runtime.redundancy import RedundancyStats
from runtime.validation import ValidationSnapshot
from storage.availability import StorageState
from storage.backup import BackupHealth
from storage.mirror import MirrorHealth
from storage.operator_backup import SnapshotHealth
from storage.writer import WriterStats


@dataclass(frozen=True)
class EngineStatus:
    """Everything the dashboard, metrics and alert rules read, taken at one moment."""

    source: str
    started_ns: int
    feed: FeedState | None
    feed_counters: dict[str, int]
    outages: list[OutageWindow]
    rejected_symbols: dict[str, str]
    producer: ProducerStats
    writer: WriterStats | None
    backup: BackupHealth | None
    validation: ValidationSnapshot
    jobs: list[JobStatus]
    host: HostSample | None
    ingested: int
    simulator_ports: dict[str, int] = field(default_factory=dict)
    notifications: NotifierStats | None = None  # None when no notification channel is configured
    backfill: BackfillStats | None = None
    catch_up: CatchUpStats | None = None  # backfill of newly watched symbols from their watermark
    bus_stats: dict[str, int] = field(default_factory=dict)  # the bus's own bounds (in-process bus memory)
    store_stats: dict[str, int] = field(default_factory=dict)  # the store's own resources (connection pool)
    unwatched: dict[str, str] = field(default_factory=dict)  # wanted but not watched (over feed.watch_limit) -> why
    watched: frozenset[str] = frozenset()  # Level 1 symbols the feed watches now
    fleet: FleetView | None = None  # with the Kafka bus: this instance's membership and the fleet's statuses
    storage: StorageState = StorageState()
    iqconnect: SupervisorState | None = None  # None unless the engine launches and supervises IQConnect
    uptime: UptimeReport | None = None  # availability per component (None before the first sample)
    mirror: MirrorHealth | None = None  # None without backup.mirror_directory
    operator_snapshots: SnapshotHealth | None = None  # None with the backup disabled
    redundancy: RedundancyStats | None = None  # None unless fleet.standby_critical
