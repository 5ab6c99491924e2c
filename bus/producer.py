"""The event producer: every published event ends up acknowledged by the broker or in the disk spool.

    publish() ──► breaker closed and spool empty? ──yes──► transport.produce ──► delivery report
                         │ no                              │ queue full / unavailable     │ ok: delivered (+ack spool ticket)
                         ▼                                 ▼                              │ failed: back to the spool tail
                     Spool.append ◄────────────────────────┴──────────────────────────────┘
                         │ over budget: dropped counter + error log (never silent)
    poll() ──► serve reports ──► half-open? probe ──► closed? replay the spool in order

One bad event never takes the others with it: an event that cannot be routed or encoded
(an integer msgpack cannot hold, a kind with no topic) is counted (``rejected``), logged
and turned into a dead letter for ``<prefix>.deadletter`` (a JSON description of the
event and the reason), which takes the same send-or-spool path at the event's place in
the read; every other event of the read is published as usual. The fast path encodes
the whole read in one comprehension and only re-does it event by event when that raises.

Batching: the events of one read that share a bus partition (and a 15-minute time bucket, so that a
message's rows land in one storage part: storage/inserter.py) travel as one message of up to
``events_per_message`` events (bus/codec.py's batch format), keyed by the first event's symbol, which
sends the message to the partition each of its symbols hashes to (CRC-32 modulo the partition count:
librdkafka's ``consistent_random`` partitioner, and the in-process bus's). Until the partition counts are
known (asked from the polling thread, never from a publisher) events go one per message. Counters and
latency are per event, whatever the message holds.

Ordering: while anything is waiting in the spool, new events are appended behind it, so
a symbol's events reach the broker in the order they were published (only a replayed
event whose delivery fails again goes to the tail). Events already inside librdkafka
when the broker dies stay there and are retried by librdkafka (idempotent, so no
duplicates) until ``message.timeout.ms``; if that expires their failed delivery reports
put them in the spool. On close, whatever the broker has not acknowledged is purged
into the spool, so a restart replays it.

Threads: publish/publish_many from any thread; poll (or the thread from :meth:`start`)
from one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import msgspec

from bus.base import BusError, BusQueueFull, BusUnavailable, DeliveryCallback, MessageProducer
from bus.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from bus.codec import encode, encode_batch, event_count
from bus.latency import HistogramSnapshot, LatencyHistogram
from bus.spool import Spool, SpoolFull, SpoolRecord, SpoolStats, Ticket
from bus.throttle import Throttle
from bus.topics import TopicSet, event_key
from events import Event

log = logging.getLogger(__name__)

TIME_BUCKET_NS = 15 * 60 * 1_000_000_000  # storage/inserter.py's run bucket: a message never spans two
PARTITIONS_RETRY_S = 5.0


@dataclass(frozen=True)
class ProducerStats:
    published: int  # events handed to publish
    delivered: int  # acknowledged by the broker (direct and replayed)
    failed: int  # delivery reports with an error (each went back to the spool)
    spooled: int  # events written to the spool, for any reason
    replayed: int  # spooled events acknowledged by the broker
    dropped: int  # rejected by a full spool: alert on any increase
    in_flight: int  # inside the transport, not yet reported
    spool: SpoolStats
    breaker: BreakerSnapshot
    latency: HistogramSnapshot  # recv_ns -> broker acknowledgement
    rejected: int = 0  # events that could not be encoded or routed; each went to the dead-letter topic


def dead_letter(event: Event, error: Exception, deadletter_topic: str) -> SpoolRecord:
    """A dead-letter record describing ``event`` and why it was rejected: JSON, so that a value the bus
    codec cannot hold still shows (as its ``repr``). Never raises, whatever ``event`` holds."""
    fields: dict[str, object] = {}
    for name in getattr(event, "__struct_fields__", ()):
        value = getattr(event, name, None)
        try:
            msgspec.json.encode(value)
            safe = not (isinstance(value, float) and not math.isfinite(value))
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            safe = False
        fields[name] = value if safe else repr(value)
    letter = {"rejected_by": "producer", "reason": f"{type(error).__name__}: {error}"[:1000],
              "kind": type(event).__name__, "fields": fields if fields else repr(event)}
    try:
        key = event_key(event)
    except Exception:  # noqa: BLE001 - a symbol that is not text: the letter itself says what it was
        key = b""
    return SpoolRecord(deadletter_topic, key, msgspec.json.encode(letter), 0)


class EventProducer:
    def __init__(
        self,
        transport: MessageProducer,
        topics: TopicSet,
        spool: Spool,
        breaker: CircuitBreaker,
        *,
        probe: Callable[[], object],
        replay_chunk: int = 2000,
        replay_slice_s: float = 0.2,
        events_per_message: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``probe`` is called in half-open state and raises :class:`BusError` while the broker is unreachable."""
        self._transport = transport
        self._spool = spool
        self._breaker = breaker
        self._probe = probe
        self._replay_chunk = replay_chunk
        self._replay_slice_s = replay_slice_s
        self._clock = clock
        self._wall_ns = wall_ns
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._latency = LatencyHistogram()
        self._acked_ns: list[int] = []  # recv -> ack of this poll's deliveries, folded into the histogram after it
        self._published = self._delivered = self._failed = 0
        self._spooled = self._replayed = self._dropped = 0
        self._rejected = 0
        self._drop_log = Throttle(1.0, clock)
        self._fail_log = Throttle(1.0, clock)
        self._reject_log = Throttle(1.0, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        transport.set_error_listener(self._on_transport_error)
        self._topic_for = topics.topic_for
        self._deadletter_topic = topics.deadletter
        self._event_topics = tuple(topics.event_topics)
        self._per_message = events_per_message
        self._partitions: dict[str, int] = {}  # per event topic, once the transport could tell (poll thread)
        self._partition_of: dict[tuple[str, bytes], int] = {}  # (topic, key) -> partition, as the partitioner does
        self._partitions_asked = float("-inf")

    # ------------------------------------------------------------------ publishing
    def publish(self, event: Event) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Iterable[Event]) -> None:
        """Send or spool ``events`` in order; an event that cannot be routed or encoded is dead-lettered in
        its place. Never raises for a bad event or for broker trouble."""
        if not isinstance(events, Sequence):
            events = list(events)
        topic_for = self._topic_for
        recvs: list[list[int]] | None = None
        try:
            if self._per_message > 1 and len(events) > 1 and len(self._partitions) == len(self._event_topics):
                records, recvs = self._batched(events)
            else:
                records = [SpoolRecord(topic_for(e), event_key(e), encode(e), e.recv_ns) for e in events]
        except Exception:  # noqa: BLE001 - some event is bad: find it, one by one (the slow path)
            records, recvs = self._records_one_by_one(events), None
        with self._lock:
            self._published += len(events)
            sent = 0
            if not self._spool.unsent and self._breaker.state is BreakerState.CLOSED:
                sent = self._send(records, None, recvs)
            if sent < len(records):
                self._to_spool(records[sent:])

    def _batched(self, events: Sequence[Event]) -> tuple[list[SpoolRecord], list[list[int]]]:
        """One message per run of consecutive events (in read order) of a partition and time bucket, at most
        ``events_per_message`` each, with the receive times of its events. Raises for an unroutable event."""
        topic_for, limit, partition_of = self._topic_for, self._per_message, self._partition_of
        open_runs: dict[tuple[str, int], tuple[int, list[Event]]] = {}  # (topic, partition) -> (bucket, events)
        runs: list[tuple[str, list[Event]]] = []
        for event in events:
            topic = topic_for(event)
            key = event_key(event)
            partition = partition_of.get((topic, key))
            if partition is None:
                partition = partition_of[(topic, key)] = zlib.crc32(key) % self._partitions[topic]
            bucket = getattr(event, "ts_ns", 0) // TIME_BUCKET_NS
            where = (topic, partition)
            run = open_runs.get(where)
            if run is None or run[0] != bucket or len(run[1]) >= limit:
                run = open_runs[where] = (bucket, [])
                runs.append((topic, run[1]))
            run[1].append(event)
        records: list[SpoolRecord] = []
        recvs: list[list[int]] = []
        for topic, batch in runs:
            first = batch[0]
            if len(batch) == 1:
                records.append(SpoolRecord(topic, event_key(first), encode(first), first.recv_ns))
                recvs.append([first.recv_ns])
            else:
                received = [e.recv_ns for e in batch]
                earliest = min((r for r in received if r), default=0)  # 0: not received from the feed
                records.append(SpoolRecord(topic, event_key(first), encode_batch(batch), earliest))
                recvs.append(received)
        return records, recvs

    def _learn_partitions(self) -> None:
        """Ask the transport for the event topics' partition counts (from the polling thread: it may wait)."""
        if self._per_message <= 1 or len(self._partitions) == len(self._event_topics):
            return
        if self._clock() - self._partitions_asked < PARTITIONS_RETRY_S:
            return
        self._partitions_asked = self._clock()
        for topic in self._event_topics:
            if topic not in self._partitions:
                count = self._transport.partitions(topic, 1.0)
                if count:
                    self._partitions[topic] = count

    def _records_one_by_one(self, events: Sequence[Event]) -> list[SpoolRecord]:
        """Records for ``events`` where each event that fails becomes a dead letter in its place."""
        records: list[SpoolRecord] = []
        for event in events:
            try:
                records.append(SpoolRecord(self._topic_for(event), event_key(event), encode(event), event.recv_ns))
            except Exception as exc:  # noqa: BLE001 - any failure of one event is that event's, never the read's
                records.append(dead_letter(event, exc, self._deadletter_topic))
                self._reject(event, exc)
        return records

    def _reject(self, event: Event, error: Exception) -> None:
        with self._lock:
            self._rejected += 1
            if self._reject_log.ready():
                log.error("event rejected: it cannot be encoded or routed; sent to the dead-letter topic",
                          extra={"error": f"{type(error).__name__}: {error}", "sample": repr(event)[:500],
                                 "rejected_total": self._rejected, "topic": self._deadletter_topic})

    def _send(self, records: list[SpoolRecord], tickets: list[Ticket] | None,
              recvs: list[list[int]] | None = None) -> int:
        """Hand records to the transport until it refuses; return how many it took. ``recvs``: the receive
        times of each record's events (else the record's own, once per event it holds)."""
        for index, record in enumerate(records):
            ticket = tickets[index] if tickets is not None else None
            received = recvs[index] if recvs is not None else None
            try:
                self._transport.produce(record.topic, record.key, record.value,
                                        self._report(record, ticket, received))
            except BusQueueFull:
                return index
            except BusUnavailable as exc:
                self._breaker.record_failure()
                log.warning("broker refused a message; spooling", extra={"error": str(exc), "topic": record.topic})
                return index
        return len(records)

    def _report(self, record: SpoolRecord, ticket: Ticket | None, received: list[int] | None) -> DeliveryCallback:
        def on_delivery(error: BusError | None, partition: int, offset: int) -> None:
            self._on_delivery(record, ticket, error, received)

        return on_delivery

    def _on_delivery(self, record: SpoolRecord, ticket: Ticket | None, error: BusError | None,
                     received: list[int] | None) -> None:
        """Runs in the polling thread only (inside ``transport.poll``), so the success path needs no lock.
        A spooled record's events all count its earliest receive time (the spool keeps one)."""
        if received is None:
            received = [record.recv_ns] * event_count(record.value)
        if error is None:
            self._delivered += len(received)
            if record.recv_ns:
                now = self._wall_ns()
                self._acked_ns += [now - recv for recv in received if recv]
            if ticket is not None:
                self._spool.ack(ticket)
                self._replayed += len(received)
            self._breaker.record_success()
            return
        self._breaker.record_failure()
        with self._lock:
            self._failed += len(received)
            if self._fail_log.ready():
                log.warning("delivery failed; event goes back to the spool",
                            extra={"error": str(error), "topic": record.topic, "failed_total": self._failed})
            if ticket is not None:
                self._spool.requeue(ticket, record)
            else:
                self._to_spool([record])

    def _to_spool(self, records: list[SpoolRecord]) -> None:
        try:
            self._spool.append(records)
            self._spooled += sum(event_count(r.value) for r in records)
        except SpoolFull as exc:
            accepted = sum(event_count(r.value) for r in records[:exc.accepted])
            rejected = sum(event_count(r.value) for r in records[exc.accepted:])
            self._spooled += accepted
            self._dropped += rejected
            if self._drop_log.ready():
                log.error(
                    "EVENTS DROPPED: spool is full and the broker is not taking events",
                    extra={"count": rejected, "dropped_total": self._dropped, "reason": str(exc),
                           "spool": str(self._spool.directory)},
                )

    def _on_transport_error(self, error: BusError) -> None:
        if isinstance(error, BusUnavailable):
            self._breaker.record_failure()

    # ------------------------------------------------------------------ background work
    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports, probe a half-open breaker, replay the spool, sync it to disk."""
        with self._poll_lock:
            self._transport.poll(timeout_s)
            self._probe_if_half_open()
            if self._breaker.state is BreakerState.CLOSED:
                self._learn_partitions()
            self._replay()
            self._spool.sync_if_due()
            self._spool.checkpoint_if_due()
            if self._acked_ns:
                acked, self._acked_ns = self._acked_ns, []
                self._latency.observe_many(acked)

    def _probe_if_half_open(self) -> None:
        if self._breaker.state is not BreakerState.HALF_OPEN:
            return
        try:
            self._probe()
        except BusError as exc:
            self._breaker.record_failure()
            log.info("broker probe failed; still spooling", extra={"error": str(exc), "spool_unsent": self._spool.unsent})
            return
        self._breaker.record_success()
        if self._spool.unsent:
            log.info("broker reachable again; replaying the spool", extra={"count": self._spool.unsent})

    def _replay(self) -> None:
        deadline = self._clock() + self._replay_slice_s
        while self._spool.unsent and self._breaker.state is BreakerState.CLOSED and self._clock() < deadline:
            with self._lock:
                entries = self._spool.peek(self._replay_chunk)
                sent = self._send([record for _, record in entries], [ticket for ticket, _ in entries])
                self._spool.advance(sent)
            if not entries or sent < len(entries):
                return
            self._transport.poll(0)

    def idle(self) -> bool:
        """True when every published event is acknowledged: nothing in the transport, nothing unsent in the spool."""
        return not self._transport.in_flight() and not self._spool.unsent

    def flush(self, timeout_s: float) -> bool:
        """Poll until every event is acknowledged (transport and spool empty); False on timeout."""
        deadline = self._clock() + timeout_s
        while True:
            self.poll(max(0.0, min(0.05, deadline - self._clock())))
            if self.idle():
                return True
            if self._clock() >= deadline:
                return False

    def run(self, stop: threading.Event, interval_s: float = 0.05) -> None:
        while not stop.is_set():
            self.poll(interval_s)

    def start(self) -> None:
        """Poll in a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="event-producer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout_s``; spool the rest for the next run."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.flush(timeout_s)
        with self._poll_lock:
            self._transport.close(0)  # purges the undelivered: their failed reports land in the spool
        self._spool.close()
        stats = self.stats()
        log.info("producer closed", extra={"delivered": stats.delivered, "spooled": stats.spooled,
                                           "dropped": stats.dropped, "spool_unsent": stats.spool.unsent})

    @property
    def latency(self) -> LatencyHistogram:
        """Receive -> broker acknowledgement, with its sliding windows (read it, never observe into it)."""
        return self._latency

    def stats(self) -> ProducerStats:
        with self._lock:
            return ProducerStats(
                self._published, self._delivered, self._failed, self._spooled, self._replayed, self._dropped,
                self._transport.in_flight(), self._spool.stats(), self._breaker.snapshot(), self._latency.snapshot(),
                self._rejected,
            )
