"""The consistency check between two collectors watching one critical symbol: a digest per minute.

Each instance digests the live trades it receives of each critical symbol it watches (as owner or as
hot standby), per minute of the trades' exchange time: how many, the volume they add up to, the first
and last price (by exchange time, then cumulative volume: the same whatever order they arrived in) and
the highest cumulative day volume the feed reported. Two feeds that delivered the same prints give the
same digest; one dropped, altered or invented print changes it.

A minute is closed, and its digest handed out, once the feed clock has passed the minute's end by
``close_after_ns`` (late prints). The first minute an instance sees of a symbol is partial (the watch
began inside it) and is never handed out; neither are backfilled trades (those are storage's repair,
not what the feed delivered live). A trade for a minute already closed is counted as late.

:class:`ConsistencyCheck` pairs digests of one (symbol, minute) from different instances and names what
differs; one side alone is given up after ``wait_ns`` without a word (that instance may not have watched
that minute whole, or died).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from bus.json_record import dump_record, load_record
from events import Event, Trade

log = logging.getLogger(__name__)

MINUTE_NS = 60_000_000_000
DIGEST_VERSION = 1


class DigestRecordError(ValueError):
    """A record of the consistency topic cannot be read; the message names the key and what is wrong."""


@dataclass(frozen=True)
class MinuteDigest:
    symbol: str
    minute_ns: int  # start of the minute, exchange time (UTC ns)
    instance: str
    trades: int
    volume: int  # sum of the trades' sizes
    first_price: float
    last_price: float
    max_total_volume: int  # the highest cumulative day volume reported (0 when the feed reported none)

    @property
    def key(self) -> str:
        return digest_key(self.symbol, self.minute_ns, self.instance)


def digest_key(symbol: str, minute_ns: int, instance: str) -> str:
    return f"{symbol}|{minute_ns}|{instance}"


def minute_text(minute_ns: int) -> str:
    return datetime.fromtimestamp(minute_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC")


def encode_digest(digest: MinuteDigest) -> bytes:
    return dump_record(DIGEST_VERSION, asdict(digest))


def decode_digest(key: str, payload: bytes) -> MinuteDigest:
    data = load_record(payload, DIGEST_VERSION, what=f"digest {key!r}", kind="digest", error=DigestRecordError)
    try:
        digest = MinuteDigest(**data)
    except TypeError as exc:
        raise DigestRecordError(f"digest {key!r} lacks or mistypes a field ({exc})") from None
    if digest.key != key:
        raise DigestRecordError(f"digest keyed {key!r} is for {digest.key!r}")
    return digest


@dataclass
class _Minute:
    trades: int = 0
    volume: int = 0
    first: tuple[int, int, float] | None = None  # (ts_ns, total_volume, price)
    last: tuple[int, int, float] | None = None
    max_total_volume: int = 0

    def add(self, trade: Trade) -> None:
        order = (trade.ts_ns, trade.total_volume or 0, trade.price)
        self.trades += 1
        self.volume += trade.size
        self.first = order if self.first is None or order < self.first else self.first
        self.last = order if self.last is None or order > self.last else self.last
        self.max_total_volume = max(self.max_total_volume, trade.total_volume or 0)


@dataclass
class DigestBook:
    """Digests being built for one instance; ``add`` from the ingest path, ``close`` from a job (one lock
    held by the caller)."""

    instance: str
    _open: dict[tuple[str, int], _Minute] = field(default_factory=dict)
    _first_minute: dict[str, int] = field(default_factory=dict)  # partial: the watch began inside it
    _closed_upto: dict[str, int] = field(default_factory=dict)  # per symbol: minutes before this are closed
    late: int = 0  # trades for a minute already closed
    partial: int = 0  # first minutes of a watch, not handed out

    def add(self, events: Iterable[Event], symbols: frozenset[str]) -> None:
        for event in events:
            if not isinstance(event, Trade) or event.backfilled or event.symbol not in symbols:
                continue
            minute = event.ts_ns - event.ts_ns % MINUTE_NS
            if minute < self._closed_upto.get(event.symbol, minute):
                self.late += 1
                continue
            self._first_minute.setdefault(event.symbol, minute)
            self._open.setdefault((event.symbol, minute), _Minute()).add(event)

    def forget(self, symbols: Iterable[str]) -> None:
        """No longer watched: its open minutes are partial; a later watch starts a new first minute."""
        gone = set(symbols)
        self._open = {key: m for key, m in self._open.items() if key[0] not in gone}
        for symbol in gone:
            self._first_minute.pop(symbol, None)
            self._closed_upto.pop(symbol, None)

    def close(self, feed_now_ns: int, close_after_ns: int) -> list[MinuteDigest]:
        """The digests of minutes that ended ``close_after_ns`` or more before the feed clock."""
        due = sorted(key for key in self._open if key[1] + MINUTE_NS + close_after_ns <= feed_now_ns)
        digests = []
        for symbol, minute in due:
            acc = self._open.pop((symbol, minute))
            self._closed_upto[symbol] = max(self._closed_upto.get(symbol, 0), minute + MINUTE_NS)
            if minute == self._first_minute.get(symbol):
                self.partial += 1
                continue
            assert acc.first is not None and acc.last is not None
            digests.append(MinuteDigest(symbol, minute, self.instance, acc.trades, acc.volume, acc.first[2],
                                        acc.last[2], acc.max_total_volume))
        return digests


_COMPARED = ("trades", "volume", "first_price", "last_price", "max_total_volume")


def differences(a: MinuteDigest, b: MinuteDigest) -> tuple[str, ...]:
    """What differs between two instances' digests of one minute, each as ``field a != b``."""
    return tuple(f"{name} {getattr(a, name)} ({a.instance}) != {getattr(b, name)} ({b.instance})"
                 for name in _COMPARED if getattr(a, name) != getattr(b, name))


