"""A writer's status on the fleet status channel, so the Fleet page shows every writer, not only collectors.

Writers are a consumer group on the data topics: the group decides which partitions each holds, and
only the writer knows how far behind it is. Each writer, a process of its own (``python -m storage.writer``)
or embedded in a collector, publishes a :class:`WriterStatus` to ``<prefix>.fleet`` (bus/fleet_channel.py)
every ``fleet.status_interval_s`` and a last one in state ``stopped`` when it stops cleanly. It is keyed
``<instance id>/writer``: an embedded writer shares its collector's instance id, and a key of its own keeps
the two records from replacing each other on the compacted topic.

Like a collector's status it is versioned JSON with a ``role`` field, readable with any Kafka tool; a
killed writer's status just grows old (the reader judges liveness by age, runtime/fleet_status.py).
Lag is the writer's own figure: per held partition, the partition's end minus the first offset not yet
stored (storage/writer.py), so it is what storage still has to take in, not what the group committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from bus.base import BusError, TopicPartition
from bus.fleet_channel import ensure_status_topic, status_topic
from bus.json_record import dump_record, load_record
from bus.keyed_topic import KeyedTopicWriter
from bus.security import librdkafka_security
from config import Settings
from monitoring.http import Health
from storage.writer import WriterStats

log = logging.getLogger(__name__)

WRITER_STATUS_VERSION = 1
WRITER_ROLE = "writer"
WRITER_KEY_SUFFIX = "/writer"
WriterState = Literal["running", "stopped"]
Send = Callable[[str, bytes], None]  # (key, value) onto the status topic, without waiting
Sample = Callable[[], tuple[Health, WriterStats | None, Iterable[TopicPartition]]]


class WriterStatusError(ValueError):
    """A writer's record on the status topic cannot be read; the message names the key and what is wrong."""


@dataclass(frozen=True)
class WriterStatus:
    instance_id: str
    role: str  # always "writer": tells the record from a collector's to anyone reading the topic
    state: WriterState
    health: str  # ok / degraded (storage/writer_health.py)
    reasons: tuple[str, ...]
    partitions: tuple[str, ...]  # data partitions it holds, "topic[partition]"
    lag: int  # records on the bus not stored yet, over its partitions
    lag_by_topic: dict[str, int]
    rows_per_s: float  # rows stored per second since its previous status
    stored: int  # rows stored since it started
    last_error: str
    embedded: bool  # runs inside a collector (storage.embedded_writer) rather than as its own process
    started_ns: int
    updated_ns: int

    def age_s(self, now_ns: int) -> float:
        return max(0.0, (now_ns - self.updated_ns) / 1e9)


def writer_key(instance_id: str) -> str:
    return f"{instance_id}{WRITER_KEY_SUFFIX}"


def is_writer_key(key: str) -> bool:
    return key.endswith(WRITER_KEY_SUFFIX)


def lag_by_topic(lag: Mapping[str, int]) -> dict[str, int]:
    """Per-partition lag (``"topic[partition]"`` keys, as WriterStats has it) added up per topic."""
    totals: dict[str, int] = {}
    for partition, behind in lag.items():
        topic = partition.rsplit("[", 1)[0]
        totals[topic] = totals.get(topic, 0) + behind
    return dict(sorted(totals.items()))


def describe_writer(instance_id: str, health: Health, stats: WriterStats | None, partitions: Iterable[TopicPartition],
                    *, rows_per_s: float, state: WriterState, embedded: bool, started_ns: int,
                    now_ns: int) -> WriterStatus:
    """A writer's status; ``stats`` is None while it is not writing yet (waiting for storage or topics)."""
    return WriterStatus(
        instance_id=instance_id, role=WRITER_ROLE, state=state, health=health.state, reasons=tuple(health.reasons),
        partitions=tuple(sorted(str(tp) for tp in partitions)),
        lag=stats.total_lag if stats else 0, lag_by_topic=lag_by_topic(stats.lag) if stats else {},
        rows_per_s=round(rows_per_s, 1), stored=stats.stored if stats else 0,
        last_error=stats.last_error if stats else "", embedded=embedded, started_ns=started_ns, updated_ns=now_ns,
    )


def encode_writer_status(status: WriterStatus) -> bytes:
    return dump_record(WRITER_STATUS_VERSION, asdict(status))


