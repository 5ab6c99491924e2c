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

A full disk (``ENOSPC``, ``EFBIG``, ``EDQUOT``: a short write, then an error) is handled
the same way: a segment only ever holds whole records, because a failed write is cut
back to the last whole record it contains; the records that did not fit are rejected
through :class:`SpoolFull`, the failure is counted and shown in :class:`SpoolStats`, and
the next append simply tries again, so the spool recovers by itself when space returns.
A replayed record whose delivery failed and that cannot be appended again is kept in
memory and served first by :meth:`peek`: it is still on disk, unacknowledged, in its
original segment, so it needs no new space and survives a restart. A damaged record met
during replay (checksum mismatch, torn frame) is cut off with everything after it in
its segment and counted, as recovery at start does: replay never loops on it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bus.throttle import Throttle

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
    unsent: int  # appended, not yet handed out for replay (includes ``redelivering``)
    unacked: int  # appended, delivery not yet acknowledged
    segments: int
    corrupt_bytes: int  # cut at recovery or during replay (torn frame or checksum mismatch)
    write_failures: int = 0  # appends the disk refused (full, too large, quota): alert on any increase
    last_error: str = ""  # the disk's answer to the latest failed write
    failing: bool = False  # the latest write failed and records wait on disk (until a write works or they drain)
    redelivering: int = 0  # failed deliveries the disk could not take back, kept in memory for replay


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
        self._write_failures = 0
        self._last_error = ""
        self._failing = False
        self._failure_log = Throttle(1.0, clock)
        self._redeliver: deque[tuple[Ticket, SpoolRecord]] = deque()  # served by peek before the cursor
        self._peeked_redeliveries = 0
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
                reason = "byte budget reached" if written == accepted else f"disk write failed: {self._last_error}"
                raise SpoolFull(written, len(frames) - written, f"{reason} ({self._bytes} of {self._budget} bytes used)")

    def _write(self, frames: list[bytes]) -> int:
        """Write ``frames`` in order; return how many are on disk whole (the rest were refused by the disk)."""
        written = 0
        while written < len(frames):
            try:
                segment, fd = self._writable()
            except OSError as exc:
                self._write_failed(exc)
                return written
            chunk: list[bytes] = []
            size = segment.size
            while written + len(chunk) < len(frames) and (not chunk or size < self._segment_bytes):
                frame = frames[written + len(chunk)]
                chunk.append(frame)
                size += len(frame)
            kept, error = self._write_chunk(segment, fd, chunk)
            if kept:
                data_bytes = sum(len(frame) for frame in chunk[:kept])
                segment.size += data_bytes
                segment.records += kept
                self._bytes += data_bytes
                self._unsent += kept
                written += kept
                if self._dirty_since is None:
                    self._dirty_since = self._clock()
            if error is not None:
                self._write_failed(error)
                return written
        if frames:
            if self._failing:
                self._failing = False
                log.warning("spool writes work again", extra={"spool": str(self.directory),
                                                             "write_failures": self._write_failures})
            self.sync_if_due()
        return written

    def _write_chunk(self, segment: _Segment, fd: int, chunk: list[bytes]) -> tuple[int, OSError | None]:
        """Append ``chunk`` to ``segment``; return how many frames are on disk whole, and the error that
        stopped the write. A filling disk first writes short, then fails: the write is continued until
        it fails, then cut back to the last whole frame, so a segment never holds a torn record."""
        data = memoryview(b"".join(chunk))
        done = 0
        try:
            while done < len(data):
                count = os.write(fd, data[done:])
                if count == 0:  # never for a regular file; guards the loop against spinning
                    raise OSError(f"os.write wrote nothing ({len(data) - done} bytes left)")
                done += count
            return len(chunk), None
        except OSError as exc:
            kept, end = 0, segment.size
            for frame in chunk:
                if end + len(frame) > segment.size + done:
                    break
                kept, end = kept + 1, end + len(frame)
            self._truncate_active(end)
            return kept, exc

    def _truncate_active(self, size: int) -> None:
        """Cut the active segment to ``size``; when the cut fails, stop appending to it (appends land at the
        file's end, behind the bytes that could not be cut; recovery cuts them at the next start)."""
        try:
            os.ftruncate(self._active_fd, size)
        except OSError as exc:
            log.error("spool could not cut a failed write back; starting a new segment",
                      extra={"spool": str(self.directory), "error": str(exc)})
            self._close_active()

    def _write_failed(self, exc: OSError) -> None:
        self._write_failures += 1
        self._last_error = str(exc)
        self._failing = True
        if self._failure_log.ready():
            log.error("spool write failed (disk full or unwritable); records that did not fit are rejected",
                      extra={"spool": str(self.directory), "error": str(exc), "write_failures": self._write_failures})

    def _writable(self) -> tuple[_Segment, int]:
        if self._active is not None and self._active_fd is not None and self._active.size < self._segment_bytes:
            return self._active, self._active_fd
        self._seal()
        segment = _Segment(self._next_id, self.directory / f"{self._next_id:016d}.seg")
        fd = os.open(segment.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
        self._next_id += 1
        self._segments[segment.id] = segment
        self._active, self._active_fd = segment, fd
        if self._cursor is None:
            self._cursor = (segment.id, 0, 0)
        self._fsync_directory()
        return segment, fd

    def _seal(self) -> None:
        """fsync and close the active segment; a later append starts a new one."""
        fd = self._active_fd
        self._dirty_since = None
        self._active, self._active_fd = None, None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _close_active(self) -> None:
        """Stop appending to the active segment without syncing it (it is in a state fsync cannot fix)."""
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active, self._active_fd = None, None

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """fsync what was appended since the last sync. A failing fsync is counted and logged like a failed
        write, never raised: the records are written, and the caller (an append, a poll) must go on."""
        with self._lock:
            if self._dirty_since is not None and self._active_fd is not None:
                try:
                    os.fsync(self._active_fd)
                except OSError as exc:
                    self._write_failed(exc)
            self._dirty_since = None

    def sync_if_due(self) -> None:
        with self._lock:
            if self._dirty_since is not None and self._clock() - self._dirty_since >= self._fsync_interval:
                self.sync()

    # ------------------------------------------------------------------ replay
    def peek(self, limit: int) -> list[tuple[Ticket, SpoolRecord]]:
        """Up to ``limit`` unsent records, without handing them out yet (see :meth:`advance`): first the
        failed deliveries kept in memory, then the records on disk in append order."""
        with self._lock:
            out: list[tuple[Ticket, SpoolRecord]] = []
            self._peeked = []
            for entry in self._redeliver:
                if len(out) >= limit:
                    break
                out.append(entry)
            self._peeked_redeliveries = len(out)
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
                frames, corrupt = self._read_frames(segment, offset)
                if not frames:
                    self._cut(segment, offset, index, "checksum mismatch" if corrupt else "torn frame")
                    continue
                for _, end, body in frames[: limit - len(out)]:
                    out.append((Ticket(segment_id, index), _decode_body(body)))
                    index += 1
                    offset = end
                    self._peeked.append((segment_id, offset, index))
            return out

    def _read_frames(self, segment: _Segment, offset: int) -> tuple[list[tuple[int, int, bytes]], bool]:
        """The whole frames from ``offset`` on (at least one unless the first is damaged), and whether
        reading stopped at a checksum mismatch."""
        buffer = self._pread(segment, offset, min(_READ_CHUNK, segment.size - offset))
        frames, _, corrupt = _frames(buffer, offset)
        if frames or corrupt or len(buffer) < _FRAME.size:
            return frames, corrupt
        (length, _) = _FRAME.unpack_from(buffer)
        if offset + _FRAME.size + length > segment.size:  # a length that runs past the booked end: torn
            return [], False
        frames, _, corrupt = _frames(self._pread(segment, offset, _FRAME.size + length), offset)  # one big record
        return frames, corrupt

    def _cut(self, segment: _Segment, offset: int, index: int, damage: str) -> None:
        """Drop the damaged record at ``offset`` and everything after it in ``segment``: unreadable, and
        replay must move on (recovery at start makes the same cut)."""
        lost_bytes, lost_records = segment.size - offset, segment.records - index
        log.error(f"spool record cut during replay: {damage}; the rest of its segment is lost",
                  extra={"spool": str(self.directory), "segment": segment.id, "bytes": lost_bytes, "count": lost_records})
        if segment is self._active:
            self._truncate_active(offset)
        else:
            try:
                os.truncate(segment.path, offset)
            except OSError as exc:  # reads stop at the booked size anyway; the next start cuts it again
                log.warning("spool could not truncate a damaged segment", extra={"spool": str(self.directory), "error": str(exc)})
        segment.size, segment.records = offset, index
        self._bytes -= lost_bytes
        self._unsent -= lost_records
        self._corrupt_bytes += lost_bytes
        self._delete_if_delivered(segment)

    def _pread(self, segment: _Segment, offset: int, size: int) -> bytes:
        if segment.read_fd is None:
            segment.read_fd = os.open(segment.path, os.O_RDONLY)
        return os.pread(segment.read_fd, size, offset)

    def advance(self, count: int) -> None:
        """Hand out the first ``count`` records of the last :meth:`peek` (they were sent)."""
        if count <= 0:
            return
        with self._lock:
            if count > self._peeked_redeliveries + len(self._peeked):
                raise ValueError(f"advance({count}) beyond the {self._peeked_redeliveries + len(self._peeked)} records peeked")
            from_memory = min(count, self._peeked_redeliveries)
            for _ in range(from_memory):
                self._redeliver.popleft()
            if count > from_memory:
                self._cursor = self._peeked[count - from_memory - 1]
            self._unsent -= count
            self._peeked = []
            self._peeked_redeliveries = 0

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
            self._delete_if_delivered(segment)

    def requeue(self, ticket: Ticket, record: SpoolRecord) -> None:
        """A handed-out record failed delivery: append it again at the tail, then ack the old copy. When the
        disk refuses the append, the old copy stays (unacknowledged) and the record waits in memory for
        the next replay: counted in ``unsent`` and ``redelivering``, never stranded."""
        with self._lock:
            try:
                self.append([record], over_budget=True)
            except SpoolFull:
                self._redeliver.append((ticket, record))
                self._unsent += 1
                return
            self.ack(ticket)

    def _delete_if_delivered(self, segment: _Segment) -> None:
        if segment.acked_prefix < segment.records:
            return
        if segment is self._active:
            if self._unsent:
                return
            self._seal()
        self._delete(segment)

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
        """Persist how much of each segment is delivered, so a restart does not replay it. On a full disk the
        old checkpoint stays and this is retried at the next interval: a restart would only replay records
        already delivered (deduplicated downstream), so it is logged, not raised into the caller's poll."""
        with self._lock:
            if not self._checkpoint_dirty:
                return
            acked = {str(s.id): s.acked_prefix for s in self._segments.values() if s.acked_prefix}
            tmp = self.directory / (_CHECKPOINT + ".tmp")
            self._last_checkpoint = self._clock()
            try:
                with open(tmp, "wb") as handle:
                    handle.write(msgspec.json.encode({"acked": acked}))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.directory / _CHECKPOINT)
            except OSError as exc:
                if self._failure_log.ready():
                    log.warning("spool checkpoint not written; a restart may replay delivered records",
                                extra={"spool": str(self.directory), "error": str(exc)})
                return
            self._checkpoint_dirty = False

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
            failing = self._failing and self._bytes > 0  # with nothing waiting, a full disk puts nothing at risk
            return SpoolStats(self._bytes, self._unsent, unacked, len(self._segments), self._corrupt_bytes,
                              self._write_failures, self._last_error, failing, len(self._redeliver))

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
