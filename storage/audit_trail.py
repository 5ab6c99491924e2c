"""The audit trail in storage: chained appends through the write-behind queue, filtered reads.

An operator action must never wait for storage, yet its record can only be chained once
the chain's head is known, and the head of a chain that survives restarts lives in
storage. So a record is queued with its content fixed at the time of the action, and is
linked (seq, prev_hash, hash) only when its turn to be written comes
(:class:`storage.write_behind.DeferredRows`): the head is read from storage then, once per
process, and advances only when an insert succeeded. A record refused for good or dropped
from a full queue therefore leaves no gap (it is logged as an error by the queue), and an
insert retried after a lost answer writes an exact copy, which verification ignores.

Details that depend on the previous record of the same action (what changed since the
previous start) are computed at that moment too, once, from that record's details.

A record waiting while storage is down is journaled by the queue (its content, not its
link) and rebuilt by :meth:`AuditTrail._revive` in the next process, which links it when it
is written. Details that depend on the previous record cannot be journaled as a function:
they are journaled as computed with the previous record unreadable (``PREVIOUS_UNREADABLE``),
which it was while storage was down.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from storage.audit_anchor import AnchorError, record_head
from storage.audit_chain import COLUMNS, AuditRecord, link
from storage.store import StorageError, Store, sql_string
from storage.write_behind import WriteBehind

log = logging.getLogger(__name__)

TABLE = "audit_trail"
LEGACY_TABLE = "audit_log"  # unchained entries written before migration 5

# Given the details of the previous record of the same source and action (None: there is none),
# the details of the new one.
DetailsAfter = Callable[[str | None], str]
# What DetailsAfter is given for a journaled record: the previous record could not be read when it was taken.
PREVIOUS_UNREADABLE = ""
JOURNAL_KIND = "audit_record"


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page asks for; empty tuples and None mean "any"."""

    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None  # exclusive


class AuditTrail:
    """Appends the records of one source's chain."""

    def __init__(self, store: Store, writes: WriteBehind, source: str,
                 clock_ns: Callable[[], int] = time.time_ns, anchor: Path | None = None) -> None:
        """``anchor``: the file that keeps each chain's head outside storage (storage/audit_anchor.py)."""
        if not source:
            raise ValueError("an audit source must not be empty: use the instance id or the tool's name")
        self._store = store
        self._writes = writes
        self.source = source
        self._clock_ns = clock_ns
        self._anchor = anchor
        self._head: AuditRecord | None = None
        self._head_known = False
        self._lock = threading.Lock()  # the write-behind flushes from one thread at a time; tests may read
        writes.revive_with(JOURNAL_KIND, self._revive)

    def append(self, actor: str, action: str, subject: str, details: str | DetailsAfter = "",
               ts_ns: int | None = None) -> PendingRecord:
        pending = PendingRecord(self, Action(ts_ns or self._clock_ns(), actor, action, subject), details)
        self._writes.insert(TABLE, COLUMNS, pending)
        return pending

    @property
    def head(self) -> AuditRecord | None:
        """The last record this process knows stored in its chain (None before the first write)."""
        with self._lock:
            return self._head

    def _revive(self, content: Mapping[str, Any]) -> PendingRecord:
        """A record read back from the write-behind journal of a previous process, to be linked when written."""
        source = str(content["source"])
        trail = self if source == self.source else AuditTrail(self._store, self._writes, source, self._clock_ns,
                                                                   self._anchor)
        taken = Action(int(content["ts_ns"]), str(content["actor"]), str(content["action"]), str(content["subject"]))
        return PendingRecord(trail, taken, str(content["details"]))

    def _next(self, taken: Action, details: str | DetailsAfter) -> AuditRecord:
        with self._lock:
            if not self._head_known:
                self._head = last_record(self._store, self.source)
                self._head_known = True
            head = self._head
        if not isinstance(details, str):
            details = details(previous_details(self._store, self.source, taken.action))
        return link(head, self.source, taken.ts_ns, taken.actor, taken.action, taken.subject, details)

    def _stored(self, record: AuditRecord) -> None:
        with self._lock:
            self._head = record
        log.info("audit record stored", extra={"source": record.source, "seq": record.seq, "hash": record.hash,
                                               "action": record.action, "actor": record.actor})
        if self._anchor is not None:
            try:
                record_head(self._anchor, record)
            except AnchorError as exc:
                log.error("audit anchor not updated: a later truncation of this chain would not be detected",
                          extra={"source": record.source, "seq": record.seq, "error": str(exc)})


@dataclass(frozen=True)
class Action:
    """What was done, fixed when it happened; its place in the chain comes later."""

    ts_ns: int
    actor: str
    action: str
    subject: str


