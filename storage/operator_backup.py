"""Snapshots of the operator tables beside the event backup, so a lost database keeps its operators' record.

Events are backed up as they arrive (storage/backup.py); the state operators create lives
only in storage: alerts and their acknowledgements, the audit trail (and the older unchained
audit log), the desired symbols,
feed outage windows and the per-minute health behind the uptime figures. The engine
exports them every ``backup.operator_snapshot_s`` to ``<backup dir>/operator/``:

    <stamp>-<instance>.ops.ndjson.zst                one zstd frame: a JSON line per row,
                                                     {"table": "alerts", "row": [values in column order]}
    <stamp>-<instance>.ops.ndjson.zst.manifest.json  columns and row count per table, bytes, sha256

Written like a segment: data file first, then its manifest atomically (the manifest seals
it, so the mirror and the restore see only whole snapshots). Columns are read from the
table at export time, so a migration that adds a column needs no change here; a restore
inserts the columns the snapshot and today's table share. A restore is idempotent: a row
identical to one already stored (every shared column equal) is not inserted again.

Size: whole tables (uptime minutes: the last 31 days), built in memory; these tables hold
operator actions and one row per component-minute, megabytes, not the event volume.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from storage.segments import (
    MANIFEST_SUFFIX,
    iso_utc,
    manifest_path,
    safe_instance,
    write_atomically,
    write_manifest,
)
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

FORMAT = "tickops-operator-snapshot"
FORMAT_VERSION = 1
SUFFIX = ".ops.ndjson.zst"
SUBDIRECTORY = "operator"
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class OperatorTable:
    """A table to snapshot; ``recent_column`` limits a table that grows by the minute to its last ``recent_days``."""

    name: str
    recent_column: str | None = None
    recent_days: int = 31


OPERATOR_TABLES: tuple[OperatorTable, ...] = (
    OperatorTable("alerts"),
    OperatorTable("audit_log"),
    OperatorTable("audit_trail"),
    OperatorTable("symbols"),
    OperatorTable("rollouts"),  # an unfinished staged rollout resumes after a rebuild too
    OperatorTable("feed_outages"),
    OperatorTable("health_minutes", recent_column="minute_ns"),
)


class SnapshotError(RuntimeError):
    """A snapshot cannot be trusted (checksum, format) or read; the message names the file."""


class TableInfo(msgspec.Struct):
    columns: list[str]
    rows: int


class SnapshotManifest(msgspec.Struct, kw_only=True):
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    snapshot: str
    instance_id: str
    database: str
    created_ns: int
    created: str
    tables: dict[str, TableInfo]
    bytes: int
    sha256: str


class _Line(msgspec.Struct):
    table: str
    row: list[Any]


_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(_Line)
_manifest_decoder = msgspec.json.Decoder(SnapshotManifest)


def snapshot_directory(backup_directory: Path) -> Path:
    return backup_directory / SUBDIRECTORY


def snapshot_name(instance_id: str, created_ns: int) -> str:
    stamp = datetime.fromtimestamp(created_ns // 1_000_000_000, UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}{created_ns // 1000 % 1_000_000:06d}Z-{safe_instance(instance_id)}{SUFFIX}"


def table_columns(store: Store, table: str) -> list[str]:
    """The table's columns in order (DESCRIBE works on ClickHouse 18.16 and current)."""
    return [str(row[0]) for row in store.query(f"DESCRIBE TABLE {store.table(table)}")]


