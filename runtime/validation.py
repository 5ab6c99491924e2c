"""Data-quality checks on events: pure rules, counted per rule, with the latest violations kept.

Why a separate, pure module: the same checks run wherever events flow (the collector
before the bus, a restore, a test) and the dashboard only reads counters. Nothing
here does I/O or reads a clock: event time is judged against the event's own
``recv_ns``. A violation is reported, never a reason to drop an event: storage keeps
what the feed sent, and the operator sees what looked wrong.

Rules (``RULES``):

- ``price_positive``: trade, depth (add/update/summary) and history prices > 0; a quote
  side that is present must not be negative (0 means "no market on that side", which
  is normal for far out-of-the-money options, and is not checked further).
- ``size_non_negative``: every size >= 0.
- ``crossed_quote``: bid > ask with both sides priced (flagged; locked bid == ask is fine).
- ``ts_missing``: a live trade or quote without ``ts_ns`` or ``recv_ns``.
- ``ts_future`` / ``ts_late``: ``ts_ns`` more than the tolerance after / before
  ``recv_ns``. Backfilled trades and history are old by design and skip ``ts_late``.
- ``seq_gap`` / ``seq_duplicate`` / ``seq_reordered``: per source, ``seq`` must go up by
  one. A jump opens a gap (its missing seqs are tracked); a seq that later fills a gap
  counts as reordered and closes that part of the gap; a seq already seen is a duplicate.
  Feed events in per-source order (the collector or a backup replay) for gap counts
  that mean loss: after Kafka, per-source order is spread over partitions.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from events import Depth, Event, HistoryBar, HistoryTick, Quote, Trade

RULES: tuple[str, ...] = (
    "price_positive",
    "size_non_negative",
    "crossed_quote",
    "ts_missing",
    "ts_future",
    "ts_late",
    "seq_gap",
    "seq_duplicate",
    "seq_reordered",
)

_PRICED_DEPTH_ACTIONS = frozenset({"add", "update", "summary"})


@dataclass(frozen=True)
class Violation:
    """One failed rule on one event, with enough identity to find the event in storage."""

    rule: str
    kind: str
    source: str
    seq: int
    symbol: str
    detail: str


@dataclass(frozen=True)
class SeqGap:
    """Seqs ``first``..``last`` of ``source`` not seen (yet)."""

    source: str
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Tolerances:
    """How far event time may sit from receive time before it is flagged."""

    future_ns: int = 2_000_000_000
    late_ns: int = 30_000_000_000


def check_event(event: Event, tolerances: Tolerances = Tolerances()) -> list[Violation]:
    """The stateless rules for one event (everything but the seq rules)."""
    problems: list[tuple[str, str]] = []
    if isinstance(event, Trade):
        _price(problems, "price", event.price)
        _size(problems, "size", event.size)
        _times(problems, event.ts_ns, event.recv_ns, tolerances, late_ok=event.backfilled, required=True)
    elif isinstance(event, Quote):
        for name, value in (("bid", event.bid), ("ask", event.ask)):
            if value is not None and value < 0:
                problems.append(("price_positive", f"{name} {value} < 0"))
        _size(problems, "bid_size", event.bid_size)
        _size(problems, "ask_size", event.ask_size)
        if event.bid and event.ask and event.bid > event.ask:
            problems.append(("crossed_quote", f"bid {event.bid} > ask {event.ask}"))
        _times(problems, event.ts_ns, event.recv_ns, tolerances, late_ok=False, required=True)
    elif isinstance(event, Depth):
        if event.action in _PRICED_DEPTH_ACTIONS and event.price is not None:
            _price(problems, "price", event.price)
        _size(problems, "size", event.size)
        if event.ts_ns:
            _times(problems, event.ts_ns, event.recv_ns, tolerances, late_ok=False, required=False)
    elif isinstance(event, HistoryTick):
        _price(problems, "price", event.price)
        _size(problems, "size", event.size)
    elif isinstance(event, HistoryBar):
        for name in ("open", "high", "low", "close"):
            _price(problems, name, getattr(event, name))
        _size(problems, "volume", event.volume)
    if not problems:
        return []
    kind = type(event).__struct_config__.tag
    symbol = getattr(event, "symbol", "")
    return [Violation(rule, str(kind), event.source, event.seq, symbol, detail) for rule, detail in problems]


def _price(problems: list[tuple[str, str]], name: str, value: float) -> None:
    if not value > 0:  # also catches NaN
        problems.append(("price_positive", f"{name} {value} <= 0"))


def _size(problems: list[tuple[str, str]], name: str, value: int | None) -> None:
    if value is not None and value < 0:
        problems.append(("size_non_negative", f"{name} {value} < 0"))


def _times(
    problems: list[tuple[str, str]], ts_ns: int, recv_ns: int, tolerances: Tolerances, *, late_ok: bool, required: bool
) -> None:
    if not ts_ns or not recv_ns:
        if required:
            problems.append(("ts_missing", f"ts_ns={ts_ns} recv_ns={recv_ns}"))
        return
    skew = ts_ns - recv_ns
    if skew > tolerances.future_ns:
        problems.append(("ts_future", f"ts_ns {skew / 1e9:.3f} s after recv_ns"))
    elif -skew > tolerances.late_ns and not late_ok:
        problems.append(("ts_late", f"ts_ns {-skew / 1e9:.3f} s before recv_ns"))


class _SourceSeqs:
    """Highest seq seen and the open gaps below it, for one source."""

    __slots__ = ("gaps", "high")

    def __init__(self, high: int) -> None:
        self.high = high
        self.gaps: list[list[int]] = []  # sorted, disjoint [first, last]


@dataclass(frozen=True)
class ValidationSnapshot:
    """A consistent read for the dashboard."""

    checked: int
    counts: dict[str, int]
    missing: int
    recent: list[Violation]
    gaps: list[SeqGap]


class Validator:
    """Runs every rule over batches and keeps counts per rule and the last few violations.

    ``max_gaps_per_source`` bounds memory when a source loses a lot: beyond it the
    oldest gap is forgotten (it stays counted in ``seq_gap``; a late event for it then
    counts as a duplicate). Thread-safe: one thread feeds, the dashboard snapshots.
    """

    def __init__(
        self,
        tolerances: Tolerances = Tolerances(),
        *,
        recent: int = 50,
        max_gaps_per_source: int = 10_000,
    ) -> None:
        self.tolerances = tolerances
        self._max_gaps = max_gaps_per_source
        self._lock = threading.Lock()
        self._checked = 0
        self._counts = dict.fromkeys(RULES, 0)
        self._missing = 0
        self._recent: deque[Violation] = deque(maxlen=recent)
        self._sources: dict[str, _SourceSeqs] = {}

    def feed(self, events: Iterable[Event]) -> list[Violation]:
        """Check a batch; returns its violations (also counted and kept in ``recent``)."""
        found: list[Violation] = []
        with self._lock:
            for event in events:
                self._checked += 1
                found.extend(check_event(event, self.tolerances))
                seq_problem = self._track_seq(event)
                if seq_problem is not None:
                    found.append(seq_problem)
            for violation in found:
                self._counts[violation.rule] += 1
                if violation.rule != "seq_reordered":
                    self._recent.append(violation)
        return found

    def _track_seq(self, event: Event) -> Violation | None:
        state = self._sources.get(event.source)
        seq = event.seq
        if state is None:
            self._sources[event.source] = _SourceSeqs(seq)
            return None
        if seq == state.high + 1:
            state.high = seq
            return None
        if seq > state.high:
            first, last = state.high + 1, seq - 1
            state.gaps.append([first, last])
            self._missing += last - first + 1
            if len(state.gaps) > self._max_gaps:
                state.gaps.pop(0)
            state.high = seq
            return self._seq_violation("seq_gap", event, f"missing seq {first}..{last} ({last - first + 1})")
        index = bisect.bisect_right(state.gaps, seq, key=lambda gap: gap[0]) - 1
        if index >= 0 and state.gaps[index][1] >= seq:
            self._fill(state.gaps, index, seq)
            self._missing -= 1
            return self._seq_violation("seq_reordered", event, f"seq {seq} arrived after {state.high}")
        return self._seq_violation("seq_duplicate", event, f"seq {seq} already seen (highest {state.high})")

    @staticmethod
    def _fill(gaps: list[list[int]], index: int, seq: int) -> None:
        first, last = gaps[index]
        replacement = [gap for gap in ([first, seq - 1], [seq + 1, last]) if gap[0] <= gap[1]]
        gaps[index : index + 1] = replacement

    @staticmethod
    def _seq_violation(rule: str, event: Event, detail: str) -> Violation:
        kind = type(event).__struct_config__.tag
        return Violation(rule, str(kind), event.source, event.seq, getattr(event, "symbol", ""), detail)

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def checked(self) -> int:
        return self._checked

    @property
    def missing(self) -> int:
        """Seqs missing now across all sources: falls when reordered events fill a gap, and
        includes gaps forgotten beyond ``max_gaps_per_source`` (they are still missing)."""
        return self._missing

    @property
    def recent(self) -> list[Violation]:
        """The last violations, oldest first (reorders excluded: they are expected after the bus)."""
        with self._lock:
            return list(self._recent)

    def gaps(self, limit: int = 100) -> list[SeqGap]:
        """Open gaps, newest first, at most ``limit``."""
        with self._lock:
            return self._gaps(limit)

    def _gaps(self, limit: int) -> list[SeqGap]:
        found = [SeqGap(source, first, last) for source, state in self._sources.items() for first, last in state.gaps]
        found.sort(key=lambda gap: gap.last, reverse=True)
        return found[:limit]

    def snapshot(self, gap_limit: int = 100) -> ValidationSnapshot:
        with self._lock:
            return ValidationSnapshot(
                checked=self._checked,
                counts=dict(self._counts),
                missing=self._missing,
                recent=list(self._recent),
                gaps=self._gaps(gap_limit),
            )
