"""Commit consumer offsets after a batch is stored; a failed commit is counted and retried, never fatal.

Storage, not the commit, is the record of what is done (the writer resumes from
``max(bus_offset)``), so a commit that fails (broker restarting, rebalance) loses
nothing: the offsets are kept and sent again with the next commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bus.base import BusConsumer, BusError, TopicPartition

log = logging.getLogger(__name__)


class OffsetCommitter:
    def __init__(self, consumer: BusConsumer) -> None:
        self._consumer = consumer
        self._due: dict[TopicPartition, int] = {}
        self.failures = 0

    def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit ``offsets`` plus any left over from a failed commit; True when the broker took them."""
        for tp, offset in offsets.items():
            self._due[tp] = max(offset, self._due.get(tp, offset))
        if not self._due:
            return True
        try:
            self._consumer.commit(self._due)
        except BusError as exc:
            self.failures += 1
            log.warning("offset commit failed; rows are stored, offsets will be committed with the next batch",
                        extra={"error": str(exc), "partitions": len(self._due), "commit_failures": self.failures})
            return False
        self._due.clear()
        return True

    def forget(self) -> None:
        """Drop uncommitted offsets of a revoked assignment (the next owner starts from storage)."""
        self._due.clear()
