"""The write-behind queue's on-disk journal: operator records kept while storage is down survive a stop.

Memory alone loses them when the process stops (SIGTERM, crash, host reboot) before storage
returns, and they are the records an operator cannot re-create: acknowledgements, audit
records, desired symbols. So every entry the queue holds for storage is also appended to
an append-only JSON-lines file, flushed and fsynced before ``insert`` returns, and each
entry that leaves the queue (stored, refused for good, dropped by the bound) is marked
done by a later line; a later line with an entry's id replaces it (rows computed at write
time replacing the content they were computed from). At the next start the file is read back: the entries not marked
done, in order. When the queue empties the file is removed.

A crash mid-write leaves a torn last line: it is cut off, counted and logged, the rest is
kept. Values are plain column data; the types JSON has no form for (datetimes, dates,
decimals, bytes, non-finite floats) are tagged so they come back as the same values.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import msgspec

log = logging.getLogger(__name__)

_TAG = "$"  # a one-key object {"$": [kind, text]} is a tagged value; plain objects never occur in column data


class JournalError(Exception):
    """The journal could not be written or read back; the entries stay in memory only."""


def encode_value(value: Any) -> Any:
    """A column value as JSON can hold it (tagged when JSON has no exact form for it)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_TAG: ["float", repr(value)]}
    if isinstance(value, datetime):
        return {_TAG: ["datetime", value.isoformat()]}
    if isinstance(value, date):
        return {_TAG: ["date", value.isoformat()]}
    if isinstance(value, Decimal):
        return {_TAG: ["decimal", str(value)]}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: ["bytes", base64.b64encode(value).decode()]}
    if isinstance(value, (list, tuple)):
        return [encode_value(item) for item in value]
    raise JournalError(f"a {type(value).__name__} cannot be journaled: store plain column values")


_DECODERS = {
    "float": float,
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "bytes": base64.b64decode,
}


def decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if isinstance(value, dict):
        kind, text = value[_TAG]
        return _DECODERS[kind](text)
    return value


@dataclass(frozen=True)
class JournalEntry:
    """One queued write as the journal holds it.

    ``data``: the column-wise rows of a plain insert; or, for rows computed only when written
    (``DeferredRows``), ``kind`` names how to rebuild them and ``data`` is their content.
    """

    id: int
    table: str
    columns: tuple[str, ...]
    data: Any
    kind: str = ""


@dataclass
class Replay:
    """What a journal held at start: its open entries in order, and how many torn lines were cut."""

    entries: list[JournalEntry] = field(default_factory=list)
    torn: int = 0


def parse(lines: Iterable[bytes]) -> Replay:
    """The open entries of a journal's lines (pure). A line that does not parse is torn: counted, skipped."""
    entries: dict[int, JournalEntry] = {}
    replay = Replay()
    for line in lines:
        if not line.strip():
            continue
        try:
            record = msgspec.json.decode(line)
            if "done" in record:
                entries.pop(int(record["done"]), None)
                continue
            kind = str(record.get("k", ""))
            data = record["d"] if kind else [decode_value(column) for column in record["d"]]
            entries[int(record["n"])] = JournalEntry(int(record["n"]), str(record["t"]), tuple(record["c"]), data,
                                                     kind)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            replay.torn += 1
    replay.entries = [entries[n] for n in sorted(entries)]
    return replay


def entry_line(entry: JournalEntry) -> bytes:
    data = entry.data if entry.kind else [encode_value(list(column)) for column in entry.data]
    record: dict[str, Any] = {"n": entry.id, "t": entry.table, "c": list(entry.columns), "d": data}
    if entry.kind:
        record["k"] = entry.kind
    return msgspec.json.encode(record) + b"\n"


def done_line(entry_id: int) -> bytes:
    return msgspec.json.encode({"done": entry_id}) + b"\n"


class Journal:
    """One process's journal file (one per audit source: processes sharing a data_dir keep apart).

    Held under an exclusive lock from :meth:`replay` to :meth:`close`: two processes with the same
    audit source would otherwise mark and remove each other's entries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next_id = 1
        self._lock: IO[bytes] | None = None

    def replay(self) -> list[JournalEntry]:
        """Take the journal, read back its open entries and rewrite it with only them (a torn tail is cut here)."""
        self._take()
        try:
            with open(self.path, "rb") as file:
                replay = parse(file)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise JournalError(f"cannot read the write-behind journal {self.path}: {exc}") from exc
        if replay.torn:
            log.error("write-behind journal: torn lines cut off (a crash while writing)",
                      extra={"path": str(self.path), "torn": replay.torn, "kept": len(replay.entries)})
        self._next_id = max((entry.id for entry in replay.entries), default=0) + 1
        self._rewrite(replay.entries)
        return replay.entries

    def _take(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_name(self.path.name + ".lock"), "ab")
        except OSError as exc:
            raise JournalError(f"cannot open the write-behind journal's lock beside {self.path}: {exc}") from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            raise JournalError(f"the write-behind journal {self.path} is in use by another process with the same "
                               "audit source: give each process its own instance_id") from exc
        self._lock = lock

    def _check_taken(self) -> None:
        if self._lock is None:
            raise JournalError(f"the write-behind journal {self.path} is not held by this process (see the error "
                               "logged when it was read back)")

    def close(self) -> None:
        """Let the next process take the journal (what it holds stays for that process to replay)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def next_id(self) -> int:
        entry_id = self._next_id
        self._next_id += 1
        return entry_id

    def append(self, entry: JournalEntry) -> None:
        self._append(entry_line(entry))

    def done(self, entry_id: int) -> None:
        self._append(done_line(entry_id))

    def clear(self) -> None:
        """The queue is empty: nothing is left to replay."""
        self._check_taken()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot remove the write-behind journal {self.path}: {exc}") from exc

    def _append(self, line: bytes) -> None:
        self._check_taken()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write the write-behind journal {self.path}: {exc}") from exc

    def _rewrite(self, entries: list[JournalEntry]) -> None:
        if not entries:
            self.clear()
            return
        temporary = self.path.with_suffix(".tmp")
        try:
            with open(temporary, "wb") as file:
                file.writelines(entry_line(entry) for entry in entries)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise JournalError(f"cannot compact the write-behind journal {self.path}: {exc}") from exc
