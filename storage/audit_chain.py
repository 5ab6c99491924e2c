"""The audit trail's hash chains, as pure functions: link a record to its predecessor, verify chains.

Several processes append to the trail (each engine instance, tools such as the restore
CLI), so there is one chain per ``source``: record ``seq`` n carries ``prev_hash`` = the
hash of record n-1 of the same source (``GENESIS`` for n = 1), and its own ``hash`` covers
the source, time, actor, action, subject, details and ``prev_hash``. Editing a record
breaks its own hash; deleting one leaves a gap in ``seq``; moving one breaks the links
around it. ``seq`` itself is not hashed: the links prove the order, and contiguity from 1
proves nothing is missing in between. A chain proves nothing about records removed from
its end, nor about a whole chain rewritten with new hashes: so each chain's head is also
kept elsewhere (an :class:`Anchor`, written by storage/audit_anchor.py; every append is logged
with its seq and hash too), and :func:`verify` given anchors reports a chain whose stored
head is behind its anchor (``truncated``) or whose record at the anchored seq is another one
(``rewritten``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

GENESIS = "0" * 64
# Bumped if the hashed fields ever change, so old and new records stay verifiable.
_HASH_VERSION = 1

COLUMNS = ("source", "seq", "ts_ns", "actor", "action", "subject", "details", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditRecord:
    source: str
    seq: int
    ts_ns: int
    actor: str
    action: str
    subject: str
    details: str
    prev_hash: str
    hash: str

    def describe(self) -> str:
        """How a problem report names the record: enough to find it by eye in the trail."""
        return f"{self.source} #{self.seq} ({self.ts_ns} {self.actor} {self.action} {self.subject})"


def record_hash(source: str, ts_ns: int, actor: str, action: str, subject: str, details: str,
                prev_hash: str) -> str:
    """SHA-256 over a canonical JSON array: unambiguous field boundaries, stable across processes."""
    canonical = json.dumps([_HASH_VERSION, source, int(ts_ns), actor, action, subject, details, prev_hash],
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def link(previous: AuditRecord | None, source: str, ts_ns: int, actor: str, action: str, subject: str,
         details: str) -> AuditRecord:
    """The record that follows ``previous`` (None: the chain's first) in ``source``'s chain."""
    if previous is not None and previous.source != source:
        raise ValueError(f"cannot link a record of {source!r} to the chain of {previous.source!r}")
    prev_hash = GENESIS if previous is None else previous.hash
    seq = 1 if previous is None else previous.seq + 1
    return AuditRecord(source, seq, ts_ns, actor, action, subject, details, prev_hash,
                       record_hash(source, ts_ns, actor, action, subject, details, prev_hash))


Problem = Literal["edited", "missing", "reordered", "unlinked", "forked", "truncated", "rewritten"]


@dataclass(frozen=True)
class Anchor:
    """A chain's head as recorded outside storage when it was written."""

    source: str
    seq: int
    hash: str


@dataclass(frozen=True)
class ChainProblem:
    source: str
    seq: int
    kind: Problem
    message: str


@dataclass(frozen=True)
class ChainSummary:
    source: str
    records: int
    head: AuditRecord | None
    copies: int  # exact copies of a record (an insert retried after a lost answer): harmless
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(records: Iterable[AuditRecord], anchors: Iterable[Anchor] = ()) -> list[ChainSummary]:
    """Check every source's chain, and each against its anchors; one summary per source, sorted by source.

    An anchored source with no stored record at all gets a summary too (its whole chain deleted)."""
    by_source: dict[str, list[AuditRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    anchored: dict[str, list[Anchor]] = defaultdict(list)
    for anchor in anchors:
        anchored[anchor.source].append(anchor)
    summaries = []
    for source in sorted(by_source.keys() | anchored.keys()):
        summary = _verify_chain(source, by_source[source])
        behind = [problem for anchor in anchored[source] for problem in _check_anchor(by_source[source], anchor)]
        summaries.append(replace(summary, problems=summary.problems + tuple(behind)))
    return summaries


def _check_anchor(chain: Sequence[AuditRecord], anchor: Anchor) -> list[ChainProblem]:
    head = max((r.seq for r in chain), default=0)
    if head < anchor.seq:
        cut = f"#{head + 1}" if head + 1 == anchor.seq else f"#{head + 1}..#{anchor.seq}"
        return [ChainProblem(anchor.source, anchor.seq, "truncated",
                             f"{anchor.source}: stored head #{head} is behind the anchor's #{anchor.seq} "
                             f"({cut} deleted from the chain's end, or storage restored from an older copy)")]
    at_seq = [r for r in chain if r.seq == anchor.seq]
    if any(r.hash == anchor.hash for r in at_seq):
        return []
    return [ChainProblem(anchor.source, anchor.seq, "rewritten",
                         f"{at_seq[0].describe()}: not the record anchored as #{anchor.seq} "
                         f"(hash {anchor.hash[:16]}…): the chain was rewritten up to there")]


def _verify_chain(source: str, records: Sequence[AuditRecord]) -> ChainSummary:
    unique = sorted(set(records), key=lambda r: (r.seq, r.hash))
    copies = len(records) - len(unique)
    problems: list[ChainProblem] = []
    seq_of_hash = {r.hash: r.seq for r in unique}
    by_seq: dict[int, list[AuditRecord]] = defaultdict(list)
    for record in unique:
        by_seq[record.seq].append(record)

    def report(record: AuditRecord, kind: Problem, message: str) -> None:
        problems.append(ChainProblem(source, record.seq, kind, f"{record.describe()}: {message}"))

    previous: AuditRecord | None = None
    for seq in sorted(by_seq):
        candidates = by_seq[seq]
        for record in candidates:
            if record.hash != record_hash(record.source, record.ts_ns, record.actor, record.action, record.subject,
                                          record.details, record.prev_hash):
                report(record, "edited", "its content does not match its hash (edited after it was written)")
        expected_prev = GENESIS if previous is None else previous.hash
        record = next((r for r in candidates if r.prev_hash == expected_prev), candidates[0])
        if len(candidates) > 1:
            report(record, "forked", f"{len(candidates)} different records claim this seq (a record inserted, or "
                                     f"two processes appending as source {source!r}: give each its own instance_id)")
        expected_seq = 1 if previous is None else previous.seq + 1
        if seq > expected_seq:
            first, last = expected_seq, seq - 1
            gap = f"#{first}" if first == last else f"#{first}..#{last}"
            report(record, "missing", f"{gap} missing before it (deleted, or dropped while storage was down: "
                                      "see the log for 'pending storage write dropped')")
        elif record.prev_hash != expected_prev:
            moved_from = seq_of_hash.get(record.prev_hash)
            if moved_from is not None:
                report(record, "reordered", f"it follows the record stored as #{moved_from}, not #{seq - 1} "
                                            "(records moved)")
            elif record.prev_hash == GENESIS:
                report(record, "unlinked", "it claims to start the chain, but records come before it")
            else:
                report(record, "unlinked", f"it does not follow #{seq - 1} (the record before it was replaced)")
        previous = record
    return ChainSummary(source, len(unique), previous, copies, tuple(problems))