class PendingRecord:
    """One action waiting for its place in the chain (the write-behind queue's DeferredRows).

    The record is computed once, on the first attempt: a retry must write the very same record
    (details included), or the chain would fork.
    """

    journal_kind = JOURNAL_KIND

    def __init__(self, trail: AuditTrail, taken: Action, details: str | DetailsAfter) -> None:
        self._trail = trail
        self.taken = taken
        self._details = details
        self._record: AuditRecord | None = None
        self.record: AuditRecord | None = None  # set once stored

    def rows(self) -> list[list[Any]]:
        if self._record is None:
            self._record = self._trail._next(self.taken, self._details)
        return [[value] for value in astuple(self._record)]

    def journal_content(self) -> dict[str, Any]:
        """The action's content, for the write-behind journal (its link is given when it is written)."""
        details = self._details
        if self._record is not None:
            details = self._record.details
        elif not isinstance(details, str):
            details = details(PREVIOUS_UNREADABLE)
        return {"source": self._trail.source, "ts_ns": self.taken.ts_ns, "actor": self.taken.actor,
                "action": self.taken.action, "subject": self.taken.subject, "details": details}

    def stored(self) -> None:
        assert self._record is not None, "stored() follows rows()"
        self.record = self._record
        self._trail._stored(self._record)


def _records(rows: Sequence[Sequence[Any]]) -> list[AuditRecord]:
    return [AuditRecord(str(source), int(seq), int(ts), str(actor), str(action), str(subject), str(details),
                        str(prev_hash), str(hash_)) for source, seq, ts, actor, action, subject, details, prev_hash, hash_
            in rows]


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM "


def last_record(store: Store, source: str) -> AuditRecord | None:
    rows = store.query(f"{_SELECT}{store.table(TABLE)} WHERE source = {sql_string(source)} "
                       "ORDER BY seq DESC, hash LIMIT 1")
    return _records(rows)[0] if rows else None


def previous_details(store: Store, source: str, action: str) -> str | None:
    """The details of the latest stored record of ``source`` with ``action``, or None."""
    rows = store.query(f"SELECT details FROM {store.table(TABLE)} WHERE source = {sql_string(source)} "
                       f"AND action = {sql_string(action)} ORDER BY seq DESC LIMIT 1")
    return str(rows[0][0]) if rows else None


def all_records(store: Store) -> list[AuditRecord]:
    """Every record of every chain, for verification."""
    return _records(store.query(f"{_SELECT}{store.table(TABLE)} ORDER BY source, seq"))


def read_records(store: Store, where: AuditFilter = AuditFilter(), limit: int = 1000) -> list[AuditRecord]:
    """Records matching ``where``, newest first."""
    conditions = []
    if where.actors:
        conditions.append(f"actor IN ({', '.join(map(sql_string, where.actors))})")
    if where.actions:
        conditions.append(f"action IN ({', '.join(map(sql_string, where.actions))})")
    if where.since_ns is not None:
        conditions.append(f"ts_ns >= {int(where.since_ns)}")
    if where.until_ns is not None:
        conditions.append(f"ts_ns < {int(where.until_ns)}")
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return _records(store.query(f"{_SELECT}{store.table(TABLE)}{clause} "
                                f"ORDER BY ts_ns DESC, source, seq DESC LIMIT {int(limit)}"))


def distinct_values(store: Store, column: str) -> list[str]:
    """The actors or actions present, for the page's filter choices."""
    if column not in ("actor", "action"):
        raise ValueError(f"no filter on audit column {column!r}")
    return [str(value) for (value,) in store.query(f"SELECT DISTINCT {column} FROM {store.table(TABLE)} "
                                                   f"ORDER BY {column}")]


def legacy_count(store: Store) -> int:
    """Entries in the unchained audit_log of releases before the trail (not verifiable)."""
    return int(store.query(f"SELECT count() FROM {store.table(LEGACY_TABLE)}")[0][0])


def process_actor() -> str:
    """Who runs this process (the OS user): the actor of what a process does on its own, such as a start."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor in the password database (a bare container)
        return f"uid:{os.getuid()}"


def record_tool_action(store: Store, tool: str, action: str, subject: str, details: str = "",
                       anchor: Path | None = None) -> AuditRecord:
    """Append one record to ``tool``'s chain now, for a command-line tool that must not act unaudited.

    ``anchor``: the data_dir's anchor file (storage/audit_anchor.py). Raises :class:`StorageError`
    when the record was not stored (the tool should then stop).
    """
    writes = WriteBehind(store)
    pending = AuditTrail(store, writes, tool, anchor=anchor).append(process_actor(), action, subject, details)
    writes.flush()
    if pending.record is None:
        raise StorageError(f"the audit record of {tool} {action} was not stored (see the log)")
    return pending.record
