"""One instance at a time runs the migrations: a lease held through a row in a small table.

ClickHouse has no compare-and-set, so the lease is decided by order, not by an atomic write:

    candidate ──► no live claim? ──► INSERT (owner, claimed_ns, expires_ns) ──► wait settle_s ──► read back
                  │ a live claim: someone holds it or contends; wait                         │
                  ▼                                                                          ▼
           the work is done (the caller's ``done()``, e.g. the ledger shows every version) ◄── the earliest live
                                                                                  (claimed_ns, owner) holds it;
                                                                                  the others withdraw and wait

A claim is live until its ``expires_ns``. The holder renews it every ``ttl_s / 3`` from a thread
and releases it when done (a row with ``expires_ns`` 0; the latest row of a claim wins); a holder
that dies stops renewing, and ``ttl_s`` later another candidate takes over. Safe as long as
``settle_s`` exceeds an insert's latency plus the clock skew between the candidates' hosts: a
claim then becomes visible before anyone can have decided without it, or carries a later time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from storage.store import StorageError, Store

log = logging.getLogger(__name__)

LEASE_TABLE = "migration_lease"
SETTLE_S = 0.25
"""Between a claim and its read-back. One host: an insert takes milliseconds. Hosts whose clocks
NTP keeps within tens of milliseconds: still safe; otherwise pass a larger ``settle_s``."""
TTL_S = 30.0
POLL_S = 0.5

_DDL = """CREATE TABLE IF NOT EXISTS {db}.migration_lease (
    owner String,
    claimed_ns Int64,
    expires_ns Int64,
    written_ns Int64
) ENGINE = MergeTree
ORDER BY (claimed_ns, owner)"""


def lease_ddl(database: str) -> str:
    return _DDL.format(db=database)


def default_owner() -> str:
    """Unique per process and attempt, readable in the table: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseLost(StorageError):
    """The holder could not renew its lease in time; another instance may be migrating. Retry the migrations."""


@dataclass(frozen=True)
class Claim:
    owner: str
    claimed_ns: int


class Lease:
    """A held lease, renewed from a thread until :meth:`release`."""

    def __init__(self, lock: MigrationLock, claim: Claim) -> None:
        self.claim = claim
        self._lock = lock
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._renewed_ns = lock.clock()
        self._thread = threading.Thread(target=self._renew, name="migration-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self._lock.ttl_s / 3):
            try:
                self._lock.write(self.claim, self._lock.clock() + int(self._lock.ttl_s * 1e9))
                self._renewed_ns = self._lock.clock()
            except StorageError as exc:
                self._error = exc
                log.warning("migration lease not renewed", extra={"owner": self.claim.owner, "error": str(exc)})

    def check(self) -> None:
        """Raise :class:`LeaseLost` when the last renewal is older than the lease's time to live."""
        age_s = (self._lock.clock() - self._renewed_ns) / 1e9
        if age_s >= self._lock.ttl_s:
            raise LeaseLost(f"migration lease of {self.claim.owner} not renewed for {age_s:.1f} s "
                            f"(last error: {self._error}); stopping so that only one instance migrates")

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._lock.write(self.claim, 0)
        except StorageError as exc:  # it expires by itself; the others wait ttl_s longer
            log.warning("migration lease not released; it expires by itself",
                        extra={"owner": self.claim.owner, "error": str(exc)})


class MigrationLock:
    def __init__(self, store: Store, owner: str | None = None, *, settle_s: float = SETTLE_S, ttl_s: float = TTL_S,
                 poll_s: float = POLL_S, clock: Callable[[], int] = time.time_ns,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.owner = owner or default_owner()
        self.settle_s = settle_s
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.clock = clock
        self._sleep = sleep

    def write(self, claim: Claim, expires_ns: int) -> None:
        self.store.insert_columns(LEASE_TABLE, ["owner", "claimed_ns", "expires_ns", "written_ns"],
                                  [[claim.owner], [claim.claimed_ns], [expires_ns], [self.clock()]])

    def live_claims(self) -> list[Claim]:
        """Unexpired claims, the holder (or the winner of a contest) first."""
        rows = self.store.query(
            f"SELECT owner, claimed_ns FROM {self.store.table(LEASE_TABLE)} GROUP BY owner, claimed_ns "
            f"HAVING argMax(expires_ns, written_ns) > {int(self.clock())} ORDER BY claimed_ns, owner")
        return [Claim(str(owner), int(claimed)) for owner, claimed in rows]

    def acquire(self, done: Callable[[], bool]) -> Lease | None:
        """Hold the lease, or return None as soon as ``done()`` says another instance did the work."""
        waited = False
        while not done():
            live = self.live_claims()
            if live:
                if not waited:
                    log.info("another instance holds the migration lease; waiting",
                             extra={"holder": live[0].owner, "owner": self.owner})
                    waited = True
                self._sleep(self.poll_s)
                continue
            claim = Claim(self.owner, self.clock())
            self.write(claim, claim.claimed_ns + int(self.ttl_s * 1e9))
            self._sleep(self.settle_s)
            live = self.live_claims()
            if live and live[0] == claim:
                log.info("migration lease taken", extra={"owner": self.owner})
                return Lease(self, claim)
            self.write(claim, 0)  # lost the contest: withdraw, so the claim does not outlive this attempt
        return None