@dataclass(frozen=True)
class Mismatch:
    symbol: str
    minute_ns: int
    found_ns: int
    differences: tuple[str, ...]

    def describe(self) -> str:
        return f"{minute_text(self.minute_ns)}: {'; '.join(self.differences)}"


@dataclass(frozen=True)
class Verdict:
    """The latest comparison of a symbol: which minute, and what differed (nothing: the two agreed)."""

    minute_ns: int
    differences: tuple[str, ...]


@dataclass(frozen=True)
class CheckStats:
    comparisons: int  # (symbol, minute) pairs compared
    differences: int  # of those, the ones that differed
    unpaired: int  # digests given up without a partner after wait_ns
    rejected: int  # records that could not be read (logged)
    waiting: int  # digests waiting for a partner now


class ConsistencyCheck:
    """Pairs the digests of the consistency topic (the rules owner's job); pure, time passed in."""

    def __init__(self, wait_ns: int, shown_ns: int) -> None:
        self.wait_ns = wait_ns
        self.shown_ns = shown_ns  # a mismatch stays in :meth:`inconsistent` this long (then its alert resolves)
        self._seen: dict[str, int] = {}  # key -> when first seen (ns)
        self._mismatches: list[Mismatch] = []
        self._latest: dict[str, Verdict] = {}  # symbol -> its latest minute compared (the Fleet page shows it)
        self._comparisons = 0
        self._differences = 0
        self._unpaired = 0
        self.rejected: dict[str, str] = {}

    def review(self, entries: Mapping[str, bytes], now_ns: int) -> list[str]:
        """Compare what can be compared; return the keys that are done (compared or given up), for the
        caller to delete from the topic."""
        groups: dict[tuple[str, int], list[MinuteDigest]] = {}
        done: list[str] = []
        for key, payload in entries.items():
            try:
                digest = decode_digest(key, payload)
            except DigestRecordError as exc:
                log.error("consistency digest rejected and deleted", extra={"key": key, "error": str(exc)})
                self.rejected[key] = str(exc)
                done.append(key)
                continue
            self._seen.setdefault(key, now_ns)
            groups.setdefault((digest.symbol, digest.minute_ns), []).append(digest)
        for (symbol, minute), digests in groups.items():
            digests.sort(key=lambda d: d.instance)
            if len(digests) >= 2:
                found = [diff for other in digests[1:] for diff in differences(digests[0], other)]
                self._comparisons += 1
                if minute >= self._latest.get(symbol, Verdict(minute, ())).minute_ns:
                    self._latest[symbol] = Verdict(minute, tuple(found))
                if found:
                    self._differences += 1
                    self._mismatches.append(Mismatch(symbol, minute, now_ns, tuple(found)))
                done += [d.key for d in digests]
            elif now_ns - self._seen[digests[0].key] >= self.wait_ns:
                self._unpaired += 1
                done.append(digests[0].key)
        for key in done:
            self._seen.pop(key, None)
        self._seen = {key: at for key, at in self._seen.items() if key in entries}
        self._mismatches = [m for m in self._mismatches if now_ns - m.found_ns < self.shown_ns]
        return done

    def inconsistent(self) -> dict[str, str]:
        """Symbol -> its recent mismatches described (minute and what differed), for the alert rule."""
        found: dict[str, list[str]] = {}
        for mismatch in self._mismatches:
            found.setdefault(mismatch.symbol, []).append(mismatch.describe())
        return {symbol: " | ".join(descriptions) for symbol, descriptions in found.items()}

    def verdicts(self) -> dict[str, Verdict]:
        return dict(self._latest)

    def stats(self) -> CheckStats:
        return CheckStats(self._comparisons, self._differences, self._unpaired, len(self.rejected), len(self._seen))
