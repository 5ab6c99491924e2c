"""The backup segment file format: one place that writes, repairs and reads it.

A segment (``<stamp>-<instance>-<n>.seg.zst``) is a sequence of independent zstd frames,
one per flush, each with a content checksum. A frame's content is a run of records,
each a little-endian ``uint32`` length followed by the msgspec msgpack of one event;
events are tagged by ``kind``, so a segment decodes without any outside schema.

Why frames per flush: a crash mid-write leaves at most one torn frame at the tail,
and the complete frames before it still decompress, so :func:`repair_segment` can cut
the tail and keep everything that was flushed. A segment is *sealed* when its manifest
(``<segment>.manifest.json``) exists: counts, per-source first/last seq, the ts_ns and
recv_ns ranges and the sha256 of the compressed file, written atomically (temp file,
fsync, rename). Readers (restore, reconcile) verify the sha256 before trusting a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import zstandard

from events import SCHEMA_VERSION, Event

log = logging.getLogger(__name__)

FORMAT = "tickops-backup-segment"
FORMAT_VERSION = 1
SEGMENT_SUFFIX = ".seg.zst"
MANIFEST_SUFFIX = ".manifest.json"
_TMP_SUFFIX = ".tmp"
_LENGTH = struct.Struct("<I")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_CHUNK = 128 * 1024
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{12}Z)-(?P<instance>.+)-(?P<index>\d{6})" + re.escape(SEGMENT_SUFFIX) + "$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)
_manifest_decoder = msgspec.json.Decoder()


class SegmentError(RuntimeError):
    """A segment cannot be trusted or read; the message names the file and what to do."""


class ChecksumMismatch(SegmentError):
    """The file's sha256 differs from its manifest: it changed after sealing (disk fault, edit)."""


class ManifestMissing(SegmentError):
    """The segment is not sealed: it is being written, or a crash left it for repair."""


class SourceSeq(msgspec.Struct):
    """First and last ``seq`` of one source in a segment, in append order, and how many events."""

    first_seq: int
    last_seq: int
    count: int


class Manifest(msgspec.Struct, kw_only=True):
    """What a sealed segment holds, written beside it so tools can choose and verify segments unopened."""

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    schema_version: int = SCHEMA_VERSION
    segment: str
    instance_id: str
    count: int
    frames: int
    bytes: int
    sha256: str
    kinds: dict[str, int]
    sources: dict[str, SourceSeq]
    first_ts_ns: int | None
    last_ts_ns: int | None
    first_recv_ns: int | None
    last_recv_ns: int | None
    created_ns: int
    closed_ns: int
    created: str
    closed: str
    recovered: bool = False
    discarded_tail_bytes: int = 0

    def overlaps(self, since_ns: int | None, until_ns: int | None) -> bool:
        """True when the segment's event-time range meets [since, until); unknown ranges always meet."""
        if self.first_ts_ns is None or self.last_ts_ns is None:
            return since_ns is None and until_ns is None
        if since_ns is not None and self.last_ts_ns < since_ns:
            return False
        return until_ns is None or self.first_ts_ns < until_ns


_KIND_OF: dict[type, str] = {}


def kind_of(event: Event) -> str:
    """The ``kind`` tag of an event (cached per type: this runs once per appended event)."""
    cls = type(event)
    kind = _KIND_OF.get(cls)
    if kind is None:
        kind = _KIND_OF[cls] = str(cls.__struct_config__.tag)
    return kind


