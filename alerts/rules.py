"""Alert rules: pure functions from one :class:`Observation` of the system to findings.

The engine fills an Observation from its components once a second; every rule reads
only that snapshot, so rules are tested with plain values and no running pipeline.
Thresholds come from ``AlertSettings``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.lifecycle import Finding
from config import AlertSettings


@dataclass(frozen=True)
class Observation:
    now_ns: int
    # The market session running now ("closed", "pre", "regular", "post": collectors.market_hours.Session)
    # and when it began (UTC epoch ns; None when closed).
    session: str = "closed"
    session_start_ns: int | None = None
    # symbol -> recv_ns of its latest event (None: nothing since it was watched)
    watched: dict[str, int | None] = field(default_factory=dict)
    watched_since_ns: dict[str, int] = field(default_factory=dict)
    unwatched: tuple[str, ...] = ()  # wanted, but beyond feed.watch_limit
    silent_override_s: dict[str, float] = field(default_factory=dict)
    heartbeat_age_s: float | None = None
    feed_connected: bool = True
    dtn_connected: bool | None = None
    # What the IQConnect supervisor reports is wrong ("" while fine or not supervised): an exit, a launch
    # failure, never connected (login), disconnected too long; and how often it restarted IQConnect.
    iqconnect_problem: str = ""
    iqconnect_restarts: int = 0
    bus_reachable: bool = True
    spool_bytes: int = 0
    spool_growth_bytes_per_s: float = 0.0
    dropped_recent: int = 0  # events the producer dropped within alerts.dropped_window_s
    rejected_recent: int = 0  # events the producer could not encode (dead-lettered) within the same window
    spool_write_error: str = ""  # the disk's answer while the spool cannot write ("" when it can)
    storage_write_failures_recent: int = 0
    consumer_lag: int = 0
    errors_per_min: float = 0.0
    disk_free_pct: float = 100.0
    rss_slope_bytes_per_h: float | None = None  # None until warm-up plus a full window of samples
    # Sliding-window p99s (alerts.latency_window_s) and how many events they rest on.
    live_p99_ms: float | None = None  # receive -> acknowledged by the bus
    live_samples: int = 0
    fresh_p99_ms: float | None = None  # receive -> stored
    fresh_samples: int = 0
    backup_degraded: str = ""
    failing_jobs: dict[str, str] = field(default_factory=dict)
    # Storage unreachable or its schema not migrated: since when (None while it is ready), why, and
    # how many operator/alert writes wait in memory for it.
    storage_down_since_ns: int | None = None
    storage_error: str = ""
    storage_pending_writes: int = 0
    # The second copies of the backup: the mirror's and the operator snapshot's latest failure ("" when fine).
    backup_mirror_error: str = ""
    operator_snapshot_error: str = ""
    # Collector fleet, filled only by the instance that evaluates fleet-wide rules (0 instances: not judged):
    # responsive collectors, symbols the desired set wants watched, the sum of the collectors' watch limits,
    # and that sum without the largest (None with fewer than two collectors).
    fleet_instances: int = 0
    fleet_wanted: int = 0
    fleet_capacity: int = 0
    fleet_capacity_after_loss: int | None = None
    # End-of-day completeness: recent trading days (ISO date) -> symbols whose stored day is not
    # complete after backfill (incomplete or in excess); runtime/completeness/.
    incomplete_days: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Hot standby, filled only by the rules owner: symbol -> the recent minutes whose digests from its two
    # watchers differed, and how (runtime/consistency.py).
    inconsistent_feeds: dict[str, str] = field(default_factory=dict)


Rule = Callable[[Observation, AlertSettings], list[Finding]]

CONSUMER_LAG_MAX = 100_000


def symbol_silent(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """A watched symbol with no data for longer than its limit, counted only inside the current session.

    Silence before the session began (last print 19:55 yesterday) or before the symbol was
    started does not count, and a symbol that has sent nothing since either gets
    ``symbol_grace_s`` on top: the first prints after the open or after a watch take a moment.
    """
    if obs.session == "regular":
        default = cfg.symbol_silent_s
    elif obs.session in ("pre", "post"):
        default = cfg.symbol_silent_extended_s
    else:
        return []
    findings = []
    for symbol, last_ns in obs.watched.items():
        limit = obs.silent_override_s.get(symbol, default)
        if limit <= 0:
            continue
        anchors = [obs.session_start_ns or 0, obs.watched_since_ns.get(symbol, 0)]
        since = max(anchors)
        if last_ns is not None and last_ns >= since:
            since, grace = last_ns, 0.0
        else:
            grace = cfg.symbol_grace_s
        silent_s = (obs.now_ns - since) / 1e9
        if silent_s > limit + grace:
            findings.append(Finding("symbol_silent", symbol, "warning",
                                    f"{symbol}: no data for {silent_s:.0f} s during the {obs.session} session",
                                    value=silent_s))
    return findings


def symbols_over_limit(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    if obs.unwatched:
        shown = ", ".join(obs.unwatched[:10]) + (" ..." if len(obs.unwatched) > 10 else "")
        return [Finding("symbols_over_limit", "feed", "warning",
                        f"{len(obs.unwatched)} wanted symbols are not watched (watch limit reached): {shown}",
                        value=len(obs.unwatched))]
    return []


def fleet_capacity(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """The desired set against the responsive collectors' watch limits: short now, or one failure away."""
    if not obs.fleet_instances:
        return []
    wanted, capacity, after = obs.fleet_wanted, obs.fleet_capacity, obs.fleet_capacity_after_loss
    if wanted > capacity:
        return [Finding("fleet_capacity", "fleet", "critical",
                        f"{wanted} symbols wanted but the {obs.fleet_instances} responsive collectors watch at most "
                        f"{capacity}: {wanted - capacity} stay unwatched; add a collector or stop symbols",
                        value=wanted - capacity, for_s=30)]
    if after is not None and wanted > after:
        return [Finding("fleet_capacity", "fleet", "warning",
                        f"if one of the {obs.fleet_instances} collectors fails, the others can watch only {after} of "
                        f"the {wanted} symbols wanted; add a collector before one fails",
                        value=wanted - after, for_s=60)]
    return []