def export_snapshot(store: Store, directory: Path, *, instance_id: str, now_ns: int,
                    tables: Sequence[OperatorTable] = OPERATOR_TABLES, level: int = 3) -> Path:
    """Write one snapshot of ``tables`` into ``directory`` (created if needed); raises StorageError or OSError."""
    lines = bytearray()
    infos: dict[str, TableInfo] = {}
    for table in tables:
        columns = table_columns(store, table.name)
        where = ""
        if table.recent_column:
            where = f" WHERE {table.recent_column} >= {now_ns - table.recent_days * _DAY_NS}"
        rows = store.query(f"SELECT {', '.join(columns)} FROM {store.table(table.name)}{where}")
        for row in rows:
            lines += _encoder.encode(_Line(table.name, list(row)))
            lines += b"\n"
        infos[table.name] = TableInfo(columns, len(rows))
    body = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(bytes(lines))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / snapshot_name(instance_id, now_ns)
    write_atomically(path, body)
    write_manifest(path, SnapshotManifest(
        snapshot=path.name, instance_id=instance_id, database=store.database, created_ns=now_ns,
        created=iso_utc(now_ns), tables=infos, bytes=len(body), sha256=hashlib.sha256(body).hexdigest(),
    ))
    return path


def list_snapshots(directory: Path) -> list[Path]:
    """Sealed snapshots (with a manifest) in ``directory``, oldest first; [] if it does not exist."""
    try:
        found = [p for p in directory.iterdir() if p.name.endswith(SUFFIX) and p.is_file()]
    except FileNotFoundError:
        return []
    return sorted((p for p in found if manifest_path(p).exists()), key=lambda p: p.name)


def read_snapshot(path: Path) -> tuple[SnapshotManifest, dict[str, list[list[Any]]]]:
    """The manifest and rows per table, after checking the file against the manifest's sha256."""
    try:
        manifest = _manifest_decoder.decode(manifest_path(path).read_bytes())
        body = path.read_bytes()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{path}: cannot read the snapshot or its manifest: {exc}") from exc
    if manifest.format != FORMAT or manifest.format_version > FORMAT_VERSION:
        raise SnapshotError(f"{path}: format {manifest.format} v{manifest.format_version} is not readable by this version")
    actual = hashlib.sha256(body).hexdigest()
    if actual != manifest.sha256:
        raise SnapshotError(f"{path}: sha256 {actual} does not match its manifest ({manifest.sha256}); "
                            "the file changed after it was written")
    rows: dict[str, list[list[Any]]] = {name: [] for name in manifest.tables}
    try:
        for raw in zstandard.ZstdDecompressor().decompress(body).splitlines():
            line = _line_decoder.decode(raw)
            rows.setdefault(line.table, []).append(line.row)
    except (zstandard.ZstdError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{path}: undecodable content: {exc}") from exc
    return manifest, rows


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list | tuple) else value


@dataclass
class SnapshotRestore:
    """What a restore did: the snapshot used, rows inserted and already there per table, snapshots passed over."""

    snapshot: Path | None = None
    inserted: dict[str, int] = field(default_factory=dict)
    already_stored: dict[str, int] = field(default_factory=dict)
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # unreadable or tampered snapshots, newest first


def restore_snapshot(store: Store, path: Path, report: SnapshotRestore | None = None) -> SnapshotRestore:
    """Insert the rows of snapshot ``path`` that are not stored yet (``store`` migrated); raises SnapshotError."""
    manifest, rows = read_snapshot(path)
    report = report or SnapshotRestore()
    report.snapshot = path
    for table, info in manifest.tables.items():
        present = table_columns(store, table)
        shared = [column for column in info.columns if column in present]
        dropped = [column for column in info.columns if column not in present]
        if dropped:
            report.dropped_columns[table] = dropped
            log.warning("snapshot columns no longer in the table; restored without them",
                        extra={"table": table, "columns": ", ".join(dropped), "snapshot": str(path)})
        picks = [info.columns.index(column) for column in shared]
        stored = {_hashable(row) for row in store.query(f"SELECT {', '.join(shared)} FROM {store.table(table)}")}
        fresh: dict[Any, list[Any]] = {}
        for row in rows.get(table, []):
            values = [row[i] for i in picks]
            key = _hashable(values)
            if key not in stored:
                fresh.setdefault(key, values)
        if fresh:
            store.insert_columns(table, shared, [list(column) for column in zip(*fresh.values())])
        report.inserted[table] = len(fresh)
        report.already_stored[table] = len(rows.get(table, [])) - len(fresh)
    return report


