"""Durable on-disk spool: where the producer puts events the broker cannot take right now.

Layout under ``directory``: append-only segment files ``<id>.seg`` (ids increase), a
``checkpoint.json`` saying how many leading records of each segment were delivered, and
a ``lock`` file (flock) so two producers never share one spool. A record is
``<u32 body length><u32 crc32(body)><body>`` with body ``<i64 recv_ns><u16 topic
length><u16 key length>topic key value``: the length and checksum let recovery cut a
torn tail (a crash mid-append) instead of replaying garbage.

Life of a record: :meth:`Spool.append` writes it (``os.write`` before returning, so a
process crash loses nothing; ``fsync`` at once or within ``fsync_interval_s`` for
machine crashes); :meth:`peek` + :meth:`advance` hand records out strictly in append
order for replay; :meth:`ack` marks one delivered; a segment whose records are all
delivered is deleted. Delivered-but-not-checkpointed records are replayed again after
a crash (at-least-once; storage dedups). The byte budget bounds the disk use: an
append over budget raises :class:`SpoolFull` with what was rejected, and the caller
counts and logs it; the spool never drops silently.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")  # body length, crc32(body)
_BODY = struct.Struct("<qHH")  # recv_ns, topic length, key length
_READ_CHUNK = 1 << 20
_CHECKPOINT = "checkpoint.json"


class SpoolError(RuntimeError):
    """The spool cannot be used (locked by another process, unreadable directory)."""


class SpoolLocked(SpoolError):
    """Another live process owns this spool directory; give each producer its own."""


class SpoolFull(SpoolError):
    """Records were rejected (byte budget reached or the disk refused the write)."""

    def __init__(self, accepted: int, rejected: int, reason: str) -> None:
        super().__init__(f"spool rejected {rejected} record(s) after accepting {accepted}: {reason}")
        self.accepted = accepted
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    topic: str
    key: bytes
    value: bytes
    recv_ns: int = 0


@dataclass(frozen=True, slots=True)
class Ticket:
    """Identifies a handed-out record so its delivery can be acknowledged."""

    segment: int
    index: int


@dataclass(frozen=True)
class SpoolStats:
    bytes_used: int
    unsent: int  # appended, not yet handed out for replay
    unacked: int  # appended, delivery not yet acknowledged
    segments: int
    corrupt_bytes: int  # cut at recovery (torn tail or checksum mismatch)


@dataclass(eq=False)
class _Segment:
    id: int
    path: Path
    size: int = 0
    records: int = 0
    acked_prefix: int = 0  # records [0, acked_prefix) are delivered
    acked: set[int] = field(default_factory=set)  # delivered indexes beyond the prefix
    start_offset: int = 0  # where unsent records begin (after a checkpointed prefix)
    start_index: int = 0
    read_fd: int | None = None


def _encode(record: SpoolRecord) -> bytes:
    topic = record.topic.encode()
    body = _BODY.pack(record.recv_ns, len(topic), len(record.key)) + topic + record.key + record.value
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _decode_body(body: bytes) -> SpoolRecord:
    recv_ns, topic_len, key_len = _BODY.unpack_from(body)
    start = _BODY.size
    topic = body[start:start + topic_len].decode()
    key = body[start + topic_len:start + topic_len + key_len]
    return SpoolRecord(topic, bytes(key), bytes(body[start + topic_len + key_len:]), recv_ns)


def _frames(buffer: bytes, base: int) -> tuple[list[tuple[int, int, bytes]], int, bool]:
    """Complete, checksum-valid frames in ``buffer`` as (offset, end, body), where parsing stopped, and
    whether it stopped at a checksum mismatch (corruption) rather than at an incomplete frame."""
    frames: list[tuple[int, int, bytes]] = []
    position = 0
    while position + _FRAME.size <= len(buffer):
        length, crc = _FRAME.unpack_from(buffer, position)
        end = position + _FRAME.size + length
        if end > len(buffer):
            break
        body = buffer[position + _FRAME.size:end]
        if zlib.crc32(body) != crc or length < _BODY.size:
            return frames, position, True
        frames.append((base + position, base + end, body))
        position = end
    return frames, position, False


class Spool:
    def __init__(
        self,
        directory: Path | str,
        *,
        budget_bytes: int,
        segment_bytes: int = 16 << 20,
        fsync_interval_s: float = 0.01,
        checkpoint_interval_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._budget = budget_bytes
        self._segment_bytes = segment_bytes
        self._fsync_interval = fsync_interval_s
        self._checkpoint_interval = checkpoint_interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._lock_fd = self._take_lock()
        self._segments: dict[int, _Segment] = {}
        self._active: _Segment | None = None
        self._active_fd: int | None = None
        self._next_id = 1
        self._cursor: tuple[int, int, int] | None = None  # (segment, byte offset, index) of the next unsent record
        self._peeked: list[tuple[int, int, int]] = []  # position after each peeked record
        self._unsent = 0
        self._bytes = 0
        self._corrupt_bytes = 0
        self._dirty_since: float | None = None
        self._checkpoint_dirty = False
        self._last_checkpoint = clock()
        self._recover()

    # ------------------------------------------------------------------ opening
    def _take_lock(self) -> int:
        fd = os.open(self.directory / "lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise SpoolLocked(f"spool {self.directory} is in use by another process; give each producer its own directory") from exc
        return fd

    def _recover(self) -> None:
        checkpoint = self._load_checkpoint()
        ids = sorted(int(path.stem) for path in self.directory.glob("*.seg") if path.stem.isdigit())
        for segment_id in ids:
            segment = self._scan(segment_id, checkpoint.get(segment_id, 0))
            self._next_id = segment_id + 1
            if segment.acked_prefix >= segment.records:
                segment.path.unlink()
                continue
            self._segments[segment_id] = segment
            self._bytes += segment.size
            self._unsent += segment.records - segment.acked_prefix
        if self._segments:
            first = next(iter(self._segments.values()))
            self._cursor = (first.id, first.start_offset, first.start_index)
            log.warning(
                "spool holds undelivered events from a previous run; they are replayed first",
                extra={"spool": str(self.directory), "count": self._unsent, "bytes": self._bytes},
            )

    def _load_checkpoint(self) -> dict[int, int]:
        path = self.directory / _CHECKPOINT
        if not path.exists():
            return {}
        try:
            return {int(k): int(v) for k, v in msgspec.json.decode(path.read_bytes())["acked"].items()}
        except (OSError, ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
            log.warning("spool checkpoint unreadable; replaying every spooled record (duplicates are deduped downstream)",
                        extra={"spool": str(self.directory), "error": str(exc)})
            return {}

    def _scan(self, segment_id: int, acked_prefix: int) -> _Segment:
        path = self.directory / f"{segment_id:016d}.seg"
        data = path.read_bytes()
        frames, valid_end, corrupt = _frames(data, 0)
        if valid_end < len(data):
            lost = len(data) - valid_end
            self._corrupt_bytes += lost
            log.error(
                "spool segment cut at a checksum mismatch" if corrupt else "spool segment had a torn tail (crash mid-append); cut",
                extra={"spool": str(self.directory), "segment": segment_id, "bytes": lost, "count": len(frames)},
            )
            with open(path, "r+b") as handle:
                handle.truncate(valid_end)
                os.fsync(handle.fileno())
        prefix = min(acked_prefix, len(frames))
        start_offset = frames[prefix][0] if prefix < len(frames) else valid_end
        return _Segment(segment_id, path, valid_end, len(frames), prefix, set(), start_offset, prefix)

    # ------------------------------------------------------------------ writing
    def append(self, records: Sequence[SpoolRecord], *, over_budget: bool = False) -> None:
        """Write ``records`` in order; raise :class:`SpoolFull` naming how many did not fit.

        ``over_budget`` is for moving a record already counted in the spool (a replayed
        record whose delivery failed goes back to the tail), which must never be refused.
        """
        frames = [_encode(record) for record in records]
        with self._lock:
            accepted = len(frames)
            if not over_budget:
                room = self._budget - self._bytes
                for index, frame in enumerate(frames):
                    room -= len(frame)
                    if room < 0:
                        accepted = index
                        break
            written = self._write(frames[:accepted])
            if written < len(frames):
                reason = "byte budget reached" if written == accepted else "disk write failed"
                raise SpoolFull(written, len(frames) - written, f"{reason} ({self._bytes} of {self._budget} bytes used)")

    def _write(self, frames: list[bytes]) -> int:
        written = 0
        while written < len(frames):
            segment, fd = self._writable()
            chunk: list[bytes] = []
            size = segment.size
            while written + len(chunk) < len(frames) and (not chunk or size < self._segment_bytes):
                frame = frames[written + len(chunk)]
                chunk.append(frame)
                size += len(frame)
            data = b"".join(chunk)
            try:
                os.write(fd, data)
            except OSError as exc:
                os.ftruncate(fd, segment.size)  # never leave a torn record behind a failed write
                log.error("spool write failed", extra={"spool": str(self.directory), "error": str(exc),
                                                        "disk_full": exc.errno == errno.ENOSPC})
                return written
            segment.size = size
            segment.records += len(chunk)
            self._bytes += len(data)
            self._unsent += len(chunk)
            written += len(chunk)
            if self._dirty_since is None:
                self._dirty_since = self._clock()
        if frames:
            self.sync_if_due()
        return written

    def _writable(self) -> tuple[_Segment, int]:
        if self._active is not None and self._active_fd is not None and self._active.size < self._segment_bytes:
            return self._active, self._active_fd
        self._seal()
        segment = _Segment(self._next_id, self.directory / f"{self._next_id:016d}.seg")
        self._next_id += 1
        fd = os.open(segment.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
        self._fsync_directory()
        self._segments[segment.id] = segment
        self._active, self._active_fd = segment, fd
        if self._cursor is None:
            self._cursor = (segment.id, 0, 0)
        return segment, fd

    def _seal(self) -> None:
        if self._active_fd is not None:
            os.fsync(self._active_fd)
            os.close(self._active_fd)
            if self._dirty_since is not None:
                self._dirty_since = None
        self._active, self._active_fd = None, None

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        with self._lock:
            if self._dirty_since is not None and self._active_fd is not None:
                os.fsync(self._active_fd)
            self._dirty_since = None

    def sync_if_due(self) -> None:
        with self._lock:
            if self._dirty_since is not None and self._clock() - self._dirty_since >= self._fsync_interval:
                self.sync()

    # ------------------------------------------------------------------ replay
    def peek(self, limit: int) -> list[tuple[Ticket, SpoolRecord]]:
        """Up to ``limit`` unsent records in append order, without handing them out yet (see :meth:`advance`)."""
        with self._lock:
            out: list[tuple[Ticket, SpoolRecord]] = []
            self._peeked = []
            if self._cursor is None:
                return out
            segment_id, offset, index = self._cursor
            while len(out) < limit:
                segment = self._segments.get(segment_id)
                if segment is None or offset >= segment.size:
                    if segment is not None and segment is self._active:
                        break
                    following = [sid for sid in self._segments if sid > segment_id]
                    if not following:
                        break
                    nxt = self._segments[following[0]]
                    segment_id, offset, index = nxt.id, nxt.start_offset, nxt.start_index
                    continue
                buffer = self._pread(segment, offset, min(_READ_CHUNK, segment.size - offset))
                frames, _, _ = _frames(buffer, offset)
                if not frames:  # a record larger than the chunk
                    (length, _) = _FRAME.unpack_from(self._pread(segment, offset, _FRAME.size))
                    frames, _, _ = _frames(self._pread(segment, offset, _FRAME.size + length), offset)
                for _, end, body in frames[: limit - len(out)]:
                    out.append((Ticket(segment_id, index), _decode_body(body)))
                    index += 1
                    offset = end
                    self._peeked.append((segment_id, offset, index))
            return out

    def _pread(self, segment: _Segment, offset: int, size: int) -> bytes:
        if segment.read_fd is None:
            segment.read_fd = os.open(segment.path, os.O_RDONLY)
        return os.pread(segment.read_fd, size, offset)

    def advance(self, count: int) -> None:
        """Hand out the first ``count`` records of the last :meth:`peek` (they were sent)."""
        if count <= 0:
            return
        with self._lock:
            if count > len(self._peeked):
                raise ValueError(f"advance({count}) beyond the {len(self._peeked)} records peeked")
            self._cursor = self._peeked[count - 1]
            self._unsent -= count
            self._peeked = []

    def ack(self, ticket: Ticket) -> None:
        """The record was delivered; a segment whose records all are is deleted."""
        with self._lock:
            segment = self._segments.get(ticket.segment)
            if segment is None or ticket.index < segment.acked_prefix:
                return
            segment.acked.add(ticket.index)
            while segment.acked_prefix in segment.acked:
                segment.acked.discard(segment.acked_prefix)
                segment.acked_prefix += 1
            self._checkpoint_dirty = True
            if segment.acked_prefix < segment.records:
                return
            if segment is self._active:
                if self._unsent:
                    return
                self._seal()
            self._delete(segment)

    def requeue(self, ticket: Ticket, record: SpoolRecord) -> None:
        """A handed-out record failed delivery: append it again at the tail, then ack the old copy."""
        with self._lock:
            self.append([record], over_budget=True)
            self.ack(ticket)

    def _delete(self, segment: _Segment) -> None:
        if segment.read_fd is not None:
            os.close(segment.read_fd)
        segment.path.unlink()
        del self._segments[segment.id]
        self._bytes -= segment.size
        if self._cursor is not None and self._cursor[0] == segment.id:
            following = [s for s in self._segments.values() if s.id > segment.id]
            self._cursor = (following[0].id, following[0].start_offset, following[0].start_index) if following else None

    # ------------------------------------------------------------------ state
    def checkpoint(self) -> None:
        """Persist how much of each segment is delivered, so a restart does not replay it."""
        with self._lock:
            if not self._checkpoint_dirty:
                return
            acked = {str(s.id): s.acked_prefix for s in self._segments.values() if s.acked_prefix}
            tmp = self.directory / (_CHECKPOINT + ".tmp")
            with open(tmp, "wb") as handle:
                handle.write(msgspec.json.encode({"acked": acked}))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.directory / _CHECKPOINT)
            self._checkpoint_dirty = False
            self._last_checkpoint = self._clock()

    def checkpoint_if_due(self) -> None:
        with self._lock:
            if self._checkpoint_dirty and self._clock() - self._last_checkpoint >= self._checkpoint_interval:
                self.checkpoint()

    @property
    def unsent(self) -> int:
        return self._unsent

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def stats(self) -> SpoolStats:
        with self._lock:
            unacked = sum(s.records - s.acked_prefix - len(s.acked) for s in self._segments.values())
            return SpoolStats(self._bytes, self._unsent, unacked, len(self._segments), self._corrupt_bytes)

    def close(self) -> None:
        """Sync, checkpoint and release the directory lock; undelivered records stay for the next run."""
        with self._lock:
            self._seal()
            self.checkpoint()
            for segment in self._segments.values():
                if segment.read_fd is not None:
                    os.close(segment.read_fd)
                    segment.read_fd = None
            if self._lock_fd >= 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = -1