def heartbeat_missing(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    if obs.heartbeat_age_s is not None and obs.heartbeat_age_s > cfg.heartbeat_missing_s:
        return [Finding("heartbeat_missing", "level1", "critical",
                        f"no IQFeed heartbeat for {obs.heartbeat_age_s:.1f} s", value=obs.heartbeat_age_s)]
    if not obs.feed_connected:
        return [Finding("heartbeat_missing", "level1", "critical", "IQFeed Level 1 connection is down")]
    return []


def iqconnect_disconnected(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    if obs.dtn_connected is False:
        return [Finding("iqconnect_disconnected", "dtn", "critical",
                        "IQConnect reports it is not connected to DTN", for_s=5)]
    return []


def iqconnect_failing(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """The supervisor's own verdict: it fires at once (a crash or a login problem is never a blip) and
    resolves when IQConnect is connected to DTN again."""
    if obs.iqconnect_problem:
        return [Finding("iqconnect_failing", "iqconnect", "critical",
                        f"{obs.iqconnect_problem} (restarted {obs.iqconnect_restarts} times)",
                        value=obs.iqconnect_restarts)]
    return []


def bus_trouble(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    findings = []
    if not obs.bus_reachable:
        findings.append(Finding("kafka_unreachable", "bus", "critical",
                                f"Kafka unreachable; {obs.spool_bytes} bytes spooled to disk", for_s=5))
    elif obs.spool_growth_bytes_per_s > 0:
        findings.append(Finding("spool_growing", "bus", "warning",
                                f"spool growing {obs.spool_growth_bytes_per_s:.0f} B/s", for_s=30))
    if obs.spool_write_error:
        findings.append(Finding("spool_write_failed", "bus", "critical",
                                f"spool cannot write to disk: {obs.spool_write_error}"))
    if obs.rejected_recent:
        findings.append(Finding("events_rejected", "bus", "warning",
                                f"{obs.rejected_recent} events could not be encoded in the last "
                                f"{cfg.dropped_window_s:.0f} s; they are on the dead-letter topic (a bug: see the log)",
                                value=obs.rejected_recent))
    if obs.dropped_recent:
        findings.append(Finding("events_dropped", "bus", "critical",
                                f"{obs.dropped_recent} events dropped in the last {cfg.dropped_window_s:.0f} s "
                                f"(spool over budget or its disk full)", value=obs.dropped_recent))
    return findings


def storage_unavailable(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """Nothing is stored while ClickHouse is down: history, integrity checks and backfill wait, the bus fills."""
    if obs.storage_down_since_ns is None:
        return []
    down_s = max(0.0, (obs.now_ns - obs.storage_down_since_ns) / 1e9)
    return [Finding("storage_unavailable", "storage", "critical",
                    f"storage unavailable for {down_s:.0f} s ({obs.storage_error or 'schema not migrated yet'}); "
                    f"events wait on the bus, {obs.storage_pending_writes} operator and alert changes in memory",
                    value=down_s, for_s=5)]


def storage_trouble(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    findings = []
    # While storage is down the failing inserts are its symptom, alerted once as storage_unavailable.
    if obs.storage_write_failures_recent and obs.storage_down_since_ns is None:
        findings.append(Finding("storage_write_failures", "storage", "critical",
                                f"ClickHouse inserts failing; batch held for retry "
                                f"({obs.storage_write_failures_recent} failed attempts so far)",
                                value=obs.storage_write_failures_recent, for_s=5))
    if obs.consumer_lag > CONSUMER_LAG_MAX:
        findings.append(Finding("consumer_lag", "storage", "warning",
                                f"writer is {obs.consumer_lag} bus messages behind "
                                "(a message holds up to bus.events_per_message events)",
                                value=obs.consumer_lag, for_s=30))
    return findings


def error_rate(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    if obs.errors_per_min > cfg.error_rate_per_min:
        return [Finding("error_rate", "feed", "warning",
                        f"{obs.errors_per_min:.0f} malformed lines or reader failures per minute (see the feed log)", value=obs.errors_per_min)]
    return []


def disk_free(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    if obs.disk_free_pct < cfg.disk_free_min_pct:
        return [Finding("disk_free_low", "data_dir", "critical",
                        f"only {obs.disk_free_pct:.1f}% disk free", value=obs.disk_free_pct)]
    return []


def memory_growth(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    limit = cfg.memory_growth_mib_per_h * 2**20
    if obs.rss_slope_bytes_per_h is not None and obs.rss_slope_bytes_per_h > limit:
        mb = obs.rss_slope_bytes_per_h / 2**20
        return [Finding("memory_growth", "process", "warning",
                        f"RSS growing {mb:.0f} MiB/h over the last {cfg.memory_window_s / 60:.0f} min (leak?)",
                        value=obs.rss_slope_bytes_per_h, for_s=600)]
    return []


def live_latency(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """Receive -> acknowledged by the bus: what real-time consumers of the bus wait for."""
    if obs.live_samples >= cfg.latency_min_samples and obs.live_p99_ms is not None and obs.live_p99_ms > cfg.live_p99_ms:
        return [Finding("live_latency", "bus", "warning",
                        f"live path p99 {obs.live_p99_ms:.0f} ms over the {cfg.live_p99_ms:.0f} ms objective "
                        f"(last {cfg.latency_window_s:.0f} s, {obs.live_samples} events)",
                        value=obs.live_p99_ms, for_s=30)]
    return []


def storage_freshness(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """Receive -> queryable in storage: how far history lags behind the live path."""
    if (obs.fresh_samples >= cfg.latency_min_samples and obs.fresh_p99_ms is not None
            and obs.fresh_p99_ms > cfg.freshness_p99_ms):
        return [Finding("storage_freshness", "storage", "warning",
                        f"storage freshness p99 {obs.fresh_p99_ms:.0f} ms over the {cfg.freshness_p99_ms:.0f} ms "
                        f"objective (last {cfg.latency_window_s:.0f} s, {obs.fresh_samples} events)",
                        value=obs.fresh_p99_ms, for_s=30)]
    return []


def backup_degraded(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    if obs.backup_degraded:
        return [Finding("backup_degraded", "backup", "critical", f"file backup failing: {obs.backup_degraded}")]
    return []


def backup_copies(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """The copies that outlive a lost disk or database: the backup mirror and the operator table snapshots."""
    findings = []
    if obs.backup_mirror_error:
        findings.append(Finding("backup_mirror_failed", "backup_mirror", "warning",
                                f"backup mirror failing (the backup itself goes on): {obs.backup_mirror_error}"))
    if obs.operator_snapshot_error:
        findings.append(Finding("operator_snapshot_failed", "operator_snapshot", "warning",
                                f"operator tables not snapshotted: {obs.operator_snapshot_error}"))
    return findings


def job_failing(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    return [Finding("job_failing", name, "critical", f"background job {name} failing: {error}")
            for name, error in obs.failing_jobs.items()]


def day_incomplete(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """A checked trading day whose stored trades still do not add up after the backfill: one alert per day.

    It resolves when a later check (the engine's, or ``python -m runtime.completeness``) finds the
    day complete, or when the day leaves ``completeness.alert_days``.
    """
    findings = []
    for day, symbols in obs.incomplete_days.items():
        shown = ", ".join(symbols[:10]) + (" ..." if len(symbols) > 10 else "")
        findings.append(Finding("day_incomplete", day, "warning",
                                f"{day}: {len(symbols)} symbols not complete after backfill: {shown} "
                                "(Data integrity page; python -m runtime.completeness --day re-checks)",
                                value=len(symbols)))
    return findings


def feed_inconsistent(obs: Observation, cfg: AlertSettings) -> list[Finding]:
    """Two collectors watching one critical symbol received different trades in some minute: one feed
    dropped, altered or invented a print. It resolves an hour after the last differing minute."""
    return [Finding("feed_inconsistent", symbol, "warning",
                    f"{symbol}: the two collectors watching it received different trades: {what} "
                    "(docs/RUNBOOK.md feed_inconsistent)")
            for symbol, what in sorted(obs.inconsistent_feeds.items())]


RULES: tuple[Rule, ...] = (
    symbol_silent, symbols_over_limit, fleet_capacity, heartbeat_missing, iqconnect_disconnected, iqconnect_failing,
    bus_trouble, storage_unavailable, storage_trouble, error_rate, disk_free, memory_growth, live_latency,
    storage_freshness, backup_degraded, backup_copies, job_failing, day_incomplete, feed_inconsistent,
)


def evaluate_rules(obs: Observation, cfg: AlertSettings, rules: tuple[Rule, ...] = RULES) -> list[Finding]:
    return [finding for rule in rules for finding in rule(obs, cfg)]