class SegmentStats:
    """Manifest figures accumulated event by event, mergeable so a flushed frame adds to its segment."""

    __slots__ = ("count", "kinds", "recv_max", "recv_min", "sources", "ts_max", "ts_min")

    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.sources: dict[str, list[int]] = {}  # source -> [first_seq, last_seq, count]
        self.ts_min: int | None = None
        self.ts_max: int | None = None
        self.recv_min: int | None = None
        self.recv_max: int | None = None

    def add(self, event: Event) -> None:
        self.count += 1
        kind = kind_of(event)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        entry = self.sources.get(event.source)
        if entry is None:
            self.sources[event.source] = [event.seq, event.seq, 1]
        else:
            entry[1] = event.seq
            entry[2] += 1
        ts = getattr(event, "ts_ns", 0)
        if ts:
            if self.ts_min is None or ts < self.ts_min:
                self.ts_min = ts
            if self.ts_max is None or ts > self.ts_max:
                self.ts_max = ts
        recv = event.recv_ns
        if recv:
            if self.recv_min is None or recv < self.recv_min:
                self.recv_min = recv
            if self.recv_max is None or recv > self.recv_max:
                self.recv_max = recv

    def merge(self, other: SegmentStats) -> None:
        """Add ``other`` (later events) to these figures."""
        self.count += other.count
        for kind, n in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + n
        for source, (first, last, n) in other.sources.items():
            entry = self.sources.get(source)
            if entry is None:
                self.sources[source] = [first, last, n]
            else:
                entry[1] = last
                entry[2] += n
        self.ts_min = _lesser(self.ts_min, other.ts_min)
        self.ts_max = _greater(self.ts_max, other.ts_max)
        self.recv_min = _lesser(self.recv_min, other.recv_min)
        self.recv_max = _greater(self.recv_max, other.recv_max)

    def manifest(
        self,
        segment: Path,
        *,
        instance_id: str,
        frames: int,
        size: int,
        sha256: str,
        created_ns: int,
        closed_ns: int,
        recovered: bool = False,
        discarded_tail_bytes: int = 0,
    ) -> Manifest:
        return Manifest(
            segment=segment.name,
            instance_id=instance_id,
            count=self.count,
            frames=frames,
            bytes=size,
            sha256=sha256,
            kinds=dict(sorted(self.kinds.items())),
            sources={s: SourceSeq(first, last, n) for s, (first, last, n) in sorted(self.sources.items())},
            first_ts_ns=self.ts_min,
            last_ts_ns=self.ts_max,
            first_recv_ns=self.recv_min,
            last_recv_ns=self.recv_max,
            created_ns=created_ns,
            closed_ns=closed_ns,
            created=iso_utc(created_ns),
            closed=iso_utc(closed_ns),
            recovered=recovered,
            discarded_tail_bytes=discarded_tail_bytes,
        )


