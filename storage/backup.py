"""File backup of every event: rotating zstd segments that never stop ingestion.

The collectors hand every batch to :meth:`BackupWriter.append` before the bus, so the
backup holds what was received even when Kafka or ClickHouse were down. The writer's
contract, in order of importance:

1. ``append`` never raises and never blocks on anything but a local write. A disk
   failure (full, permission denied, I/O error) turns ``health.state`` to
   ``"degraded"``, counts the error and the events that could not be written, and the
   writer retries every ``retry_s``; when the disk accepts writes again it resumes by
   itself and goes back to ``"ok"``.
2. What was flushed survives a crash. Records are buffered and written as one zstd
   frame per flush (size or age bound); a crash loses at most the unflushed frame, and
   the next start seals the crashed segment (see :func:`storage.segments.repair_segment`).
3. Segments rotate by size and age and are sealed with a manifest; retention removes
   the oldest sealed segments by age and disk budget, never the open or unsealed ones.

Accounting: ``events_appended == events_written + events_pending + events_dropped``.
While degraded, at most one frame's worth of events is kept pending for the retry;
beyond that, events are dropped and counted (the bus and storage still have them).

One writer per (directory, instance id): a lock file enforces it, so a start-up repair
can never seal a segment another live process is writing.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from events import Event
from config import Settings
from storage.segments import (
    MANIFEST_SUFFIX,
    Manifest,
    SegmentError,
    SegmentStats,
    encode_record,
    fsync_directory,
    is_sealed,
    list_segments,
    manifest_path,
    new_compressor,
    read_manifest,
    remove_stale_temporaries,
    repair_segment,
    safe_instance,
    segment_instance,
    segment_name,
    write_manifest,
)

log = logging.getLogger(__name__)

_MB = 1024 * 1024
_S = 1_000_000_000
_CORRUPT_SUFFIX = ".corrupt"
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, msgspec.EncodeError)

State = Literal["ok", "degraded", "disabled", "closed"]


class BackupError(RuntimeError):
    """The backup cannot be used as configured."""


class BackupDirLocked(BackupError):
    """Another live process writes this directory under the same instance id."""


@dataclass(frozen=True)
class BackupConfig:
    """Everything a :class:`BackupWriter` needs, in exact units (settings use MB/ms for humans)."""

    directory: Path
    instance_id: str = "tickops-1"
    enabled: bool = True
    segment_max_bytes: int = 64 * _MB
    segment_max_ns: int = 300 * _S
    flush_max_bytes: int = 256 * 1024
    flush_max_ns: int = 200_000_000
    retention_ns: int = 14 * 86_400 * _S
    budget_bytes: int = 10_240 * _MB
    compression_level: int = 3
    fsync: bool = False
    retry_ns: int = _S

    @classmethod
    def from_settings(cls, settings: Settings) -> BackupConfig:
        backup = settings.backup
        return cls(
            directory=backup.directory or settings.data_dir / "backup",
            instance_id=settings.instance_id,
            enabled=backup.enabled,
            segment_max_bytes=backup.segment_max_mb * _MB,
            segment_max_ns=backup.segment_max_s * _S,
            flush_max_bytes=backup.flush_max_kb * 1024,
            flush_max_ns=backup.flush_max_ms * 1_000_000,
            retention_ns=backup.retention_days * 86_400 * _S,
            budget_bytes=backup.budget_mb * _MB,
            compression_level=backup.compression_level,
            fsync=backup.fsync,
            retry_ns=int(backup.retry_s * _S),
        )


@dataclass(frozen=True)
class BackupHealth:
    """A snapshot for the dashboard, metrics and alerts; ``state != "ok"`` with errors is alert-worthy."""

    state: State
    directory: str
    events_appended: int
    events_written: int
    events_pending: int
    events_dropped: int
    write_errors: int
    encode_errors: int
    retention_errors: int
    corrupt_segments: int
    last_error: str | None
    last_error_ns: int | None
    degraded_since_ns: int | None
    segments_sealed: int
    segments_removed: int
    bytes_written: int
    open_segment: str | None
    unsealed_segments: int


class _OpenSegment:
    """The segment being appended to: its descriptor and the figures its manifest will carry."""

    __slots__ = ("created_ns", "fd", "frames", "path", "sha256", "size", "stats")

    def __init__(self, path: Path, fd: int, created_ns: int) -> None:
        self.path = path
        self.fd = fd
        self.created_ns = created_ns
        self.size = 0
        self.frames = 0
        self.stats = SegmentStats()
        self.sha256 = hashlib.sha256()


@dataclass
class _Unsealed:
    """A closed segment still waiting for its manifest; ``manifest`` None means: repair by scanning."""

    path: Path
    manifest: Manifest | None


class BackupWriter:
    """Appends events to rotating segment files; thread-safe (feed readers append, a scheduler ticks).

    Call :meth:`rotate_if_due` every 100 ms - 1 s (it writes aged frames, rotates aged
    segments and retries after failures), :meth:`enforce_retention` every minute or so,
    and :meth:`close` at shutdown. ``clock`` returns wall-clock epoch ns (tests pass
    their own so nothing sleeps).
    """

    def __init__(self, config: BackupConfig, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._compressor = new_compressor(config.compression_level)
        self._pending = bytearray()
        self._pending_stats = SegmentStats()
        self._pending_since: int | None = None
        self._segment: _OpenSegment | None = None
        self._unsealed: list[_Unsealed] = []
        self._lock_fd: int | None = None
        self._ready = False
        self._next_index = 1
        self._state: State = "ok" if config.enabled else "disabled"
        self._next_retry_ns = 0
        self._degraded_since_ns: int | None = None
        self._last_error: str | None = None
        self._last_error_ns: int | None = None
        self._events_appended = self._events_written = self._events_dropped = 0
        self._write_errors = self._encode_errors = self._retention_errors = self._corrupt_segments = 0
        self._segments_sealed = self._segments_removed = self._bytes_written = 0
        if not config.enabled:
            return
        with self._lock:
            now = self._clock()
            try:
                self._prepare()
            except OSError as exc:
                self._fail(exc, now)
            else:
                self._work(now)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], int] = time.time_ns) -> BackupWriter:
        return cls(BackupConfig.from_settings(settings), clock=clock)

    # -- the ingestion path -------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        """Buffer ``events`` for the backup; writes a frame when one is due. Never raises."""
        if self._state == "disabled":
            return
        try:
            with self._lock:
                self._append_locked(events)
        except Exception as exc:  # the contract: a backup fault never stops ingestion
            log.exception("backup append failed unexpectedly", extra={"component": "backup", "events": len(events)})
            with self._lock:
                self._fail(exc, self._clock())

    def _append_locked(self, events: Sequence[Event]) -> None:
        now = self._clock()
        self._events_appended += len(events)
        if self._state == "closed":
            self._events_dropped += len(events)
            return
        if self._state == "degraded" and len(self._pending) >= self.config.flush_max_bytes:
            self._work(now)
            if self._state == "degraded" and len(self._pending) >= self.config.flush_max_bytes:
                self._events_dropped += len(events)
                return
        for event in events:
            try:
                encode_record(event, self._pending)
            except _ENCODE_ERRORS as exc:
                self._encode_errors += 1
                self._events_dropped += 1
                self._note_error(exc, now)
                log.error(
                    "event could not be encoded for the backup",
                    extra={"component": "backup", "event_type": type(event).__name__, "error": str(exc)},
                )
                continue
            self._pending_stats.add(event)
        if self._pending_since is None and self._pending:
            self._pending_since = now
        self._work(now)

    def rotate_if_due(self, now_ns: int | None = None) -> None:
        """Periodic tick: write an aged frame, seal an aged or full segment, retry after a failure."""
        if self._state == "disabled":
            return
        with self._lock:
            if self._state != "closed":
                self._work(self._clock() if now_ns is None else now_ns)

    def flush(self) -> None:
        """Write pending records now (also retrying at once when degraded)."""
        if self._state == "disabled":
            return
        with self._lock:
            if self._state != "closed":
                self._next_retry_ns = 0
                self._work(self._clock(), flush=True)

    def close(self) -> None:
        """Flush, seal the open segment and release the directory; later appends are counted as dropped."""
        if self._state == "disabled":
            return
        with self._lock:
            if self._state == "closed":
                return
            now = self._clock()
            self._next_retry_ns = 0
            self._work(now, flush=True, rotate=True)
            if self._pending_stats.count:
                self._events_dropped += self._pending_stats.count
                log.error(
                    "backup closed with unwritten events",
                    extra={"component": "backup", "events": self._pending_stats.count, "error": self._last_error},
                )
                self._reset_pending()
            if self._segment is not None:  # sealing failed: the next start repairs it
                os.close(self._segment.fd)
                self._segment = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the descriptor releases the flock
                self._lock_fd = None
            self._state = "closed"

    # -- state and health ---------------------------------------------------------------

    @property
    def health(self) -> BackupHealth:
        with self._lock:
            segment = self._segment
            return BackupHealth(
                state=self._state,
                directory=str(self.config.directory),
                events_appended=self._events_appended,
                events_written=self._events_written,
                events_pending=self._pending_stats.count,
                events_dropped=self._events_dropped,
                write_errors=self._write_errors,
                encode_errors=self._encode_errors,
                retention_errors=self._retention_errors,
                corrupt_segments=self._corrupt_segments,
                last_error=self._last_error,
                last_error_ns=self._last_error_ns,
                degraded_since_ns=self._degraded_since_ns,
                segments_sealed=self._segments_sealed,
                segments_removed=self._segments_removed,
                bytes_written=self._bytes_written,
                open_segment=str(segment.path) if segment else None,
                unsealed_segments=len(self._unsealed),
            )

    def _note_error(self, exc: BaseException, now: int) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._last_error_ns = now

    def _fail(self, exc: BaseException, now: int) -> None:
        """A disk operation failed: count it, go degraded, schedule a retry."""
        self._write_errors += 1
        previous = self._last_error
        self._note_error(exc, now)
        self._next_retry_ns = now + self.config.retry_ns
        extra = {
            "component": "backup",
            "directory": str(self.config.directory),
            "error": self._last_error,
            "write_errors": self._write_errors,
            "events_dropped": self._events_dropped,
        }
        if self._state == "ok":
            self._state = "degraded"
            self._degraded_since_ns = now
            log.error("backup writing failed; ingestion continues without backup", extra=extra)
        elif self._last_error != previous:
            log.warning("backup still failing", extra=extra)

    def _recovered(self, now: int) -> None:
        since = self._degraded_since_ns or now
        self._state = "ok"
        self._degraded_since_ns = None
        log.info(
            "backup writing resumed",
            extra={
                "component": "backup",
                "directory": str(self.config.directory),
                "degraded_s": round((now - since) / _S, 3),
                "events_dropped": self._events_dropped,
            },
        )

    # -- the disk work, always under self._lock ---------------------------------------

    def _work(self, now: int, *, flush: bool = False, rotate: bool = False) -> None:
        """Do whatever is due; any disk failure is absorbed into the degraded state."""
        if self._state == "degraded":
            if now < self._next_retry_ns:
                return
            flush = True
        config = self.config
        try:
            if not self._ready:
                self._prepare()
            self._seal_unsealed(now)
            if self._pending and (
                flush
                or rotate
                or len(self._pending) >= config.flush_max_bytes
                or now - (self._pending_since or now) >= config.flush_max_ns
            ):
                self._write_pending(now)
            segment = self._segment
            if segment is not None and (
                rotate or segment.size >= config.segment_max_bytes or now - segment.created_ns >= config.segment_max_ns
            ):
                self._seal_open(now)
        except (OSError, SegmentError, BackupError) as exc:
            self._fail(exc, now)
            return
        if self._state == "degraded":
            self._recovered(now)

    def _prepare(self) -> None:
        """Create and lock the directory and queue this instance's crash leftovers for sealing."""
        directory = self.config.directory
        directory.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None:
            lock_path = directory / f".{safe_instance(self.config.instance_id)}.lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise BackupDirLocked(
                    f"{directory} is being written by another process with instance id "
                    f"{self.config.instance_id!r}; give each process its own instance_id or backup.directory"
                ) from None
            except OSError:
                os.close(fd)
                raise
            self._lock_fd = fd
        remove_stale_temporaries(directory, self.config.instance_id)
        mine = safe_instance(self.config.instance_id)
        queued = {item.path for item in self._unsealed}
        for segment in list_segments(directory):
            if segment_instance(segment) == mine and not is_sealed(segment) and segment not in queued:
                self._unsealed.append(_Unsealed(segment, None))
        self._ready = True

    def _seal_unsealed(self, now: int) -> None:
        while self._unsealed:
            item = self._unsealed[0]
            try:
                if item.manifest is None:
                    manifest = repair_segment(item.path, instance_id=self.config.instance_id, now_ns=now)
                else:
                    write_manifest(item.path, item.manifest)
                    manifest = item.manifest
            except SegmentError as exc:
                self._quarantine(item.path, exc, now)
            else:
                if manifest is not None:
                    self._segments_sealed += 1
                    log.info(
                        "backup segment sealed",
                        extra={"component": "backup", "segment": str(item.path), "events": manifest.count,
                               "bytes": manifest.bytes, "recovered": manifest.recovered},
                    )
            self._unsealed.pop(0)

    def _quarantine(self, path: Path, exc: SegmentError, now: int) -> None:
        """Corruption inside a segment: set it aside for an operator instead of guessing."""
        self._corrupt_segments += 1
        self._note_error(exc, now)
        target = path.with_name(path.name + _CORRUPT_SUFFIX)
        os.replace(path, target)
        log.error(
            "corrupt backup segment set aside",
            extra={"component": "backup", "segment": str(target), "error": str(exc)},
        )

    def _open_segment(self, now: int) -> _OpenSegment:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        while True:
            path = self.config.directory / segment_name(self.config.instance_id, now, self._next_index)
            self._next_index += 1
            try:
                fd = os.open(path, flags, 0o644)
            except FileExistsError:
                continue
            if self.config.fsync:
                fsync_directory(self.config.directory)
            return _OpenSegment(path, fd, now)

    def _write_pending(self, now: int) -> None:
        if self._segment is None:  # a segment's age counts from its first event
            self._segment = self._open_segment(self._pending_since or now)
        segment = self._segment
        frame = self._compressor.compress(self._pending)
        try:
            _write_all(segment.fd, frame)
            if self.config.fsync:
                os.fsync(segment.fd)
        except OSError:
            self._cut_torn_frame(segment)
            raise
        segment.size += len(frame)
        segment.frames += 1
        segment.sha256.update(frame)
        segment.stats.merge(self._pending_stats)
        self._events_written += self._pending_stats.count
        self._bytes_written += len(frame)
        self._reset_pending()

    def _cut_torn_frame(self, segment: _OpenSegment) -> None:
        """After a failed write, keep the segment appendable by cutting the partial frame off.

        If even that fails, stop writing to the segment: its repair (later, or at the next
        start) keeps the complete frames and drops the torn one.
        """
        try:
            os.ftruncate(segment.fd, segment.size)
        except OSError:
            os.close(segment.fd)
            self._segment = None
            self._unsealed.append(_Unsealed(segment.path, None))

    def _reset_pending(self) -> None:
        self._pending = bytearray()
        self._pending_stats = SegmentStats()
        self._pending_since = None

    def _seal_open(self, now: int) -> None:
        segment = self._segment
        assert segment is not None
        self._segment = None
        if segment.frames == 0:  # opened, then every write failed: nothing to keep
            os.close(segment.fd)
            segment.path.unlink(missing_ok=True)
            return
        self._unsealed.append(
            _Unsealed(
                segment.path,
                segment.stats.manifest(
                    segment.path,
                    instance_id=self.config.instance_id,
                    frames=segment.frames,
                    size=segment.size,
                    sha256=segment.sha256.hexdigest(),
                    created_ns=segment.created_ns,
                    closed_ns=now,
                ),
            )
        )
        try:
            os.fsync(segment.fd)
        finally:
            os.close(segment.fd)
        self._seal_unsealed(now)

    # -- retention ------------------------------------------------------------------------

    def enforce_retention(self, now_ns: int | None = None) -> list[Path]:
        """Delete sealed segments older than the retention or, oldest first, beyond the disk budget.

        The open segment and unsealed ones count towards the budget but are never
        deleted. Returns the removed segments. Failures are counted, never raised.
        """
        if self._state in ("disabled", "closed"):
            return []
        with self._lock:
            if not self._ready:
                return []
            now = self._clock() if now_ns is None else now_ns
            protected = {item.path for item in self._unsealed}
            if self._segment is not None:
                protected.add(self._segment.path)
        removed: list[Path] = []
        try:
            removed = _apply_retention(self.config, protected, now)
        except OSError as exc:
            with self._lock:
                self._retention_errors += 1
                self._note_error(exc, now)
            log.error("backup retention failed", extra={"component": "backup", "error": str(exc)})
        with self._lock:
            self._segments_removed += len(removed)
        return removed