def decode_writer_status(key: str, payload: bytes) -> WriterStatus:
    what = f"writer status of {key!r}"
    data = load_record(payload, WRITER_STATUS_VERSION, what=what, kind="writer status", error=WriterStatusError)
    try:
        status = WriterStatus(**{**data, "reasons": tuple(data["reasons"]), "partitions": tuple(data["partitions"])})
    except (TypeError, KeyError) as exc:
        raise WriterStatusError(f"{what} lacks or mistypes a field ({exc})") from None
    if status.role != WRITER_ROLE or writer_key(status.instance_id) != key:
        raise WriterStatusError(f"{what} names role {status.role!r} of instance {status.instance_id!r}")
    return status


class StoredRate:
    """Rows stored per second between samples of the writer's running count at least ``min_span_s`` apart
    (a page refresh asking twice in a row gets the last rate, not a ratio of two tiny numbers)."""

    def __init__(self, min_span_s: float = 1.0) -> None:
        self._min_span_s = min_span_s
        self._last: tuple[float, int] | None = None
        self._rate = 0.0

    def sample(self, stored: int, now: float) -> float:
        if self._last is None or stored < self._last[1]:
            self._last = (now, stored)
        elif now - self._last[0] >= self._min_span_s:
            self._rate = (stored - self._last[1]) / (now - self._last[0])
            self._last = (now, stored)
        return self._rate


class WriterStatusReporter:
    """One writer's status, sent when due (``interval_s``) or forced; whoever holds the writer calls it."""

    def __init__(self, instance_id: str, interval_s: float, *, embedded: bool,
                 clock: Callable[[], float] = time.monotonic, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.instance_id = instance_id
        self._interval_s = interval_s
        self._embedded = embedded
        self._clock = clock
        self._clock_ns = clock_ns
        self._started_ns = clock_ns()
        self._rate = StoredRate()
        self._sent_at = float("-inf")

    def describe(self, sample: Sample, state: WriterState = "running") -> WriterStatus:
        health, stats, partitions = sample()
        return describe_writer(self.instance_id, health, stats, partitions,
                               rows_per_s=self._rate.sample(stats.stored if stats else 0, self._clock()), state=state,
                               embedded=self._embedded, started_ns=self._started_ns, now_ns=self._clock_ns())

    def report(self, sample: Sample, send: Send, *, state: WriterState = "running",
               force: bool = False) -> WriterStatus | None:
        """The status sent, or None when none was due."""
        now = self._clock()
        if not (force or now - self._sent_at >= self._interval_s):
            return None
        self._sent_at = now
        status = self.describe(sample, state)
        send(writer_key(self.instance_id), encode_writer_status(status))
        return status


class WriterStatusLoop:
    """A writer process's status thread: its main thread runs the writer, this one publishes beside it,
    from before the writer starts (waiting for storage is worth seeing on the Fleet page) to its stop."""

    POLL_S = 0.5

    def __init__(self, settings: Settings, sample: Sample) -> None:
        kafka = settings.kafka
        self._settings = settings
        self._sample = sample
        self._topic = status_topic(kafka.topic_prefix)
        self._security = librdkafka_security(kafka)
        self._producer = KeyedTopicWriter(kafka.bootstrap_servers, client_id=f"{settings.instance_id}-writer-status",
                                          security=self._security)
        self.reporter = WriterStatusReporter(settings.instance_id, settings.fleet.status_interval_s, embedded=False)
        self._ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer-status", daemon=True)

    def _put(self, key: str, value: bytes) -> None:
        self._producer.send(self._topic, key, value)

    def _topic_ready(self) -> bool:
        if not self._ready:
            kafka = self._settings.kafka
            try:
                ensure_status_topic(kafka.bootstrap_servers, self._topic, replication_factor=kafka.replication_factor,
                                    timeout_s=1.0, security=self._security)
            except BusError as exc:
                log.debug("fleet status topic not reachable; retrying", extra={"error": str(exc)})
                return False
            self._ready = True
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.POLL_S):
            if self._topic_ready():
                self.reporter.report(self._sample, self._put)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Publish the last status (state ``stopped``) and wait up to ``timeout_s`` for it to land."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._ready:  # never reached the topic (Kafka down all along): no last word, no wait for Kafka
            self.reporter.report(self._sample, self._put, state="stopped", force=True)
        self._producer.close(timeout_s)