def _lesser(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _greater(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def iso_utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_record(event: Event, buffer: bytearray) -> None:
    """Append one length-prefixed msgpack record to ``buffer``; raises if the event cannot be encoded."""
    start = len(buffer)
    buffer += b"\0\0\0\0"
    try:
        _encoder.encode_into(event, buffer, -1)
    except Exception:
        del buffer[start:]
        raise
    _LENGTH.pack_into(buffer, start, len(buffer) - start - 4)


def decode_records(payload: bytes | memoryview) -> list[Event]:
    """The events of one decompressed frame; raises :class:`SegmentError` on a malformed record."""
    view = memoryview(payload)
    events: list[Event] = []
    offset, end = 0, len(view)
    while offset < end:
        if offset + 4 > end:
            raise SegmentError(f"record header cut at byte {offset} of a {end}-byte frame")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise SegmentError(f"record of {length} bytes at byte {offset} overruns a {end}-byte frame")
        try:
            events.append(_decoder.decode(view[offset : offset + length]))
        except msgspec.DecodeError as exc:
            raise SegmentError(f"undecodable record at byte {offset} (newer schema or corruption): {exc}") from exc
        offset += length
    return events


def new_compressor(level: int) -> zstandard.ZstdCompressor:
    """Frames carry a checksum (corruption is detected) and their size (fast, exact decode)."""
    return zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)


@dataclass(frozen=True)
class Frame:
    """One complete zstd frame: where it ends in the file and its decompressed records."""

    end: int
    payload: bytes


def iter_frames(data: bytes) -> Iterator[Frame]:
    """Complete frames in order; stops silently at a torn tail.

    A torn tail is an unfinished last frame, or bytes that fail to decode with no frame
    start after them (a crash can leave zero-filled blocks). A bad frame followed by
    another frame is corruption, not a crash, and raises :class:`SegmentError`.
    """
    view = memoryview(data)
    offset, size = 0, len(data)
    decompressor = zstandard.ZstdDecompressor()
    while offset < size:
        # Fed in chunks: the reader copies what follows a frame's end into unused_data,
        # so handing it the whole rest of the file would make reading quadratic.
        reader = decompressor.decompressobj()
        parts: list[bytes] = []
        position = offset
        try:
            while not reader.eof and position < size:
                chunk = view[position : position + _READ_CHUNK]
                position += len(chunk)
                parts.append(reader.decompress(chunk))
        except zstandard.ZstdError as exc:
            if not _complete_frame_after(data, offset + 1):
                return
            raise SegmentError(f"corrupt zstd frame at byte {offset}: {exc}") from exc
        if not reader.eof:
            return
        offset = position - len(reader.unused_data)
        yield Frame(offset, b"".join(parts))


def _complete_frame_after(data: bytes, start: int) -> bool:
    """Whether a whole, valid frame starts anywhere after ``start`` (the frame magic alone can occur by chance)."""
    position = data.find(_ZSTD_MAGIC, start)
    while position >= 0:
        reader = zstandard.ZstdDecompressor().decompressobj()
        try:
            reader.decompress(data[position:])
            if reader.eof:
                return True
        except zstandard.ZstdError:
            pass
        position = data.find(_ZSTD_MAGIC, position + 1)
    return False


def safe_instance(instance_id: str) -> str:
    """The instance id as it appears in file names (path separators and odd characters replaced)."""
    return _UNSAFE.sub("_", instance_id) or "_"


def segment_name(instance_id: str, created_ns: int, index: int) -> str:
    """Names sort by creation time, so a directory listing is already oldest first."""
    stamp = datetime.fromtimestamp(created_ns // 1_000_000_000, UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}{created_ns // 1000 % 1_000_000:06d}Z-{safe_instance(instance_id)}-{index:06d}{SEGMENT_SUFFIX}"


def segment_instance(path: Path) -> str | None:
    """The (file-name safe) instance id a segment was written by, or None for a foreign name."""
    match = _NAME.match(path.name)
    return match["instance"] if match else None


def manifest_path(segment: Path) -> Path:
    return segment.with_name(segment.name + MANIFEST_SUFFIX)


def is_sealed(segment: Path) -> bool:
    return manifest_path(segment).exists()


def list_segments(directory: Path) -> list[Path]:
    """Every segment file (sealed or not) in ``directory``, oldest first; [] if it does not exist."""
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX) and p.is_file())
    except FileNotFoundError:
        return []


