"""The fleet status channel's topic, shared by collectors (runtime/fleet.py) and writer processes
(storage/writer_status.py): both publish to it, so its name and its compaction live below both.

The topic is compacted with one partition, keyed by what publishes (a collector's instance id, a
writer's ``<instance id>/writer``); segments roll often so that compaction keeps it small for a
reader starting from its beginning (the dashboard attached to a headless fleet).
"""

from __future__ import annotations

from collections.abc import Mapping

from bus.keyed_topic import ensure_compacted_topic

STATUS_TOPIC_CONFIGS = {"segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": "3600000"}


def status_topic(prefix: str) -> str:
    return f"{prefix}.fleet"


def ensure_status_topic(bootstrap_servers: str, topic: str, *, replication_factor: int, timeout_s: float,
                        security: Mapping[str, str] | None = None) -> None:
    """Create the status topic unless it exists; raises :class:`bus.base.BusUnavailable` while Kafka is down.
    Whoever publishes first creates it, so a writer process started before any collector does not leave
    an uncompacted topic behind (the broker's auto-creation would)."""
    ensure_compacted_topic(bootstrap_servers, topic, 1, configs=STATUS_TOPIC_CONFIGS,
                           replication_factor=replication_factor, timeout_s=timeout_s, security=security)
