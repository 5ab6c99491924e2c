"""A staged rollout kept in storage, so the process started after a restart or a crash goes on with it.

Why storage (table ``rollouts``, migration 9) and not a compacted Kafka topic like the fleet's desired
symbols: a rollout is run by one process, the one the dashboard holds (the embedded engine or the
attached runtime), and storage is the durable place every mode has (the embedded mode's in-process bus
has no Kafka), where that process's desired symbols and audit trail already live. Changes go through
the write-behind queue (storage/write_behind.py) like those, so a pause or a stage advanced while storage
is down is kept in order and written when it answers; the next process reads the record once, when
storage first answers.

One row per change holds the whole record as JSON (definition and progress) with a revision counting
the rollout's changes; the highest revision of a rollout wins (ReplacingMergeTree(revision), read with
argMax, so rows not merged yet do not matter). The pure half (:func:`encode_record`,
:func:`decode_record`) is separate from the I/O (:class:`RolloutStore`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec

from runtime.rollout import FINAL, RolloutSnapshot, RolloutState
from storage.store import Store
from storage.write_behind import WriteBehind

log = logging.getLogger(__name__)

TABLE = "rollouts"
COLUMNS = ("rollout_id", "revision", "state", "begun_by", "updated_ns", "record")
RECORD_VERSION = 1


class RolloutRecordError(ValueError):
    """A stored rollout record that cannot be read back; the message says what is wrong with it."""


@dataclass(frozen=True)
class RolloutRecord:
    """A rollout as stored: its identity, the options each start takes, and its state machine's snapshot."""

    rollout_id: str
    revision: int  # 1 at begin, one more at each change
    updated_ns: int
    depth: bool
    critical: bool
    snapshot: RolloutSnapshot


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    """The JSON of one record; msgspec checks every type, so a damaged record is named, not half-read."""

    v: int
    rollout_id: str
    revision: int
    updated_ns: int
    depth: bool
    critical: bool
    symbols: list[str]
    targets: list[int]
    by: str
    stall_after_s: float
    stage: int
    state: RolloutState
    paused_from: RolloutState | None
    started_ns: dict[str, int]
    stage_started_ns: int | None
    refused: dict[str, str]
    reasons: list[str]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Wire)


def encode_record(record: RolloutRecord) -> str:
    snap = record.snapshot
    wire = _Wire(RECORD_VERSION, record.rollout_id, record.revision, record.updated_ns, record.depth, record.critical,
                 list(snap.symbols), list(snap.targets), snap.by, snap.stall_after_s, snap.stage, snap.state,
                 snap.paused_from, dict(snap.started_ns), snap.stage_started_ns, dict(snap.refused),
                 list(snap.reasons))
    return _encoder.encode(wire).decode()


def decode_record(text: str) -> RolloutRecord:
    """RolloutRecordError for text that is not a record of a version this code reads."""
    try:
        wire = _decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise RolloutRecordError(f"stored rollout record unreadable: {exc}") from None
    if wire.v != RECORD_VERSION:
        raise RolloutRecordError(f"stored rollout record has version {wire.v}; this code reads version "
                                 f"{RECORD_VERSION}: run the version of TickOps that wrote it, or cancel the rollout")
    unknown = set(wire.started_ns) - set(wire.symbols)
    if unknown:
        raise RolloutRecordError(f"stored rollout {wire.rollout_id} names started symbols outside its list: "
                                 + ", ".join(sorted(unknown)[:10]))
    snapshot = RolloutSnapshot(tuple(wire.symbols), tuple(wire.targets), wire.by, wire.stall_after_s, wire.stage,
                               wire.state, wire.paused_from, wire.started_ns, wire.stage_started_ns, wire.refused,
                               tuple(wire.reasons))
    return RolloutRecord(wire.rollout_id, wire.revision, wire.updated_ns, wire.depth, wire.critical, snapshot)


def latest_unfinished(records: list[RolloutRecord]) -> RolloutRecord | None:
    """The rollout to go on with: the most recently changed one not done, cancelled or halted.

    Only one runs at a time, so more than one unfinished means a process ended between a begin and the
    cancel of the one before; the older ones are left as they are (logged)."""
    unfinished = sorted((r for r in records if r.snapshot.state not in FINAL), key=lambda r: r.updated_ns)
    for older in unfinished[:-1]:
        log.warning("an older unfinished rollout is not resumed", extra={
            "rollout": older.rollout_id, "state": older.snapshot.state.value, "by": older.snapshot.by})
    return unfinished[-1] if unfinished else None


class RolloutStore:
    def __init__(self, store: Store, writes: WriteBehind) -> None:
        self._store = store
        self._writes = writes
        self.unreadable = 0  # stored records skipped because they could not be read back

    def save(self, record: RolloutRecord) -> None:
        """Through the write-behind queue: never waits for storage, never raises a storage error."""
        self._writes.insert(TABLE, COLUMNS, [[record.rollout_id], [record.revision], [record.snapshot.state.value],
                                             [record.snapshot.by], [record.updated_ns], [encode_record(record)]])

    def records(self) -> list[RolloutRecord]:
        """Each stored rollout at its latest revision; raises StorageError. Unreadable ones are counted and
        logged as errors, and skipped."""
        rows = self._store.query(f"SELECT rollout_id, argMax(record, revision) FROM {self._store.table(TABLE)} "
                                 "GROUP BY rollout_id")
        records: list[RolloutRecord] = []
        for rollout_id, text in rows:
            try:
                records.append(decode_record(text))
            except RolloutRecordError as exc:
                self.unreadable += 1
                log.error("stored rollout skipped: its record cannot be read", extra={
                    "rollout": rollout_id, "error": str(exc), "unreadable": self.unreadable})
        return records