def read_manifest(segment: Path) -> Manifest:
    path = manifest_path(segment)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestMissing(
            f"{segment} has no manifest: it is still being written or a crash left it unsealed "
            f"(starting the backup writer repairs it; --force reads it unverified)"
        ) from None
    try:
        return msgspec.convert(_manifest_decoder.decode(raw), Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SegmentError(f"{path} is not a valid manifest: {exc}") from exc


def write_manifest(segment: Path, manifest: msgspec.Struct) -> Path:
    """Atomically write the manifest: it seals the segment (or any other backup file: operator snapshots
    and mirrored copies use the same sealing)."""
    path = manifest_path(segment)
    write_atomically(path, msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    return path


def write_atomically(path: Path, body: bytes) -> None:
    """Write ``body`` to ``path`` whole or not at all: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    try:
        with tmp.open("wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a create/rename/unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path, instance_id: str) -> None:
    """An instance's half-written manifests from a crash during sealing; the segment is repaired instead."""
    suffix = MANIFEST_SUFFIX + _TMP_SUFFIX
    for path in directory.glob(f"*{suffix}"):
        if segment_instance(path.with_name(path.name[: -len(suffix)])) == safe_instance(instance_id):
            path.unlink(missing_ok=True)


def repair_segment(segment: Path, *, instance_id: str, now_ns: int) -> Manifest | None:
    """Seal a segment left unsealed by a crash or a failed seal.

    Keeps every complete frame, truncates a torn tail, and writes a manifest marked
    ``recovered``. A segment with no complete frame is deleted (it holds nothing) and
    None is returned. Raises ``OSError`` when the disk refuses (the caller retries) and
    :class:`SegmentError` on corruption in the middle of the file (left for an operator).
    """
    data = segment.read_bytes()
    stats = SegmentStats()
    good = frames = 0
    for frame in iter_frames(data):
        for event in decode_records(frame.payload):
            stats.add(event)
        good = frame.end
        frames += 1
    discarded = len(data) - good
    if frames == 0:
        segment.unlink()
        log.warning("empty unsealed backup segment removed", extra={"segment": str(segment), "bytes": len(data)})
        return None
    if discarded:
        os.truncate(segment, good)
    created_ns = segment.stat().st_ctime_ns
    match = _NAME.match(segment.name)
    if match:
        stamp = datetime.strptime(match["stamp"][:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        created_ns = int(stamp.timestamp()) * 1_000_000_000 + int(match["stamp"][15:21]) * 1000
    manifest = stats.manifest(
        segment,
        instance_id=instance_id,
        frames=frames,
        size=good,
        sha256=hashlib.sha256(data[:good]).hexdigest(),
        created_ns=created_ns,
        closed_ns=now_ns,
        recovered=True,
        discarded_tail_bytes=discarded,
    )
    write_manifest(segment, manifest)
    log.warning(
        "unsealed backup segment repaired",
        extra={"segment": str(segment), "events": stats.count, "frames": frames, "discarded_tail_bytes": discarded},
    )
    return manifest


@dataclass(frozen=True)
class VerifiedSegment:
    """A segment's bytes, checked against its manifest (None when read unsealed with force).

    Events are decoded frame by frame by :meth:`batches`, so replaying a 64 MB segment
    never holds all of its millions of events in memory at once.
    """

    path: Path
    manifest: Manifest | None
    data: bytes

    def batches(self) -> Iterator[list[Event]]:
        for frame in iter_frames(self.data):
            yield decode_records(frame.payload)


def verify_segment(segment: Path, *, force: bool = False) -> VerifiedSegment:
    """Read a segment and verify its sha256 against its manifest.

    Raises :class:`ManifestMissing` for an unsealed segment and :class:`ChecksumMismatch`
    when the sha256 differs; with ``force`` both are logged and the complete frames are
    read anyway (a torn tail is skipped, as a repair would).
    """
    try:
        manifest: Manifest | None = read_manifest(segment)
    except ManifestMissing:
        if not force:
            raise
        log.warning("reading an unsealed segment without verification", extra={"segment": str(segment)})
        manifest = None
    data = segment.read_bytes()
    if manifest is not None:
        _check_compatible(segment, manifest)
        actual = hashlib.sha256(data).hexdigest()
        if actual != manifest.sha256:
            if not force:
                raise ChecksumMismatch(
                    f"{segment}: sha256 {actual} does not match its manifest ({manifest.sha256}); the "
                    f"file changed after it was sealed. Skipped; --force replays its readable frames"
                )
            log.warning("replaying a segment whose checksum does not match", extra={"segment": str(segment)})
    return VerifiedSegment(segment, manifest, data)


def _check_compatible(segment: Path, manifest: Manifest) -> None:
    if manifest.format != FORMAT or manifest.format_version > FORMAT_VERSION:
        raise SegmentError(f"{segment}: format {manifest.format} v{manifest.format_version} is not readable by this version")
    if manifest.schema_version > SCHEMA_VERSION:
        raise SegmentError(
            f"{segment}: written with event schema v{manifest.schema_version}, newer than this code's "
            f"v{SCHEMA_VERSION}; restore with the newer TickOps"
        )