def _apply_retention(config: BackupConfig, protected: set[Path], now: int) -> list[Path]:
    directory = config.directory
    total = 0
    candidates: list[tuple[int, Path, int]] = []  # (closed_ns, segment, bytes incl. manifest)
    for segment in list_segments(directory):
        size = _size(segment) + _size(manifest_path(segment))
        total += size
        if segment in protected or not is_sealed(segment):
            continue
        try:
            closed_ns = read_manifest(segment).closed_ns
        except SegmentError:
            closed_ns = segment.stat().st_mtime_ns
        candidates.append((closed_ns, segment, size))
    removed: list[Path] = []
    for closed_ns, segment, size in sorted(candidates):
        expired = now - closed_ns > config.retention_ns
        if not expired and total <= config.budget_bytes:
            continue
        segment.unlink(missing_ok=True)  # segment first: a crash here leaves an orphan manifest, not a resurrection
        manifest_path(segment).unlink(missing_ok=True)
        total -= size
        removed.append(segment)
        log.info(
            "backup segment removed",
            extra={"component": "backup", "segment": str(segment), "reason": "age" if expired else "budget", "bytes": size},
        )
    _remove_orphan_manifests(directory)
    if removed:
        fsync_directory(directory)
    return removed


def _remove_orphan_manifests(directory: Path) -> None:
    for manifest in directory.glob(f"*{MANIFEST_SUFFIX}"):
        if not manifest.with_name(manifest.name[: -len(MANIFEST_SUFFIX)]).exists():
            manifest.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a filling disk); loop until done or an error is raised."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
