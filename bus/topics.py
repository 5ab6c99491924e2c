"""Topic layout: one topic per event family, keyed so each symbol keeps its order.

``<prefix>.trades``, ``.quotes``, ``.depth`` and ``.status`` (feed status, heartbeats,
symbol-not-found and feed errors) carry live events; ``<prefix>.deadletter`` holds
payloads the writer could not store and events the producer could not encode. The key is the symbol, so all events of a symbol
land in one partition in order; events without a symbol are keyed by their source so a
collector's status stream stays ordered too. Each event topic maps to exactly one table,
which is what lets the writer resume a partition from ``max(bus_offset)`` of that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from events import Event
from events.kinds import BY_TYPE, FAMILIES, FAMILY_TABLE


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of a topic nobody consumes is kept (the dead letters): the oldest messages beyond
    either bound are deleted, never refused, so the writer can always set a poison message aside.

    Kafka applies ``partition_bytes`` per partition, and so does :class:`bus.memory.MemoryBus`;
    the in-process bus ignores ``ms`` (its messages die with the process anyway).
    """

    ms: int
    partition_bytes: int

    def kafka_configs(self) -> dict[str, str]:
        """The topic configs that make a broker enforce this retention."""
        return {"retention.ms": str(self.ms), "retention.bytes": str(self.partition_bytes)}


class UnroutableEvent(ValueError):
    """The event kind has no topic (history lookups are replies to a request, not live events)."""


@dataclass(frozen=True)
class TopicSet:
    """The topic names for one deployment prefix (``kafka.topic_prefix``)."""

    prefix: str

    def __post_init__(self) -> None:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not self.prefix or not set(self.prefix) <= allowed:
            raise ValueError(f"topic prefix {self.prefix!r} must be non-empty letters, digits, '.', '_' or '-'")

    @property
    def trades(self) -> str:
        return f"{self.prefix}.trades"

    @property
    def quotes(self) -> str:
        return f"{self.prefix}.quotes"

    @property
    def depth(self) -> str:
        return f"{self.prefix}.depth"

    @property
    def status(self) -> str:
        return f"{self.prefix}.status"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def event_topics(self) -> tuple[str, ...]:
        """The topics the writer consumes."""
        return tuple(f"{self.prefix}.{family}" for family in FAMILIES if family in FAMILY_TABLE)

    @property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic to create at start."""
        return (*self.event_topics, self.deadletter)

    @cached_property
    def _routes(self) -> dict[type, str]:
        return {kind.type: f"{self.prefix}.{kind.family}" for kind in BY_TYPE.values()}

    def topic_for(self, event: Event) -> str:
        topic = self._routes.get(type(event))
        if topic is None:
            raise UnroutableEvent(
                f"{type(event).__name__} has no bus topic: only live trades, quotes, depth and status events are published"
            )
        return topic

    def table_for_topic(self, topic: str) -> str | None:
        """The table that stores ``topic``'s events, or None for topics that are not stored."""
        head, _, family = topic.rpartition(".")
        return FAMILY_TABLE.get(family) if head == self.prefix else None


def event_key(event: Event) -> bytes:
    """Partition key: the symbol, else the source (status events of one collector stay in order)."""
    symbol = getattr(event, "symbol", None)
    return (symbol if symbol else event.source).encode()
