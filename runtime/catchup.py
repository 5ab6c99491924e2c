"""Catch-up when a symbol starts being watched: its trades since its watermark, from tick history.

    a watch begins (start, restart after a crash, takeover, operator start) ──► CatchUp.request
    backfill job, every 2 s ──► CatchUp.step
        1. the feed's clock passes the watch by BACKFILL_MARGIN_NS: the range's end is fixed there;
           then BACKFILL_SETTLE_NS of our clock, so the live trades up to it have arrived
        2. BacklogGate: the spool is empty and the writer has stored the trades topic up to the end
           offsets seen after that
        3. per batch of feed.catch_up_batch symbols: watermarks (one query), tick history (HTT) from
           each watermark to the end, minus what storage or RecentTrades hold ──► Engine.ingest;
           the restart gap (last live event ─► the watch) ──► feed_outages

Why the feed's clock: "now" is the feed's, not ours. In a replay (or behind a lagging
IQConnect) our clock is hours or years away from the trades' times, and a range ending at
our "now" would ask for history that does not exist yet or miss what does.

Why the watermark counts only rows received before the watch: when the catch-up runs, this
process's own live trades of the new watch are stored already; counted, they would hide
the gap before them.

Why the gate: the trades a killed process published but the writer has not stored yet
(still on Kafka, or in the spool it left on disk) are neither in storage nor in this
process's RecentTrades; fetched from history now, they would be stored twice.

Why bounded (``feed.catch_up_max_s``, default: to the start of the trading day): a first
start, or a symbol unwatched for weeks, would otherwise ask the lookup port for its
whole history.

What history cannot give back (quotes, depth) between the symbol's last stored live event
and the watch is recorded as an outage window (cause ``restart``, ``start`` or ``takeover``)
on the feed's clock, so it can be matched against the stored events' times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from collectors.iqfeed.client import LookupFailed
from collectors.market_hours import OutsideCalendar, eastern_date, trading_day
from events import Trade
from runtime.backfill import (
    BACKFILL_MARGIN_NS,
    BACKFILL_MAX_ATTEMPTS,
    BACKFILL_SETTLE_NS,
    RecentTrades,
    TradeIdentity,
    unknown_trades,
)
from storage.outages import StoredOutage
from storage.store import Store
from storage.watermarks import last_received_events, trade_watermarks
from storage.writer import WriterProgress

log = logging.getLogger(__name__)

_NS: Final = 1_000_000_000
_DAYS_BACK: Final = 10
"""How far back a trading day is looked for: longer than any run of NYSE holidays and weekends."""


def catch_up_start_ns(feed_ns: int, max_s: float) -> int:
    """The earliest instant a catch-up for a watch at ``feed_ns`` (the feed's clock) reaches back to.

    ``max_s`` > 0: that many seconds. 0: the start of the trading day (its pre-market, 04:00
    Eastern) that ``feed_ns`` falls in or, on a closed day or before 04:00, the last one before it.
    """
    if max_s > 0:
        return feed_ns - int(max_s * _NS)
    day = eastern_date(feed_ns)
    try:
        for _ in range(_DAYS_BACK):
            sessions = trading_day(day)
            if sessions is not None and sessions.pre_open_ns <= feed_ns:
                return sessions.pre_open_ns
            day -= timedelta(days=1)
    except OutsideCalendar:
        pass
    return feed_ns - 86_400 * _NS  # outside the calendar: one day, still bounded


class BacklogGate:
    """Open once storage holds every trade that was on the bus when the gate was armed.

    Armed by :meth:`reset` (a new request). It takes as its target the trades topic's end
    offsets from the first writer lag refresh after the spool was seen empty (what the spool
    replays lands on the bus before that), then waits until the writer's next offsets reach
    them. A partition the writer does not own (revoked, or another group member's) is not
    waited for.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._armed_at: int | None = None
        self._target: dict | None = None

    def reset(self) -> None:
        self._armed_at = None
        self._target = None

    def reason(self, behind: str, progress: WriterProgress | None) -> str:
        """Why a catch-up must wait, or "" when it may run. ``behind`` is the engine's own reason
        (spool not empty, writes failing), which also re-arms the gate."""
        if behind:
            self.reset()
            return behind
        if progress is None:
            return "the writer is not running yet"
        if self._target is None:
            if self._armed_at is None:
                self._armed_at = progress.refreshes
            owned = {tp for tp in progress.next if tp.topic == self.topic}
            if progress.refreshes <= self._armed_at or not owned or not owned <= progress.ends.keys():
                return "waiting for the writer to see the end of the trades topic"
            self._target = {tp: progress.ends[tp] for tp in owned}
        left = sum(max(0, end - progress.next[tp]) for tp, end in self._target.items() if tp in progress.next)
        return f"{left} trades on the bus not stored yet" if left else ""


@dataclass(slots=True)
class _Pending:
    """One symbol waiting for its catch-up."""

    symbol: str
    cause: str
    watched_ns: int  # our clock at the watch: stored rows' recv_ns are on it
    feed_ns: int | None  # the feed's clock at the watch; its first heartbeat after, when none had come
    end_ns: int | None = None  # the feed's clock once past feed_ns + margin: history is fetched up to it
    end_fixed_ns: int = 0  # our clock when end_ns was fixed
    attempts: int = 0

    def due(self, feed_now_ns: int | None, now_ns: int) -> bool:
        """Advance towards being due; True once the range's end is fixed and has settled.

        The end is fixed when the feed's clock has passed the watch by the margin, or when our
        clock has (a feed clock that stands still: a replay that ended)."""
        if feed_now_ns is None:
            return False
        if self.feed_ns is None:
            self.feed_ns = feed_now_ns
        if self.end_ns is None:
            if feed_now_ns < self.feed_ns + BACKFILL_MARGIN_NS and now_ns < self.watched_ns + BACKFILL_MARGIN_NS:
                return False
            self.end_ns, self.end_fixed_ns = feed_now_ns, now_ns
        return now_ns >= self.end_fixed_ns + BACKFILL_SETTLE_NS


@dataclass(frozen=True, slots=True)
class CatchUpStats:
    symbols_total: int  # watches that asked for a catch-up since the start
    symbols_done: int
    symbols_failed: int  # lookups failed BACKFILL_MAX_ATTEMPTS times
    symbols_cancelled: int  # unwatched before their catch-up ran
    symbols_pending: int
    trades_recovered: int
    trades_already_there: int  # history trades found in storage or among those ingested
    gaps_recorded: int  # restart gaps written to feed_outages
    deferred: int  # passes put off by the gate
    waiting: str  # why pending catch-ups wait now, or ""


class CatchUp:
    """Catches up each newly watched symbol from its watermark (see the module docstring).

    ``fetch(symbol, start_ns, end_ns)`` is the tick history as trades marked backfilled;
    ``stored(symbol, start_ns, end_ns)`` the identities storage holds; ``record_gaps`` stores
    restart gaps (the engine's write-behind queue, so a storage outage does not lose them).
    Thread-safe: watches request from the symbols job, the fleet or the dashboard while the
    backfill job steps.
    """

    def __init__(
        self,
        store: Store,
        *,
        source: str,
        topic: str,
        fetch: Callable[[str, int, int], list[Trade]],
        stored: Callable[[str, int, int], Iterable[TradeIdentity]],
        recent: RecentTrades,
        record_gaps: Callable[[list[StoredOutage]], None],
        max_s: float = 0.0,
        batch: int = 50,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._source = source
        self._fetch = fetch
        self._stored = stored
        self._recent = recent
        self._record_gaps = record_gaps
        self._max_s = max_s
        self._batch = batch
        self._clock = clock
        self.gate = BacklogGate(topic)
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._total = self._done = self._failed = self._cancelled = 0
        self._recovered = self._known = self._gaps = self._deferred = 0
        self._waiting = ""

    def request(self, symbols: Iterable[str], cause: str, feed_now_ns: int | None,
                watched_ns: int | None = None) -> None:
        """Catch ``symbols`` up: they start being watched now, or at ``watched_ns`` (our clock just
        before the watch went out). A symbol already waiting keeps its earlier watch (a wider range)
        and takes the newer cause (a takeover names itself)."""
        now = self._clock() if watched_ns is None else watched_ns
        with self._lock:
            added = 0
            for symbol in symbols:
                pending = self._pending.get(symbol)
                if pending is None:
                    self._pending[symbol] = _Pending(symbol, cause, now, feed_now_ns)
                    added += 1
                else:
                    pending.cause = cause
            self._total += added
            self.gate.reset()  # what another process left on the bus must be stored first
        if added:
            log.info("catch-up requested", extra={"symbols": added, "cause": cause, "pending": len(self._pending)})

    def cancel(self, symbols: Iterable[str]) -> None:
        """The symbols are no longer watched: nothing to catch up."""
        with self._lock:
            for symbol in symbols:
                if self._pending.pop(symbol, None) is not None:
                    self._cancelled += 1

    def stats(self) -> CatchUpStats:
        with self._lock:
            pending = len(self._pending)
        return CatchUpStats(self._total, self._done, self._failed, self._cancelled, pending, self._recovered,
                            self._known, self._gaps, self._deferred, self._waiting if pending else "")

    def step(self, feed_now_ns: int | None, watched: frozenset[str], behind: str,
             progress: WriterProgress | None) -> Iterator[list[Trade]]:
        """Yield, symbol by symbol, the trades one batch of due symbols missed; the caller ingests
        each list before taking the next. A storage error propagates; the batch is retried later."""
        now = self._clock()
        with self._lock:
            self._cancel_unwatched(watched)
            due = sorted((p for p in self._pending.values() if p.due(feed_now_ns, now)), key=lambda p: p.symbol)
        if not due:
            if self._pending and feed_now_ns is None:
                self._waiting = "no heartbeat from the feed yet (its clock sets the range's end)"
            return
        reason = self.gate.reason(behind, progress)
        if reason:
            if reason != self._waiting:
                log.info("catch-up waits for the pipeline", extra={"reason": reason, "symbols": len(due)})
            self._waiting = reason
            self._deferred += 1
            return
        self._waiting = ""
        yield from self._catch_up(due[: self._batch])

    def _cancel_unwatched(self, watched: frozenset[str]) -> None:
        """Drop pending symbols the feed no longer watches (the caller holds the lock)."""
        for symbol in [s for s in self._pending if s not in watched]:
            del self._pending[symbol]
            self._cancelled += 1

    def _catch_up(self, batch: list[_Pending]) -> Iterator[list[Trade]]:
        symbols = [p.symbol for p in batch]
        bounds = {p.symbol: catch_up_start_ns(p.feed_ns, self._max_s) for p in batch}  # type: ignore[arg-type]
        received_before = min(p.watched_ns for p in batch)
        since = min(bounds.values())
        marks = trade_watermarks(self._store, symbols, received_before_ns=received_before, since_ns=since)
        last_live = last_received_events(self._store, symbols, received_before_ns=received_before, since_ns=since)
        recovered = known = done = 0
        gaps: list[StoredOutage] = []
        for p in batch:
            assert p.end_ns is not None and p.feed_ns is not None
            mark = marks.get(p.symbol)
            start_ns = max(bounds[p.symbol], mark.ts_ns if mark else bounds[p.symbol])
            try:
                history = self._fetch(p.symbol, start_ns, p.end_ns) if start_ns <= p.end_ns else []
            except LookupFailed as exc:
                self._lookup_failed(p, exc)
                continue
            missing = unknown_trades(p.symbol, history, self._stored, self._recent)
            if missing:
                yield missing
            recovered += len(missing)
            known += len(history) - len(missing)
            last = last_live.get(p.symbol)
            if last is not None and last < p.feed_ns:
                gaps.append(StoredOutage(self._source, "level1", p.symbol, p.cause, last, p.feed_ns))
            self._finish(p)
            done += 1
            log.debug("symbol caught up", extra={
                "symbol": p.symbol, "cause": p.cause, "trades": len(missing), "start_ns": start_ns,
                "end_ns": p.end_ns, "watermark_ns": mark.ts_ns if mark else None,
                "watermark_volume": mark.total_volume if mark else None})
        if gaps:
            self._record_gaps(gaps)
        with self._lock:
            self._done += done
            self._recovered += recovered
            self._known += known
            self._gaps += len(gaps)
            total, done, pending = self._total, self._done + self._failed + self._cancelled, len(self._pending)
        log.info("catch-up batch done", extra={
            "symbols": len(batch), "trades": recovered, "already_there": known, "restart_gaps": len(gaps),
            "progress": f"{done}/{total}", "pending": pending})

    def _finish(self, pending: _Pending) -> None:
        with self._lock:
            if self._pending.get(pending.symbol) is pending:
                del self._pending[pending.symbol]

    def _lookup_failed(self, pending: _Pending, exc: LookupFailed) -> None:
        """Count an attempt; after BACKFILL_MAX_ATTEMPTS the symbol is given up (the gap stays visible)."""
        pending.attempts += 1
        given_up = pending.attempts >= BACKFILL_MAX_ATTEMPTS
        log.log(logging.ERROR if given_up else logging.WARNING, "catch-up lookup failed",
                extra={"symbol": pending.symbol, "attempt": pending.attempts, "error": str(exc)})
        if given_up:
            self._finish(pending)
            with self._lock:
                self._failed += 1
