"""Redundancy in a collector fleet (``fleet.standby_critical``): what a hot standby publishes, and the
consistency check between the two instances watching a critical symbol.

    ingest ──► Redundancy.publishable: the events of symbols watched only as standby are kept off the
               data topics except trades (stored once by content identity); counted as "standby events
               not published". Quotes, depth and status keep a per-source identity, so only the owner's go.
           ──► Redundancy.record: trades of watched critical symbols into per-minute digests
    job    ──► Redundancy.step: closed minutes' digests to <prefix>.consistency (compacted, key =
               symbol|minute|instance); the rules owner pairs them (runtime/consistency.py), deletes the
               pairs it compared and keeps the differences for the ``feed_inconsistent`` rule.

Digests go through Kafka rather than a ClickHouse table: they are coordination between live
instances, like the fleet's statuses, and must keep flowing while storage is down; the topic holds
only the minutes not yet compared (compared ones are deleted), so it stays small.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bus.base import BusError
from bus.keyed_topic import KeyedTopicReader, KeyedTopicWriter, ensure_compacted_topic
from bus.security import librdkafka_security
from config import Settings
from events import Event, Trade
from runtime.consistency import CheckStats, ConsistencyCheck, DigestBook, Verdict, encode_digest

log = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 1.0
# A difference found stays alerted this long; the alert resolves after it unless another minute differs.
MISMATCH_SHOWN_S = 3600.0
TOPIC_CONFIGS = {"segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": "3600000"}


def consistency_topic(prefix: str) -> str:
    return f"{prefix}.consistency"


@dataclass(frozen=True)
class RedundancyStats:
    standby: frozenset[str]  # symbols this instance watches only as hot standby
    standby_unfitted: tuple[str, ...]  # standby symbols beyond its watch limit (not watched here)
    standby_unpublished: int  # events of standby symbols kept off the data topics (all but trades)
    digests_published: int
    digests_late: int  # trades that arrived for a minute already closed
    check: CheckStats | None  # the rules owner's comparisons; None elsewhere


class Redundancy:
    """One instance's side of hot standby and the consistency check; ``publishable``/``record`` from the
    ingest path, ``step`` from one job."""

    def __init__(self, settings: Settings, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        kafka = settings.kafka
        self.instance_id = settings.instance_id
        self._close_after_ns = int(settings.fleet.consistency_close_s * 1e9)
        self._bootstrap = kafka.bootstrap_servers
        self._replication = kafka.replication_factor
        self._security = librdkafka_security(kafka)
        self.topic = consistency_topic(kafka.topic_prefix)
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self.standby: frozenset[str] = frozenset()
        self.unfitted: tuple[str, ...] = ()
        self._critical: frozenset[str] = frozenset()  # watched critical symbols, owned or standby: digested
        self._unpublished = 0
        self._published = 0
        self._book = DigestBook(self.instance_id)
        self.check = ConsistencyCheck(int(settings.fleet.consistency_wait_s * 1e9), int(MISMATCH_SHOWN_S * 1e9))
        self._writer = KeyedTopicWriter(self._bootstrap, client_id=f"{self.instance_id}-consistency",
                                        security=self._security)
        self._reader = KeyedTopicReader(self._bootstrap, self.topic, client_id=f"{self.instance_id}-consistency",
                                        security=self._security)
        self._ready = False
        self._setup_error = ""
        self._rules_owner = False

    def watching(self, critical: Iterable[str], standby: frozenset[str], unfitted: tuple[str, ...]) -> None:
        """What the symbols job decided: the critical symbols watched now, and which only as standby."""
        critical = frozenset(critical)
        with self._lock:
            self._book.forget(self._critical - critical)
            self._critical = critical
            if standby != self.standby:
                log.info("standby symbols changed", extra={"standby": ",".join(sorted(standby)),
                                                           "unfitted": ",".join(unfitted)})
            self.standby, self.unfitted = standby, unfitted

    def publishable(self, events: list[Event]) -> list[Event]:
        """The events to publish: all but the non-trade events of symbols watched only as standby."""
        standby = self.standby
        if not standby:
            return events
        kept = [e for e in events if isinstance(e, Trade) or getattr(e, "symbol", None) not in standby]
        if len(kept) != len(events):
            with self._lock:
                self._unpublished += len(events) - len(kept)
        return kept

    def record(self, events: list[Event]) -> None:
        with self._lock:
            if self._critical:
                self._book.add(events, self._critical)

    def step(self, feed_now_ns: int | None, *, rules_owner: bool) -> None:
        """Publish the closed minutes' digests; as rules owner compare the pairs and delete them (a job)."""
        if not self._set_up():
            return
        self._rules_owner = rules_owner
        if feed_now_ns is not None:
            with self._lock:
                digests = self._book.close(feed_now_ns, self._close_after_ns)
            for digest in digests:
                self._writer.send(self.topic, digest.key, encode_digest(digest))
            self._published += len(digests)
        self._reader.poll(0)
        if rules_owner:
            for key in self.check.review(self._reader.entries(), self._clock_ns()):
                self._writer.send(self.topic, key, None)
                self._reader.note(key, None)

    def _set_up(self) -> bool:
        if self._ready:
            return True
        try:
            partitions = ensure_compacted_topic(self._bootstrap, self.topic, 1, configs=TOPIC_CONFIGS,
                                                replication_factor=self._replication, timeout_s=SETUP_TIMEOUT_S,
                                                security=self._security)
        except BusError as exc:
            if str(exc) != self._setup_error:
                log.warning("consistency topic not reachable; retrying", extra={"error": str(exc)})
            self._setup_error = str(exc)
            return False
        self._reader.start(partitions)
        self._ready = True
        return True

    def inconsistent(self) -> dict[str, str]:
        """Symbol -> the recent minutes whose digests differed (only the rules owner compares)."""
        return self.check.inconsistent() if self._rules_owner else {}

    def verdicts(self) -> dict[str, Verdict]:
        """Symbol -> its latest compared minute and what differed (only the rules owner compares)."""
        return self.check.verdicts() if self._rules_owner else {}

    def stats(self) -> RedundancyStats:
        with self._lock:
            return RedundancyStats(self.standby, self.unfitted, self._unpublished, self._published,
                                   self._book.late, self.check.stats() if self._rules_owner else None)

    def close(self, timeout_s: float = 2.0) -> None:
        self._writer.close(timeout_s)
        self._reader.close()
