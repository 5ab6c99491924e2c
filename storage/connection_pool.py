"""A bounded pool of ClickHouse clients, shared by every thread of a process.

A clickhouse-driver ``Client`` is not thread-safe, so threads cannot share one; but a
client per thread leaks: Streamlit runs every rerun on a fresh thread, and each dead
thread's client kept its TCP connection open. Here a thread borrows a client for one
statement and gives it back, so connections are capped at ``size`` however many threads
come and go, and a thread that dies holds nothing. A client whose statement failed is
discarded rather than returned (the driver has already dropped its socket, and a
half-read reply must never reach the next borrower).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from clickhouse_driver import Client

from storage.store import StorageUnavailable

log = logging.getLogger(__name__)


class PoolExhausted(StorageUnavailable):
    """Every pooled connection stayed busy for the whole wait; retry later or raise ``storage.pool_size``."""


class ClientPool:
    """At most ``size`` clients; :meth:`borrow` waits up to ``wait_s`` for one to come back."""

    def __init__(self, connect: Callable[[], Client], *, size: int, wait_s: float, name: str) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.size = size
        self.wait_s = wait_s
        self._connect = connect
        self._name = name
        self._cond = threading.Condition()
        self._idle: list[Client] = []  # LIFO: the most recently used client is the likeliest to be alive
        self._borrowed: set[Client] = set()
        self._stale: set[Client] = set()  # borrowed when the pool was closed: disconnect on return
        self._open = self._in_use = 0
        self._waited = self._exhausted = self._discarded = 0  # counters shown by stats()
        self._exhaustion_logged = False

    @contextmanager
    def borrow(self) -> Iterator[Client]:
        """A client for one statement; discarded if the statement raises, returned otherwise."""
        client = self._acquire()
        try:
            yield client
        except BaseException:
            self._discard(client)
            raise
        self._release(client)

    def stats(self) -> dict[str, int]:
        """``waited``: borrows that found every connection busy; ``exhausted``: those that gave up."""
        with self._cond:
            return {
                "size": self.size,
                "open": self._open,
                "idle": len(self._idle),
                "in_use": self._in_use,
                "waited": self._waited,
                "exhausted": self._exhausted,
                "discarded": self._discarded,
            }

    def close(self) -> None:
        """Disconnect idle clients now and borrowed ones when they come back; later borrows open new ones."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._stale |= self._borrowed
        for client in idle:
            client.disconnect()

    def _acquire(self) -> Client:
        deadline: float | None = None
        with self._cond:
            while True:
                if self._idle:
                    return self._lend(self._idle.pop())
                if self._open < self.size:
                    # Creating a Client opens no socket (it connects on its first statement), so
                    # doing it under the lock never holds other borrowers up on the network.
                    client = self._connect()
                    self._open += 1
                    return self._lend(client)
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.wait_s
                    self._waited += 1
                if now >= deadline:
                    raise self._exhaustion()
                self._cond.wait(deadline - now)

    def _lend(self, client: Client) -> Client:
        """Hand ``client`` out (lock held)."""
        self._in_use += 1
        self._borrowed.add(client)
        return client

    def _exhaustion(self) -> PoolExhausted:
        """Count a give-up (lock held) and log the first one with the bound."""
        self._exhausted += 1
        if not self._exhaustion_logged:
            self._exhaustion_logged = True
            log.warning("ClickHouse connection pool exhausted",
                        extra={"store": self._name, "pool_size": self.size, "wait_s": self.wait_s,
                               "in_use": self._in_use})
        return PoolExhausted(
            f"all {self.size} ClickHouse connections of {self._name} stayed busy for {self.wait_s:g} s: "
            "look for slow queries, or raise storage.pool_size (storage.pool_wait_s is the wait)"
        )

    def _release(self, client: Client) -> None:
        with self._cond:
            if client not in self._stale:
                self._borrowed.discard(client)
                self._in_use -= 1
                self._idle.append(client)
                self._cond.notify()
                return
        client.disconnect()
        self._forget(client)

    def _discard(self, client: Client) -> None:
        client.disconnect()
        with self._cond:
            self._discarded += 1
        self._forget(client)

    def _forget(self, client: Client) -> None:
        """``client`` is disconnected and no longer counts against the pool."""
        with self._cond:
            self._borrowed.discard(client)
            self._stale.discard(client)
            self._open -= 1
            self._in_use -= 1
            self._cond.notify()
