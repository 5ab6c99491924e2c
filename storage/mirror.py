"""A second copy of the backup on another disk or mount, verified by checksum, that never holds the backup up.

The engine's ``backup_mirror`` job calls :meth:`BackupMirror.sync` every
``backup.mirror_interval_s``: every sealed file of the backup directory (segments, and the
operator snapshots under ``operator/``) not yet in ``backup.mirror_directory`` is copied
there, oldest first:

    source ──read, sha256──► <target>/<name>.tmp ──fsync, read back, sha256──► both equal the manifest's?
        yes ──► rename to <name>, then its manifest (temp, rename): a manifest in the mirror means a verified copy
        no  ──► temp removed, counted (checksum_mismatches), retried only once the source file changes

A sealed file is copied once its manifest exists, so the mirror trails the backup by one
rotation (``backup.segment_max_s``) plus the job's interval. Nothing here raises: a
missing mount, a full or read-only disk or a mismatch is counted, logged when it starts,
and shown as ``state = "failing"`` (the ``backup_mirror_failed`` alert) until a pass goes
through cleanly. The mirror directory is never created: a missing one usually means the
disk is not mounted, and creating it would fill the root disk instead.

Retention: files whose manifest says they closed (segments) or were created (snapshots)
more than ``backup.retention_days`` ago are removed from the mirror and not copied; the
mirror has no byte budget of its own, so it may hold more than a budget-pruned backup.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from storage.operator_backup import SUBDIRECTORY as SNAPSHOTS
from storage.segments import MANIFEST_SUFFIX, manifest_path, write_atomically

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SEALED_SUFFIXES = (".seg.zst", ".ops.ndjson.zst")

MirrorState = Literal["ok", "failing"]


class MirrorError(RuntimeError):
    """One file could not be mirrored; the message names it and what went wrong."""


@dataclass(frozen=True)
class MirrorHealth:
    state: MirrorState
    directory: str
    files_copied: int
    bytes_copied: int
    files_removed: int
    failures: int  # files that could not be copied (each attempt)
    checksum_mismatches: int
    pending: int  # sealed backup files not in the mirror after the last pass
    last_error: str
    last_ok_ns: int | None  # end of the last pass without a failure


def _sealed_files(directory: Path) -> Iterator[Path]:
    for folder in (directory, directory / SNAPSHOTS):
        try:
            names = sorted(p for p in folder.iterdir() if p.name.endswith(_SEALED_SUFFIXES) and p.is_file())
        except FileNotFoundError:
            continue
        yield from (p for p in names if manifest_path(p).exists())


def _manifest(path: Path) -> dict:
    manifest = msgspec.json.decode(manifest_path(path).read_bytes())
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str):
        raise MirrorError(f"{manifest_path(path)} has no sha256: not a backup manifest")
    return manifest


def _age_ns(manifest: dict) -> int:
    return int(manifest.get("closed_ns") or manifest.get("created_ns") or 0)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BackupMirror:
    def __init__(self, source: Path, target: Path, *, retention_ns: int,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.source = source
        self.target = target
        self._retention_ns = retention_ns
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._copied = self._bytes = self._removed = self._failures = self._mismatches = 0
        self._pending = 0
        self._state: MirrorState = "ok"
        self._last_error = ""
        self._last_ok_ns: int | None = None
        self._bad_sources: dict[Path, tuple[int, int]] = {}  # mismatching source -> (size, mtime) when seen

    def sync(self) -> int:
        """One pass: copy what is missing, remove what expired; returns files copied. Never raises."""
        now = self._clock_ns()
        errors: list[str] = []
        copied = pending = 0
        if not self.target.is_dir():
            errors.append(f"mirror directory {self.target} does not exist or is not a directory "
                          "(is its disk mounted?); it is never created here")
            pending = sum(1 for _ in _sealed_files(self.source))
        else:
            for path in _sealed_files(self.source):
                try:
                    if self._mirror_one(path, now):
                        copied += 1
                except (OSError, MirrorError, msgspec.DecodeError) as exc:
                    pending += 1
                    errors.append(str(exc) if isinstance(exc, MirrorError) else f"{path.name}: {type(exc).__name__}: {exc}")
            try:
                self._expire(now)
            except OSError as exc:
                errors.append(f"removing expired mirror files: {exc}")
        self._finish(errors, pending, now)
        return copied

    def _mirror_one(self, path: Path, now: int) -> bool:
        relative = path.relative_to(self.source)
        destination = self.target / relative
        if manifest_path(destination).exists():
            return False
        manifest = _manifest(path)
        if now - _age_ns(manifest) > self._retention_ns:
            return False
        stat = path.stat()
        if self._bad_sources.get(path) == (stat.st_size, stat.st_mtime_ns):
            raise MirrorError(f"{path} does not match its manifest's sha256 (seen before); not copied")
        destination.parent.mkdir(exist_ok=True)  # operator/ inside the mirror; the mirror itself must exist
        tmp = destination.with_name(destination.name + ".tmp")
        try:
            read_digest = self._copy(path, tmp)
            written_digest = _hash_file(tmp)
            expected = manifest["sha256"]
            if read_digest != expected:
                self._bad_sources[path] = (stat.st_size, stat.st_mtime_ns)
                with self._lock:
                    self._mismatches += 1
                raise MirrorError(f"{path} does not match its manifest's sha256 ({read_digest} != {expected}); "
                                  "the backup file changed after sealing: not copied")
            if written_digest != expected:
                with self._lock:
                    self._mismatches += 1
                raise MirrorError(f"copy of {path.name} in {self.target} reads back with sha256 {written_digest}, "
                                  f"not {expected}: the mirror disk corrupted it; retried next pass")
            os.replace(tmp, destination)
            write_atomically(manifest_path(destination), manifest_path(path).read_bytes())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._bad_sources.pop(path, None)
        with self._lock:
            self._copied += 1
            self._bytes += stat.st_size
        return True

    @staticmethod
    def _copy(source: Path, destination: Path) -> str:
        digest = hashlib.sha256()
        with source.open("rb") as reader, destination.open("wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        return digest.hexdigest()

    def _expire(self, now: int) -> None:
        for path in list(_sealed_files(self.target)):
            try:
                expired = now - _age_ns(_manifest(path)) > self._retention_ns
            except (MirrorError, msgspec.DecodeError):
                continue
            if expired:
                path.unlink(missing_ok=True)
                manifest_path(path).unlink(missing_ok=True)
                with self._lock:
                    self._removed += 1
        for folder in (self.target, self.target / SNAPSHOTS):
            for stale in folder.glob("*.tmp") if folder.is_dir() else ():
                stale.unlink(missing_ok=True)  # a pass that died mid-copy
            for orphan in folder.glob(f"*{MANIFEST_SUFFIX}") if folder.is_dir() else ():
                if not orphan.with_name(orphan.name[: -len(MANIFEST_SUFFIX)]).exists():
                    orphan.unlink(missing_ok=True)

    def _finish(self, errors: list[str], pending: int, now: int) -> None:
        """Record the pass; log when failing starts or changes, and when it ends."""
        with self._lock:
            was, previous_error = self._state, self._last_error
            self._pending = pending
            self._failures += len(errors)
            if errors:
                self._state, self._last_error = "failing", errors[0]
            else:
                self._state, self._last_error, self._last_ok_ns = "ok", "", now
        if errors and (was == "ok" or errors[0] != previous_error):
            log.error("backup mirror failing; the backup itself goes on", extra={
                "directory": str(self.target), "error": errors[0], "files_failed": len(errors), "pending": pending})
        elif not errors and was == "failing":
            log.info("backup mirror copying again", extra={"directory": str(self.target)})

    @property
    def health(self) -> MirrorHealth:
        with self._lock:
            return MirrorHealth(self._state, str(self.target), self._copied, self._bytes, self._removed,
                                self._failures, self._mismatches, self._pending, self._last_error, self._last_ok_ns)
