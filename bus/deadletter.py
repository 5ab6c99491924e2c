"""Dead-letter topic: where messages the writer cannot store go, so they never block a partition.

Each message keeps its original key and payload; headers say where it came from and
why it was rejected, so it can be inspected or re-driven after a fix. :meth:`send` waits
for the broker's acknowledgement: the writer commits past a poison message only after
it is safely in the dead-letter topic. Delivery is at least once (a retry after a
failed flush may send a message twice).
"""

from __future__ import annotations

from collections.abc import Sequence

from bus.base import BusError, MessageProducer, PoisonRecord


class DeadLetterUnavailable(BusError):
    """Dead letters could not be delivered; the writer keeps the batch and retries."""


class DeadLetterSink:
    def __init__(self, producer: MessageProducer, topic: str, *, timeout_s: float = 10.0) -> None:
        self.topic = topic
        self._producer = producer
        self._timeout_s = timeout_s

    def send(self, records: Sequence[PoisonRecord]) -> None:
        """Deliver ``records`` to the dead-letter topic and wait for the acknowledgements."""
        if not records:
            return
        failures: list[BusError] = []

        def on_delivery(error: BusError | None, partition: int, offset: int) -> None:
            if error is not None:
                failures.append(error)

        for record in records:
            headers = {
                "tickops.source_topic": record.topic.encode(),
                "tickops.source_partition": str(record.partition).encode(),
                "tickops.source_offset": str(record.offset).encode(),
                "tickops.source_index": str(record.index).encode(),
                "tickops.reason": record.reason.encode()[:1000],
            }
            try:
                self._producer.produce(self.topic, record.key, record.payload, on_delivery, headers)
            except BusError as exc:
                raise DeadLetterUnavailable(f"could not queue a dead letter for {self.topic}: {exc}") from exc
        remaining = self._producer.flush(self._timeout_s)
        if remaining or failures:
            detail = f"{remaining} unacknowledged after {self._timeout_s} s" if remaining else str(failures[0])
            raise DeadLetterUnavailable(f"dead letters to {self.topic} not delivered: {detail}")

    def close(self) -> None:
        self._producer.close(self._timeout_s)