def restore_latest(store: Store, directories: Sequence[Path]) -> SnapshotRestore:
    """Restore the newest snapshot in ``directories`` (a backup's and its mirror's) that verifies; a bad one is
    reported and the next older one is tried. ``snapshot`` stays None when there is none to restore."""
    report = SnapshotRestore()
    found = [path for directory in directories for path in list_snapshots(directory)]
    for path in sorted(found, key=lambda p: p.name, reverse=True):  # names start with their UTC stamp
        try:
            return restore_snapshot(store, path, report)
        except SnapshotError as exc:
            report.skipped.append(str(exc))
            log.error("operator snapshot not restored; trying an older one", extra={"error": str(exc)})
    return report


def prune_snapshots(directory: Path, instance_id: str, keep: int) -> list[Path]:
    """Remove this instance's snapshots beyond the newest ``keep`` (another instance prunes its own)."""
    mine = [p for p in list_snapshots(directory) if p.name.endswith(f"-{safe_instance(instance_id)}{SUFFIX}")]
    removed = mine[:-keep] if keep > 0 else mine
    for path in removed:
        path.unlink(missing_ok=True)  # the data first: a crash leaves a manifest alone, never an unsealed file
        manifest_path(path).unlink(missing_ok=True)
    for stale in directory.glob(f"*-{safe_instance(instance_id)}{SUFFIX}.tmp"):
        stale.unlink(missing_ok=True)  # an export that died before its rename
    for orphan in directory.glob(f"*{SUFFIX}{MANIFEST_SUFFIX}"):
        if not orphan.with_name(orphan.name[: -len(MANIFEST_SUFFIX)]).exists():
            orphan.unlink(missing_ok=True)
    return removed


@dataclass(frozen=True)
class SnapshotHealth:
    """For status, metrics and the ``operator_snapshot_failed`` alert."""

    written: int
    failures: int
    last_ok_ns: int | None
    last_snapshot: str | None
    last_error: str  # "" while the latest attempt succeeded


class OperatorSnapshots:
    """The engine's periodic export: due every ``interval_s``, retried sooner after a failure; never raises."""

    RETRY_S = 30.0

    def __init__(self, store: Store, directory: Path, *, instance_id: str, interval_s: float, keep: int,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self.directory = directory
        self._instance_id = instance_id
        self._interval_ns = int(interval_s * 1e9)
        self._keep = keep
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._due_ns = 0
        self._written = self._failures = 0
        self._last_ok_ns: int | None = None
        self._last_snapshot: str | None = None
        self._last_error = ""

    def run_if_due(self, storage_ready: bool) -> Path | None:
        """Export when due and storage is ready (while it is not, its own alert speaks; this waits)."""
        now = self._clock_ns()
        if now < self._due_ns or not storage_ready:
            return None
        try:
            path = export_snapshot(self._store, self.directory, instance_id=self._instance_id, now_ns=now)
            prune_snapshots(self.directory, self._instance_id, self._keep)
        except (StorageError, OSError) as exc:
            with self._lock:
                first = not self._last_error
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._due_ns = now + int(min(self.RETRY_S * 1e9, self._interval_ns))
            if first:
                log.error("operator tables snapshot failed; retrying", extra={
                    "directory": str(self.directory), "error": str(exc), "failures": self._failures})
            return None
        with self._lock:
            if self._last_error:
                log.info("operator tables snapshot written again", extra={"snapshot": str(path)})
            self._written += 1
            self._last_ok_ns, self._last_snapshot, self._last_error = now, path.name, ""
            self._due_ns = now + self._interval_ns
        return path

    @property
    def health(self) -> SnapshotHealth:
        with self._lock:
            return SnapshotHealth(self._written, self._failures, self._last_ok_ns, self._last_snapshot, self._last_error)
