"""Login throttling: exponential lockout after repeated failures, per user name and per client.

A guesser is slowed on two axes: one name tried from many addresses (the per-user count)
and many names tried from one address (the per-client count). After ``after_failures``
failures in a row a key is locked for ``initial_s``, doubling with each further failure up
to ``max_s``. While a key is locked every attempt is refused without checking the
password, even a right one (a right answer accepted during a lockout would let guessing go
on), and without counting (so a lockout ends on time). A key's failures are forgotten
``forget_s`` after the last one, or when its user signs in. The per-user lockout lets
anyone lock a known name out for up to ``max_s`` at a time: the price of stopping
guessing without a second factor.

State is in memory, per dashboard process, bounded by ``max_keys`` (the stalest key goes
first); time comes from ``clock`` so tests need not sleep.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    after_failures: int = 3
    initial_s: float = 1.0
    max_s: float = 900.0
    forget_s: float = 3600.0

    def lockout_s(self, failures: int) -> float:
        """How long ``failures`` failures in a row lock a key (0 below the threshold)."""
        if failures < self.after_failures:
            return 0.0
        return min(self.max_s, self.initial_s * 2 ** (failures - self.after_failures))


@dataclass
class _Entry:
    failures: int
    last_failure: float
    locked_until: float


@dataclass(frozen=True)
class ThrottleStats:
    failures: int  # failed attempts counted
    lockouts: int  # times a key became locked
    refused: int  # attempts refused because a key was locked
    tracked: int  # keys with failures remembered now


class LoginThrottle:
    def __init__(self, policy: ThrottlePolicy = ThrottlePolicy(), *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self._policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._failures = 0
        self._lockouts = 0
        self._refused = 0

    def locked_for(self, *keys: str) -> float:
        """Seconds until every key may try again (0: may try now); counts a refusal when locked."""
        now = self._clock()
        with self._lock:
            entries = [entry for entry in (self._live(key, now) for key in keys) if entry is not None]
            wait = max((entry.locked_until - now for entry in entries), default=0.0)
            if wait > 0:
                self._refused += 1
            return max(0.0, wait)

    def failed(self, *keys: str) -> float:
        """Count a failed attempt against each key; the lockout now in force (0 if none)."""
        now = self._clock()
        longest = 0.0
        with self._lock:
            self._failures += 1
            for key in keys:
                entry = self._live(key, now) or _Entry(0, now, now)
                entry.failures += 1
                entry.last_failure = now
                lockout = self._policy.lockout_s(entry.failures)
                if lockout:
                    entry.locked_until = now + lockout
                    self._lockouts += 1
                    longest = max(longest, lockout)
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > self._max_keys:
                self._entries.popitem(last=False)
        return longest

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def stats(self) -> ThrottleStats:
        with self._lock:
            return ThrottleStats(self._failures, self._lockouts, self._refused, len(self._entries))

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_failure > self._policy.forget_s and now >= entry.locked_until:
            del self._entries[key]
            return None
        return entry
