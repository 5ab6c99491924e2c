"""IQFeed wire format: pure decoding of server lines, command formatting, symbol rules.

Nothing here does I/O, so every rule about the protocol can be tested line by line and
reused by the connections, the decode CLI and the benchmark. The only state IQFeed
itself makes us keep (the Level 1 update field list and the date of the latest ``T``
heartbeat, because quote times and, unless their date field is selected, trade times
carry no date) lives in :class:`Level1Decoder`; each per-line function takes that
state as an argument and returns events.

Every number becomes an event value only if it fits the column that stores it
(``storage/schema.py``): counts, sizes, volumes and ids 0..Int64 max, market centers
0..Int32 max, prices finite, dates inside :data:`MIN_DATE`..:data:`MAX_DATE`. A value
outside is a :class:`ProtocolError` for the whole line, which the connection counts and
logs; passed on, it would make msgpack raise or fail every insert of its batch.

Times: IQFeed sends US/Eastern wall clock. They become UTC epoch nanoseconds with
``zoneinfo("America/New_York")``. For speed the hot path never builds a ``datetime``:
it caches, per calendar day, the UTC epoch second of local midnight and adds the
seconds of the day; only the two DST-change days a year (whose offset changes within
the day) take the slower ``datetime`` route.

Errors are types: a malformed line raises :class:`ProtocolError` (carrying the raw
line), never ``ValueError``/``IndexError``; the caller counts and logs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Callable, Final, Literal, Sequence
from zoneinfo import ZoneInfo

from events import (
    Depth,
    Event,
    FeedError,
    Heartbeat,
    HistoryBar,
    HistoryTick,
    Quote,
    SymbolNotFound,
    System,
    Trade,
)

EASTERN: Final = ZoneInfo("America/New_York")
PROTOCOL_VERSION: Final = "6.2"

IQFEED_DEFAULT_FIELDS: Final[tuple[str, ...]] = (
    "Most Recent Trade",
    "Most Recent Trade Size",
    "Most Recent Trade Time",
    "Most Recent Trade Market Center",
    "Total Volume",
    "Bid",
    "Bid Size",
    "Ask",
    "Ask Size",
    "Open",
    "High",
    "Low",
    "Close",
    "Message Contents",
    "Most Recent Trade Conditions",
)
"""IQFeed's default Level 1 update fields (Symbol is always first and implied): how ``Q``/``P``
lines read on a fresh socket until a ``S,SELECT UPDATE FIELDS`` is answered."""

DEFAULT_UPDATE_FIELDS: Final[tuple[str, ...]] = (
    *IQFEED_DEFAULT_FIELDS[:3],
    "Most Recent Trade Date",
    *IQFEED_DEFAULT_FIELDS[3:],
)
"""The fields the Level 1 connection selects: IQFeed's defaults plus the trade's own date.

Without the date a trade time is placed on the day of the latest heartbeat, which is
wrong whenever that heartbeat is not the trade's day (a replay, the first lines of a
socket, a summary of an older trade); ``MM/DD/YYYY`` costs 11 bytes a line."""

SYMBOL_MAX_LEN: Final = 30
_NS: Final = 1_000_000_000
_HALF_DAY_S: Final = 43_200
_DAY_S: Final = 86_400
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_CACHE_LIMIT: Final = 8192

INT64_MAX: Final = (1 << 63) - 1
"""Sizes, volumes, counts and tick ids are stored as Int64 (storage/schema.py)."""
INT32_MAX: Final = (1 << 31) - 1
"""Market centers are stored as Int32."""
MIN_DATE: Final = date(1970, 1, 2)
MAX_DATE: Final = date(2106, 2, 5)
"""The dates a feed line may carry. Tables are partitioned by ``toDateTime`` of ts_ns,
UInt32 seconds from 1970 to 2106-02-07; with a day of margin each side (a dateless time
may be placed on the day before or after its heartbeat's, Eastern is up to 5 h behind
UTC) every ts_ns made from these dates falls inside that range."""
_MIN_ORDINAL: Final = MIN_DATE.toordinal()
_MAX_ORDINAL: Final = MAX_DATE.toordinal()


# --------------------------------------------------------------------------- errors


class IQFeedError(Exception):
    """Base of every error this package raises on purpose."""


class ProtocolError(IQFeedError):
    """A line that does not follow the protocol; ``line`` keeps the raw text for the log."""

    def __init__(self, reason: str, line: str = "") -> None:
        self.reason = reason
        self.line = line
        shown = line if len(line) <= 300 else line[:300] + "..."
        super().__init__(f"{reason}: {shown!r}")


class ProtocolVersionError(IQFeedError):
    """IQConnect does not speak our protocol version: upgrade IQConnect or set feed.protocol."""


class InvalidSymbol(IQFeedError, ValueError):
    """A symbol that could break the command line (comma, whitespace, control chars, length)."""


class SymbolLimitReached(IQFeedError):
    """Watching one more symbol would exceed the configured ``feed.watch_limit``."""


class LookupFailed(IQFeedError):
    """A lookup (history) request failed; the message says what IQFeed answered."""


class LookupTimeout(LookupFailed):
    """No complete lookup answer within the timeout; the request was abandoned."""


class NoData(LookupFailed):
    """IQFeed answered ``!NO_DATA!``: nothing in the requested range."""


class LookupThrottled(LookupFailed):
    """IQFeed refused the request for exceeding its request rate; retry later."""


# ----------------------------------------------------------------- symbols, commands


def validate_symbol(symbol: str) -> str:
    """Return the canonical (upper-case) symbol or raise :class:`InvalidSymbol`.

    A symbol is pasted into a command line, so a comma, CR or LF would let a caller
    inject commands (``AAPL\\r\\nS,SET LOGINID,x``); anything outside printable ASCII
    is rejected for the same reason. IQFeed symbols are upper case, so ``aapl`` is
    normalised rather than watched twice under two spellings.
    """
    if not isinstance(symbol, str):
        raise InvalidSymbol(f"symbol must be a string, got {type(symbol).__name__}")
    if not symbol:
        raise InvalidSymbol("symbol is empty")
    if len(symbol) > SYMBOL_MAX_LEN:
        raise InvalidSymbol(
            f"symbol {symbol[:40]!r}... is {len(symbol)} characters; the limit is {SYMBOL_MAX_LEN}"
        )
    for char in symbol:
        if char == ",":
            raise InvalidSymbol(f"symbol {symbol!r} contains a comma, which would split the command")
        if not "!" <= char <= "~":
            raise InvalidSymbol(
                f"symbol {symbol!r} contains {char!r}: only printable ASCII without "
                "spaces, commas or control characters is allowed"
            )
    return symbol.upper()


def format_command(*parts: str) -> bytes:
    """Join command fields with commas and end the line with CRLF.

    Parts must not contain line breaks: that is what would turn data into a second
    command, so it is refused here as a last line of defence.
    """
    for part in parts:
        if "\r" in part or "\n" in part:
            raise ValueError(f"command field {part!r} contains a line break")
    return (",".join(parts) + "\r\n").encode("latin-1")


def set_protocol_command(version: str = PROTOCOL_VERSION) -> bytes:
    return format_command("S", "SET PROTOCOL", version)


def select_update_fields_command(fields: Sequence[str]) -> bytes:
    return format_command("S", "SELECT UPDATE FIELDS", *fields)


def watch_command(symbol: str) -> bytes:
    """``w<SYM>``: trades and quotes for one symbol on Level 1."""
    return format_command("w" + validate_symbol(symbol))


def unwatch_command(symbol: str) -> bytes:
    return format_command("r" + validate_symbol(symbol))


DepthBook = Literal["levels", "orders"]


def depth_watch_command(symbol: str, book: DepthBook = "levels") -> bytes:
    """``WPL,<SYM>`` (price levels) or ``WOR,<SYM>`` (orders) on Level 2."""
    return format_command("WPL" if book == "levels" else "WOR", validate_symbol(symbol))


def depth_unwatch_command(symbol: str, book: DepthBook = "levels") -> bytes:
    return format_command("RPL" if book == "levels" else "ROR", validate_symbol(symbol))


def history_ticks_command(
    symbol: str, start_ns: int, end_ns: int, request_id: str, per_send: int = 500
) -> bytes:
    """``HTT``: ticks between two instants, oldest first, IQFeed's times in US/Eastern.

    HTT takes whole seconds, so the start is rounded down and the end up; callers
    filter the rows to the exact nanosecond range.
    """
    begin = _format_htt_time(start_ns // _NS)
    end = _format_htt_time(-(-end_ns // _NS))
    return format_command(
        "HTT", validate_symbol(symbol), begin, end, "", "", "", "1", request_id, str(per_send)
    )


def history_daily_command(symbol: str, first: date, last: date, request_id: str, per_send: int = 100) -> bytes:
    """``HDT``: daily bars from ``first`` to ``last`` (Eastern calendar dates, both included), oldest first.

    Parameters in IQFeed's order: Symbol, BeginDate, EndDate (``YYYYMMDD``), MaxDatapoints
    (empty: no limit), DataDirection (1: oldest first), RequestID, DatapointsPerSend.
    """
    if last < first:
        raise ValueError(f"daily bars from {first} to {last}: the last date is before the first")
    return format_command(
        "HDT", validate_symbol(symbol), first.strftime("%Y%m%d"), last.strftime("%Y%m%d"), "", "1", request_id,
        str(per_send),
    )


def _format_htt_time(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, EASTERN).strftime("%Y%m%d %H%M%S")


# ------------------------------------------------------------------------- time


@lru_cache(maxsize=64)
def _midnight_utc_s(ordinal: int) -> int | None:
    """UTC epoch second of local midnight, or None when the UTC offset changes that day."""
    day = date.fromordinal(ordinal)
    first = datetime(day.year, day.month, day.day, tzinfo=EASTERN).utcoffset()
    last = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=EASTERN).utcoffset()
    if first is None or first != last:
        return None
    return (ordinal - _EPOCH_ORDINAL) * _DAY_S - int(first.total_seconds())


def eastern_to_ns(ordinal: int, second_of_day: int, frac_ns: int = 0) -> int:
    """US/Eastern wall clock (day ordinal, second of day, nanoseconds) -> UTC epoch ns.

    On the DST-change days the offset is looked up for the exact time; a wall time that
    occurs twice (the repeated hour in November) resolves to its first occurrence.
    """
    base = _midnight_utc_s(ordinal)
    if base is not None:
        return (base + second_of_day) * _NS + frac_ns
    day = date.fromordinal(ordinal)
    hour, rest = divmod(second_of_day, 3600)
    wall = datetime(day.year, day.month, day.day, hour, rest // 60, rest % 60, tzinfo=EASTERN)
    offset = wall.utcoffset()
    offset_s = int(offset.total_seconds()) if offset is not None else 0
    return ((ordinal - _EPOCH_ORDINAL) * _DAY_S + second_of_day - offset_s) * _NS + frac_ns


_SECONDS_CACHE: dict[str, int] = {}


def _second_of_day(hms: str) -> int:
    """``HH:MM:SS`` -> seconds since midnight, memoised (times repeat within a second)."""
    seconds = _SECONDS_CACHE.get(hms)
    if seconds is not None:
        return seconds
    if len(hms) != 8 or hms[2] != ":" or hms[5] != ":" or not (hms[:2] + hms[3:5] + hms[6:]).isdigit():
        raise ValueError(f"bad time {hms!r}")
    hour, minute, second = int(hms[:2]), int(hms[3:5]), int(hms[6:])
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time out of range {hms!r}")
    if len(_SECONDS_CACHE) >= _CACHE_LIMIT:
        _SECONDS_CACHE.clear()
    seconds = _SECONDS_CACHE[hms] = hour * 3600 + minute * 60 + second
    return seconds


def _split_time(text: str) -> tuple[int, int]:
    """``HH:MM:SS[.f...]`` -> (second of day, fraction in ns)."""
    if len(text) == 15 and text[8] == ".":  # the usual microsecond form
        frac = text[9:]
        if not frac.isdigit():
            raise ValueError(f"bad fraction in {text!r}")
        return _second_of_day(text[:8]), int(frac) * 1000
    if len(text) == 8:
        return _second_of_day(text), 0
    if 10 <= len(text) <= 18 and text[8] == "." and text[9:].isdigit():
        frac = text[9:]
        return _second_of_day(text[:8]), int(frac) * 10 ** (9 - len(frac))
    raise ValueError(f"bad time {text!r}")


_DATE_CACHE: dict[str, int] = {}


def _ordinal(text: str, year: str, month: str, day: str) -> int:
    """The day ordinal of a date's digits, which must be ASCII and inside MIN_DATE..MAX_DATE."""
    if not (year + month + day).isdigit() or not text.isascii():
        raise ValueError(f"bad date {text!r}")
    try:
        ordinal = date(int(year), int(month), int(day)).toordinal()
    except ValueError:
        raise ValueError(f"no such date {text!r}") from None
    if not _MIN_ORDINAL <= ordinal <= _MAX_ORDINAL:
        raise ValueError(f"date {text!r} outside {MIN_DATE}..{MAX_DATE}")
    return ordinal


def _iso_ordinal(text: str) -> int:
    """``YYYY-MM-DD`` -> day ordinal, memoised."""
    ordinal = _DATE_CACHE.get(text)
    if ordinal is not None:
        return ordinal
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"bad date {text!r}")
    ordinal = _ordinal(text, text[:4], text[5:7], text[8:])
    if len(_DATE_CACHE) >= _CACHE_LIMIT:
        _DATE_CACHE.clear()
    _DATE_CACHE[text] = ordinal
    return ordinal


def _compact_ordinal(text: str) -> int:
    """``YYYYMMDD`` -> day ordinal."""
    if len(text) != 8:
        raise ValueError(f"bad date {text!r}")
    return _ordinal(text, text[:4], text[4:6], text[6:])


_TRADE_DAYS: dict[str, FeedDate] = {}


def _trade_day(text: str) -> FeedDate:
    """``MM/DD/YYYY`` (Level 1 "Most Recent Trade Date") -> the context that places a time on that day.

    A context at noon puts every time of day on its own day (it is never more than
    12 h away), so dated trades reuse :class:`FeedDate` and its per-second memo.
    """
    day = _TRADE_DAYS.get(text)
    if day is None:
        if len(text) != 10 or text[2] != "/" or text[5] != "/":
            raise ValueError(f"bad trade date {text!r}, expected MM/DD/YYYY")
        day = FeedDate.at(_ordinal(text, text[6:], text[:2], text[3:5]), _HALF_DAY_S)
        if len(_TRADE_DAYS) >= _CACHE_LIMIT:
            _TRADE_DAYS.clear()
        _TRADE_DAYS[text] = day
    return day


def _iso_datetime_ns(text: str) -> int:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` (lookup rows) -> UTC epoch ns."""
    if len(text) < 19 or text[10] != " ":
        raise ValueError(f"bad timestamp {text!r}")
    second, frac = _split_time(text[11:])
    return eastern_to_ns(_iso_ordinal(text[:10]), second, frac)


@dataclass(frozen=True, slots=True)
class FeedDate:
    """The date context for dateless trade times: the latest heartbeat, in Eastern time.

    A trade time is placed on the heartbeat's day, or on the day before or after when
    that puts it closer to the heartbeat (more than 12 h apart means midnight passed in
    between): heartbeat 23:59:59 and trade 00:00:01 is the next day; heartbeat 00:00:01
    and trade 23:59:58 the day before. A summary (``P``) whose last trade is more than
    12 h old can therefore land on the wrong day; IQFeed gives no date to do better.
    ``seconds`` memoises ``HH:MM:SS`` -> epoch ns for this context: trades within a
    heartbeat's second share a handful of such prefixes, so the hot path costs one
    dict lookup instead of parsing the time and choosing the day.
    """

    ordinal: int
    second_of_day: int
    ns: int
    base: int | None
    seconds: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def at(cls, ordinal: int, second_of_day: int) -> FeedDate:
        """The context of a heartbeat at this Eastern day and second."""
        return cls(ordinal, second_of_day, eastern_to_ns(ordinal, second_of_day), _midnight_utc_s(ordinal))

    @classmethod
    def from_epoch_ns(cls, epoch_ns: int) -> FeedDate:
        """The context a wall clock gives, used until the first heartbeat arrives."""
        local = datetime.fromtimestamp(epoch_ns // _NS, EASTERN)
        return cls.at(local.toordinal(), local.hour * 3600 + local.minute * 60 + local.second)

    def second_ns(self, hms: str) -> int:
        """Epoch ns of a dateless ``HH:MM:SS``, memoised in :attr:`seconds`."""
        ns = self.seconds.get(hms)
        if ns is None:
            ns = self.trade_ns(_second_of_day(hms), 0)
            if len(self.seconds) >= _CACHE_LIMIT:
                self.seconds.clear()
            self.seconds[hms] = ns
        return ns

    def trade_ns(self, second_of_day: int, frac_ns: int) -> int:
        """Epoch ns of a dateless Eastern time, placed on the day nearest the heartbeat."""
        delta = second_of_day - self.second_of_day
        if -_HALF_DAY_S <= delta <= _HALF_DAY_S:
            if self.base is not None:
                return (self.base + second_of_day) * _NS + frac_ns
            return eastern_to_ns(self.ordinal, second_of_day, frac_ns)
        return eastern_to_ns(self.ordinal + (1 if delta < 0 else -1), second_of_day, frac_ns)


# -------------------------------------------------------------- common line types


def _strip_trailing_empty(fields: list[str]) -> tuple[str, ...]:
    end = len(fields)
    while end and not fields[end - 1]:
        end -= 1
    return tuple(fields[:end])


_CONNECTION_NAMES: Final[dict[str, bool]] = {
    "SERVER CONNECTED": True,
    "SERVER DISCONNECTED": False,
    "SERVER RECONNECT FAILED": False,
}
_STATS_STATUS_INDEX: Final = 12
_STATS_COUNTS: Final = (
    (3, "ServerPort", 65_535),
    (4, "MaxSymbols", INT64_MAX),
    (5, "NumberOfSymbols", INT64_MAX),
    (6, "ClientsConnected", INT64_MAX),
    (7, "SecondsSinceLastUpdate", INT64_MAX),
    (8, "Reconnections", INT64_MAX),
    (9, "AttemptedReconnections", INT64_MAX),
)
_STATS_AMOUNTS: Final = (
    (15, "TotalKBsRecv"),
    (16, "KBsPerSecRecv"),
    (17, "AvgKBsPerSecRecv"),
    (18, "TotalKBsSent"),
    (19, "KBsPerSecSent"),
    (20, "AvgKBsPerSecSent"),
)
"""Where ``S,STATS`` carries numbers (pyiqfeed reads the same positions as int and float)."""


def parse_system(parts: list[str], line: str) -> System:
    """``S,<NAME>,...``; ``connected`` is set for lines that tell IQConnect's DTN state."""
    if len(parts) < 2 or not parts[1]:
        raise ProtocolError("system message without a name", line)
    name = parts[1]
    connected = _CONNECTION_NAMES.get(name)
    if name == "STATS":
        if len(parts) <= _STATS_STATUS_INDEX:
            raise ProtocolError("S,STATS with too few fields", line)
        status = parts[_STATS_STATUS_INDEX]
        if status == "Connected":
            connected = True
        elif status == "Not Connected":
            connected = False
        else:
            raise ProtocolError(f"S,STATS with unknown status {status!r}", line)
        _check_stats_numbers(parts, line)
    return System(name=name, fields=_strip_trailing_empty(parts[2:]), connected=connected)


def _check_stats_numbers(parts: list[str], line: str) -> None:
    """Counts must be integers in range and KB figures finite and not negative.

    The fields are kept as text, but a dashboard or alert that reads them must be able
    to trust them. Empty fields (``Not Connected`` leaves several empty) and missing
    trailing ones are accepted, as before.
    """
    for index, what, limit in _STATS_COUNTS:
        text = parts[index] if index < len(parts) else ""
        try:
            _optional_count(text, limit)
        except ValueError as exc:
            raise ProtocolError(f"S,STATS {what} is not a count ({exc})", line) from None
    for index, what in _STATS_AMOUNTS:
        text = parts[index] if index < len(parts) else ""
        try:
            value = _optional_float(text)
        except ValueError as exc:
            raise ProtocolError(f"S,STATS {what} is not a number ({exc})", line) from None
        if value is not None and value < 0:
            raise ProtocolError(f"S,STATS {what} {text[:30]!r} is negative", line)


def parse_heartbeat(parts: list[str], line: str) -> Heartbeat:
    """``T,YYYYMMDD HH:MM:SS`` -> Heartbeat with the server's time as UTC ns."""
    if len(parts) < 2 or len(parts[1]) != 17 or parts[1][8] != " ":
        raise ProtocolError("timestamp is not 'T,YYYYMMDD HH:MM:SS'", line)
    try:
        ordinal = _compact_ordinal(parts[1][:8])
        second = _second_of_day(parts[1][9:])
    except ValueError as exc:
        raise ProtocolError(f"bad timestamp ({exc})", line) from None
    return Heartbeat(ts_ns=eastern_to_ns(ordinal, second))


def parse_error(parts: list[str], line: str, request_id: str = "") -> FeedError:
    """``E,<text>,`` -> FeedError; the text keeps any commas it had."""
    message = ",".join(_strip_trailing_empty(parts[1:]))
    if not message:
        raise ProtocolError("error message without text", line)
    return FeedError(message=message, request_id=request_id)


def parse_symbol_not_found(parts: list[str], line: str) -> SymbolNotFound:
    if len(parts) < 2 or not parts[1]:
        raise ProtocolError("symbol-not-found without a symbol", line)
    return SymbolNotFound(symbol=parts[1])


def _decode_common(parts: list[str], line: str) -> list[Event] | None:
    """The message types every streaming port may send; None when not one of them."""
    kind = parts[0]
    if kind == "S":
        return [parse_system(parts, line)]
    if kind == "E":
        return [parse_error(parts, line)]
    if kind == "T":
        return [parse_heartbeat(parts, line)]
    if kind == "n":
        return [parse_symbol_not_found(parts, line)]
    return None


# ------------------------------------------------------------------------ Level 1


class UpdateLayout:
    """Where each field we use sits in a split ``Q``/``P`` line.

    Built once per ``S,CURRENT UPDATE FIELDNAMES`` so the hot path indexes a list
    instead of building a dict per line. Index 0 is the message type, 1 the symbol;
    a field that is not selected gets index -1, and the decoder appends an empty
    field to each line so that index always reads as "empty".
    """

    __slots__ = ("names", "width", "slots", "has_trade", "has_contents", "has_quote_time")

    def __init__(self, names: Sequence[str]) -> None:
        names = tuple(names)
        if not names or names[0] != "Symbol":
            raise ValueError(f"update field list must start with Symbol, got {names[:1]}")
        index = {name: position + 1 for position, name in enumerate(names)}
        self.names = names
        self.width = len(names) + 1
        self.slots: tuple[int, ...] = tuple(index.get(name, -1) for name in _SLOT_FIELDS)
        self.has_trade = all(index.get(name, -1) > 0 for name in _SLOT_FIELDS[:3])
        self.has_contents = "Message Contents" in index
        self.has_quote_time = "Bid Time" in index or "Ask Time" in index


_SLOT_FIELDS: Final = (
    "Most Recent Trade",
    "Most Recent Trade Size",
    "Most Recent Trade Time",
    "Most Recent Trade Market Center",
    "Total Volume",
    "Bid",
    "Bid Size",
    "Ask",
    "Ask Size",
    "Message Contents",
    "Most Recent Trade Conditions",
    "TickID",
    "Most Recent Trade Date",
    "Bid Time",
    "Ask Time",
)

DEFAULT_LAYOUT: Final = UpdateLayout(("Symbol", *IQFEED_DEFAULT_FIELDS))

_CONDITIONS_CACHE: dict[str, tuple[str, ...]] = {"": ()}
_HEX: Final = frozenset("0123456789ABCDEFabcdef")


def split_conditions(codes: str) -> tuple[str, ...]:
    """``873D17`` -> ``("87", "3D", "17")``; IQFeed concatenates 2-hex-digit codes."""
    cached = _CONDITIONS_CACHE.get(codes)
    if cached is not None:
        return cached
    if len(codes) % 2 or not _HEX.issuperset(codes):
        raise ValueError(f"trade conditions {codes!r} are not 2-hex-digit codes")
    result = tuple(codes[i : i + 2] for i in range(0, len(codes), 2))
    if len(_CONDITIONS_CACHE) >= _CACHE_LIMIT:
        _CONDITIONS_CACHE.clear()
        _CONDITIONS_CACHE[""] = ()
    _CONDITIONS_CACHE[codes] = result
    return result


def _optional_float(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    if value - value != 0.0:  # NaN or infinity
        raise ValueError(f"non-finite number {text!r}")
    return value


def _count(text: str, limit: int = INT64_MAX) -> int:
    """A size, volume, count or id: an integer in 0..``limit`` (its column's range)."""
    value = int(text)
    if not 0 <= value <= limit:
        raise ValueError(f"{text[:30]!r} outside 0..{limit}")
    return value


def _optional_count(text: str, limit: int = INT64_MAX) -> int | None:
    return _count(text, limit) if text else None


def decode_update(parts: list[str], layout: UpdateLayout, when: FeedDate, line: str) -> list[Event]:
    """A split ``Q``/``P`` line -> a Trade and/or a Quote, as Message Contents says.

    C/E/O (last, extended-hours, other trade) make a trade; b/a (bid, ask) a quote;
    the other letters (o/h/l/c/s/v) change nothing we publish. Without Message Contents
    in the field list a line is a quote, plus a trade when it has a trade price. Quote
    time: the trade's when the line also has a trade, else the later of Bid/Ask Time
    when selected, else the latest heartbeat (the default fields give quotes no time).
    A trade's date is its Most Recent Trade Date when selected and not empty, else the
    heartbeat's (see :class:`FeedDate`).

    Every number must fit the column that stores it (sizes, volumes and tick ids
    0..Int64 max, market center 0..Int32 max, prices finite): a value that does not
    would fail every insert of its batch, or msgpack, downstream, so the whole line is
    a :class:`ProtocolError` instead. This is the hot path (hundreds of thousands of
    lines a second), hence the locals and the inlined conversions and checks.
    """
    if len(parts) < layout.width:
        raise ProtocolError(f"update has {len(parts) - 1} fields, the field list names {layout.width - 1}", line)
    symbol = parts[1]
    if not symbol:
        raise ProtocolError("update without a symbol", line)
    parts.append("")  # what index -1 (a field not selected) reads
    (i_last, i_size, i_time, i_center, i_volume, i_bid, i_bid_size, i_ask, i_ask_size, i_contents, i_conditions,
     i_tick, i_date, _, _) = layout.slots
    contents = parts[i_contents] if layout.has_contents else ("C" if parts[i_last] else "") + "ba"
    if "C" in contents:
        basis = "C"
    elif "E" in contents:
        basis = "E"
    elif "O" in contents:
        basis = "O"
    else:
        basis = ""
    events: list[Event] = []
    trade_ns = 0
    try:
        if basis:
            if not layout.has_trade:
                raise ProtocolError("trade flagged but the field list has no trade fields", line)
            price = float(parts[i_last])
            size = int(parts[i_size])
            if price - price != 0.0 or not 0 <= size <= INT64_MAX:
                raise ProtocolError(f"trade price not finite or size outside 0..{INT64_MAX}", line)
            trade_date = parts[i_date]
            day = (_TRADE_DAYS.get(trade_date) or _trade_day(trade_date)) if trade_date else when
            text = parts[i_time]
            frac = text[9:]
            if len(text) == 15 and text[8] == "." and frac.isdigit():
                trade_ns = (day.seconds.get(text[:8]) or day.second_ns(text[:8])) + int(frac) * 1000
            else:
                second, frac_ns = _split_time(text)
                trade_ns = day.trade_ns(second, frac_ns)
            center = parts[i_center]
            volume = parts[i_volume]
            tick = parts[i_tick]
            market_center = int(center) if center else 0
            total_volume = int(volume) if volume else 0
            tick_id = int(tick) if tick else 0
            if not (0 <= market_center <= INT32_MAX and 0 <= total_volume <= INT64_MAX and 0 <= tick_id <= INT64_MAX):
                raise ProtocolError(
                    f"trade market center outside 0..{INT32_MAX} or total volume or tick id outside 0..{INT64_MAX}",
                    line,
                )
            conditions = parts[i_conditions]
            events.append(
                Trade(
                    symbol=symbol,
                    price=price,
                    size=size,
                    ts_ns=trade_ns,
                    conditions=_CONDITIONS_CACHE.get(conditions) or split_conditions(conditions),
                    market_center=market_center if center else None,
                    tick_id=tick_id if tick else None,
                    total_volume=total_volume if volume else None,
                    basis=basis,
                )
            )
        if "b" in contents or "a" in contents:
            bid = parts[i_bid]
            bid_size = parts[i_bid_size]
            ask = parts[i_ask]
            ask_size = parts[i_ask_size]
            bid_price = float(bid) if bid else 0.0
            ask_price = float(ask) if ask else 0.0
            bid_count = int(bid_size) if bid_size else 0
            ask_count = int(ask_size) if ask_size else 0
            if bid_price - bid_price != 0.0 or ask_price - ask_price != 0.0:
                raise ProtocolError("quote price not finite", line)
            if not (0 <= bid_count <= INT64_MAX and 0 <= ask_count <= INT64_MAX):
                raise ProtocolError(f"quote size outside 0..{INT64_MAX}", line)
            events.append(
                Quote(
                    symbol=symbol,
                    bid=bid_price if bid else None,
                    bid_size=bid_count if bid_size else None,
                    ask=ask_price if ask else None,
                    ask_size=ask_count if ask_size else None,
                    ts_ns=trade_ns or _quote_ns(parts, layout, when),
                )
            )
    except ValueError as exc:
        raise ProtocolError(f"bad field value ({exc})", line) from None
    return events


def _quote_ns(parts: list[str], layout: UpdateLayout, when: FeedDate) -> int:
    if not layout.has_quote_time:
        return when.ns
    latest = -1
    for index in layout.slots[-2:]:
        if parts[index]:
            second, frac = _split_time(parts[index])
            latest = max(latest, when.trade_ns(second, frac))
    return latest if latest >= 0 else when.ns


@dataclass(frozen=True, slots=True)
class SkippedKind:
    """A Level 1 message type we recognise but publish no event for.

    ``counter`` is the name it is counted under (see :class:`Level1Decoder`);
    ``min_fields`` is how many fields after the type letter a line must have and
    ``first`` what field 1 holds: a line short of that is garbled and raises
    :class:`ProtocolError` like any other malformed line.
    """

    counter: str
    what: str
    min_fields: int
    first: str = "symbol"


SKIPPED_LEVEL1: Final[dict[str, SkippedKind]] = {
    # F,Symbol,Exchange ID,PE,...: the field list grows with the protocol version (6.2
    # added Base Currency, Contract Size and more; pyiqfeed's list names 57), so only
    # the symbol is required.
    "F": SkippedKind("fundamentals_skipped", "fundamental message", 1),
    # R,Symbol,Exchange,Bid,BidSize,BidTime,Ask,AskSize,AskTime,FractionDisplayCode,
    # DecimalPrecision,MarketCenter: pyiqfeed and the C# client agree on these 11.
    "R": SkippedKind("regionals_skipped", "regional quote", 11),
    # N,Distributor,StoryID,Sym:Sym:...,YYYYMMDD HHMMSS,Headline (pyiqfeed, C# client).
    "N": SkippedKind("news_skipped", "news headline", 5, "distributor"),
    # C: see the Level1Decoder docstring for why corrections are counted, not decoded.
    "C": SkippedKind("trade_corrections_skipped", "trade correction", 1),
}
"""Level 1 types that yield no event, by type letter; each is counted, never dropped silently."""

SKIPPED_LEVEL1_COUNTERS: Final[tuple[str, ...]] = tuple(kind.counter for kind in SKIPPED_LEVEL1.values())

SkipHook = Callable[[str, str], None]
"""Told ``(counter, line)`` for every recognised line that yields no event."""


class Level1Decoder:
    """Turns Level 1 lines into events, keeping the state IQFeed makes a client keep.

    That state is the update field list (``S,CURRENT UPDATE FIELDNAMES`` changes how
    every later ``Q``/``P`` line reads) and the latest heartbeat date (quote times are
    the heartbeat's, and a trade time has no date unless Most Recent Trade Date is
    selected). Until the first heartbeat the wall clock (``clock``, epoch ns) stands in;
    :meth:`new_socket` keeps the date context across reconnects.

    Fundamental, regional, news and trade-correction lines (F/R/N/C, see
    :data:`SKIPPED_LEVEL1`) yield no event. Each one is checked for its identifying
    fields (a garbled one raises :class:`ProtocolError`), tallied per kind in
    :attr:`skipped` and reported to ``on_skip(counter, line)``, which the connection
    uses to count it in the client's counters and log a sample.

    - ``F`` fundamentals and ``N`` news headlines are reference information, not
      market events.
    - ``R`` regional quotes only come for symbols watched with ``S,REGON``, which this
      client never sends; decoding them would need an event type that nothing stores.
    - ``C`` trade corrections are counted, not applied. Only one public client parses
      them (IQFeed.CSharpApiClient: ``C,Symbol,CorrectionType (I insert, X delete),
      TradeDate MM/DD/YYYY,TradeTime,Price,Size,TickID,Conditions,MarketCenter``, one
      sample line in its tests); pyiqfeed has no handler for them and another client
      reads a different layout; and DTN's note, quoted by the C# client, says
      corrections may be incomplete. So no event is made from an unconfirmed layout
      and only the symbol is checked. A non-zero ``trade_corrections_skipped`` means
      stored trades may differ from DTN's history, to which DTN applies corrections.
    """

    def __init__(
        self,
        fields: Sequence[str] | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        on_skip: SkipHook | None = None,
    ) -> None:
        self.layout = DEFAULT_LAYOUT if fields is None else UpdateLayout(fields)
        self.when = FeedDate.from_epoch_ns(clock())
        self.on_skip = on_skip
        self.skipped: dict[str, int] = {}
        """Lines that yielded no event, per :attr:`SkippedKind.counter`, since construction."""

    def new_socket(self) -> None:
        """A new connection starts: IQFeed's default field list again, the date context kept.

        IQFeed forgets a connection's field selection with the socket, so lines read
        in the default layout until the selection is answered again. The latest
        heartbeat stays the date context: it is the feed's own word on the date, and
        the first lines of a socket can precede its first heartbeat; the wall clock
        would date them wrongly whenever the feed is not live (a replay, a lagging
        IQConnect). The next heartbeat replaces it within a second.
        """
        self.layout = DEFAULT_LAYOUT

    def decode(self, line: str) -> list[Event]:
        """Decode one line (without its line ending); raises only :class:`ProtocolError`."""
        parts = line.split(",")
        kind = parts[0]
        if kind == "Q" or kind == "P":
            return decode_update(parts, self.layout, self.when, line)
        if kind == "T":
            beat = parse_heartbeat(parts, line)
            text = parts[1]
            self.when = FeedDate.at(_compact_ordinal(text[:8]), _second_of_day(text[9:]))
            return [beat]
        if kind == "S" and len(parts) > 1 and parts[1] == "CURRENT UPDATE FIELDNAMES":
            names = _strip_trailing_empty(parts[2:])
            try:
                self.layout = UpdateLayout(names)
            except ValueError as exc:
                raise ProtocolError(str(exc), line) from None
            return [System(name=parts[1], fields=names)]
        events = _decode_common(parts, line)
        if events is not None:
            return events
        skipped = SKIPPED_LEVEL1.get(kind)
        if skipped is None:
            raise ProtocolError(f"unknown Level 1 message type {kind[:10]!r}", line)
        self._skip(skipped, parts, line)
        return []

    def _skip(self, kind: SkippedKind, parts: list[str], line: str) -> None:
        """Check a line of a type that yields no event, then tally and report it."""
        if len(parts) <= kind.min_fields:
            raise ProtocolError(f"{kind.what} needs {kind.min_fields} fields, got {len(parts) - 1}", line)
        if not parts[1]:
            raise ProtocolError(f"{kind.what} without a {kind.first}", line)
        counter = kind.counter
        self.skipped[counter] = self.skipped.get(counter, 0) + 1
        if self.on_skip is not None:
            self.on_skip(counter, line)

    def safe_decode(self, line: str) -> tuple[list[Event], ProtocolError | None]:
        """Like :meth:`decode` but never raises: a bad line comes back as its error.

        Anything other than ProtocolError would be a decoder bug; it is still turned
        into a ProtocolError so one odd line can never stop a reader thread.
        """
        try:
            return self.decode(line), None
        except ProtocolError as exc:
            return [], exc
        except Exception as exc:  # noqa: BLE001 - the safety net is the point
            return [], ProtocolError(f"decoder failure {type(exc).__name__}: {exc}", line)


# ------------------------------------------------------------------------ Level 2

_SIDES: Final[dict[str, Literal["bid", "ask"]]] = {"B": "bid", "A": "ask"}
_ORDER_ACTIONS: Final[dict[str, Literal["add", "update", "summary"]]] = {
    "3": "add",
    "4": "update",
    "6": "summary",
    "0": "summary",  # price-level order: same layout as an order summary row
}


def _side(text: str) -> Literal["bid", "ask"]:
    side = _SIDES.get(text)
    if side is None:
        raise ValueError(f"side {text!r} is not B or A")
    return side


def _depth_ns(time_text: str, date_text: str) -> int:
    second, frac = _split_time(time_text)
    return eastern_to_ns(_iso_ordinal(date_text), second, frac)


def _need(parts: list[str], count: int, what: str, line: str) -> None:
    if len(parts) < count:
        raise ProtocolError(f"{what} needs {count - 1} fields, got {len(parts) - 1}", line)
    if not parts[1]:
        raise ProtocolError(f"{what} without a symbol", line)


MARKET_MAKER_NAMES: Final = SkippedKind("market_maker_names_skipped", "market maker name", 2, "market maker id")
"""``M,<MMID>,<Description>``: the answer to an ``m<MMID>`` query; reference data, no event."""

EMPTY_MARKET_MAKER_QUOTES: Final = SkippedKind("market_maker_empty_quotes_skipped", "market maker quote", 12)
"""A ``Z``/``2`` quote whose BidInfoValid and AskInfoValid are both ``F``: no side to publish."""

SKIPPED_LEVEL2: Final[tuple[SkippedKind, ...]] = (MARKET_MAKER_NAMES, EMPTY_MARKET_MAKER_QUOTES)
"""Level 2 lines that yield no event; each is counted under its counter, never dropped silently."""

SKIPPED_LEVEL2_COUNTERS: Final[tuple[str, ...]] = tuple(kind.counter for kind in SKIPPED_LEVEL2)

_VALID_FLAGS: Final[dict[str, bool]] = {"T": True, "F": False}


def decode_level2(line: str, on_skip: SkipHook | None = None) -> list[Event]:
    """One Level 2 line -> Depth events (order book, price levels, market makers).

    Level 2 lines carry their own date, so no state is needed. A market-maker quote
    (``Z``/``2``) yields one event per side whose valid flag is ``T``.

    Two kinds of line yield no event (:data:`SKIPPED_LEVEL2`); each is checked for its
    identifying fields (a garbled one raises :class:`ProtocolError`) and then reported
    to ``on_skip(counter, line)``, which the connection uses to count it and log a sample:

    - ``M,<MMID>,<Description>`` (``market_maker_names_skipped``): a market maker's
      name, the answer to ``m<MMID>``; reference data that no event type carries.
    - ``Z``/``2`` with both valid flags ``F`` (``market_maker_empty_quotes_skipped``):
      the market maker quotes neither side (our simulator sends one, with zero prices
      and sizes, when a maker's last order on both sides goes). No event says "this
      maker left": a consumer keeping a market-maker book keeps its last quote.

    Layouts as IQFeed.CSharpApiClient reads them (``Streaming/Level2``:
    ``BaseLevel2MessageHandler`` routes ``M`` to ``MarketMakerNameMessage`` = MMID,
    Description, test line ``M,MD02,Market depth 2``; ``UpdateSummaryMessage`` reads
    Symbol, MMID, Bid, Ask, BidSize, AskSize, BidTime, Date, ConditionCode, AskTime,
    BidInfoValid, AskInfoValid, EndOfMessageGroup, test line
    ``Z,@ES#,MD01,2982.25,2982.5,99,238,12:49:52.696621,2019-10-18,52,12:49:52.541104,T,T,F,``).
    pyiqfeed's ``conn.py`` has no Level 2 connection (only the depth-subscription
    count of ``S,CLIENTSTATS``), so it confirms none of this. Valid flags other than
    ``T``/``F`` are garbled lines, not "invalid side".
    """
    parts = line.split(",")
    kind = parts[0]
    try:
        if kind in _ORDER_ACTIONS:
            _need(parts, 11, "order message", line)
            return [
                Depth(
                    symbol=parts[1],
                    action=_ORDER_ACTIONS[kind],
                    side=_side(parts[4]),
                    price=_optional_float(parts[5]),
                    size=_optional_count(parts[6]),
                    order_id=parts[2],
                    mmid=parts[3],
                    ts_ns=_depth_ns(parts[9], parts[10]),
                )
            ]
        if kind == "5":
            _need(parts, 7, "order delete", line)
            return [
                Depth(
                    symbol=parts[1],
                    action="delete",
                    side=_side(parts[4]),
                    order_id=parts[2],
                    mmid=parts[3],
                    ts_ns=_depth_ns(parts[5], parts[6]),
                )
            ]
        if kind == "7" or kind == "8":
            _need(parts, 9, "price level", line)
            return [
                Depth(
                    symbol=parts[1],
                    action="summary" if kind == "7" else "update",
                    side=_side(parts[2]),
                    price=_optional_float(parts[3]),
                    size=_optional_count(parts[4]),
                    order_count=_optional_count(parts[5]),
                    ts_ns=_depth_ns(parts[7], parts[8]),
                )
            ]
        if kind == "9":
            _need(parts, 6, "price level delete", line)
            return [
                Depth(
                    symbol=parts[1],
                    action="delete",
                    side=_side(parts[2]),
                    price=_optional_float(parts[3]),
                    ts_ns=_depth_ns(parts[4], parts[5]),
                )
            ]
        if kind == "Z" or kind == "2":
            events = _decode_market_maker(parts, line)
        elif kind == "S" and len(parts) > 1 and parts[1] == "CLEAR DEPTH":
            _need(parts[1:], 3, "clear depth", line)
            return [Depth(symbol=parts[2], action="clear", side=_side(parts[3]))]
        elif kind == "M":
            _check_skipped(MARKET_MAKER_NAMES, parts, line)
            events = []
        else:
            events = None
    except ValueError as exc:
        raise ProtocolError(f"bad field value ({exc})", line) from None
    if events is None:
        events = _decode_common(parts, line)
        if events is None:
            raise ProtocolError(f"unknown Level 2 message type {kind[:10]!r}", line)
    elif not events and on_skip is not None:  # outside the try: a hook's ValueError is no field error
        on_skip(MARKET_MAKER_NAMES.counter if kind == "M" else EMPTY_MARKET_MAKER_QUOTES.counter, line)
    return events


def _check_skipped(kind: SkippedKind, parts: list[str], line: str) -> None:
    """A line that yields no event must still have its fields and its identifying first one."""
    if len(parts) <= kind.min_fields:
        raise ProtocolError(f"{kind.what} needs {kind.min_fields} fields, got {len(parts) - 1}", line)
    if not parts[1]:
        raise ProtocolError(f"{kind.what} without a {kind.first}", line)


def _decode_market_maker(parts: list[str], line: str) -> list[Event]:
    """``Z``/``2``: Symbol, MMID, Bid, Ask, BidSize, AskSize, BidTime, Date, Cond, AskTime, valid flags.

    [] when neither side is valid (see :func:`decode_level2`).
    """
    _need(parts, 13, "market maker quote", line)
    if not parts[2]:
        raise ProtocolError("market maker quote without a market maker id", line)
    bid_valid = _VALID_FLAGS.get(parts[11])
    ask_valid = _VALID_FLAGS.get(parts[12])
    if bid_valid is None or ask_valid is None:
        raise ProtocolError(
            f"market maker quote valid flags must be T or F, got {parts[11][:5]!r} and {parts[12][:5]!r}", line
        )
    action: Literal["summary", "update"] = "summary" if parts[0] == "Z" else "update"
    symbol, mmid, day = parts[1], parts[2], parts[8]
    events: list[Event] = []
    if bid_valid:
        events.append(
            Depth(
                symbol=symbol,
                action=action,
                side="bid",
                price=_optional_float(parts[3]),
                size=_optional_count(parts[5]),
                mmid=mmid,
                ts_ns=_depth_ns(parts[7], day),
            )
        )
    if ask_valid:
        events.append(
            Depth(
                symbol=symbol,
                action=action,
                side="ask",
                price=_optional_float(parts[4]),
                size=_optional_count(parts[6]),
                mmid=mmid,
                ts_ns=_depth_ns(parts[10], day),
            )
        )
    return events


# -------------------------------------------------------------------------- admin


def decode_admin(line: str) -> list[Event]:
    """Admin port lines: ``S,STATS`` (DTN connection state), other ``S,`` replies, errors."""
    parts = line.split(",")
    events = _decode_common(parts, line)
    if events is None:
        raise ProtocolError(f"unknown admin message type {parts[0][:10]!r}", line)
    return events


# ------------------------------------------------------------------------- lookup

LookupKind = Literal["ticks", "bars", "daily"]
_LOOKUP_MARKERS: Final = frozenset({"LH", "!ENDMSG!", "E"})


@dataclass(frozen=True, slots=True)
class LookupLine:
    """One lookup reply line: its request id, the events it carries, and whether it ends the reply."""

    request_id: str
    events: list[Event]
    end: bool = False


def _split_lookup(parts: list[str]) -> tuple[str, str, list[str]]:
    """-> (request id, marker LH/!ENDMSG!/E or '', data fields).

    6.2 rows are ``[ReqID,]LH,<data>``; older ones and the sample history file have no
    marker. Data rows start with a date, so a leading field that is no date is an id.
    """
    first = parts[0]
    if first in _LOOKUP_MARKERS:
        return "", first, parts[1:]
    if len(parts) > 1 and parts[1] in _LOOKUP_MARKERS:
        return first, parts[1], parts[2:]
    if first[:1].isdigit() and "-" in first:
        return "", "", parts
    return first, "", parts[1:]


def decode_lookup(line: str, kind: LookupKind, symbol: str = "") -> LookupLine:
    """A lookup-port reply line for a tick, interval-bar or daily request.

    Tick rows: timestamp, Last, LastSize, TotalVolume, Bid, Ask, TickID, BasisForLast,
    MarketCenter, TradeConditions[, Aggressor, DayCode]. Interval bars: timestamp, High,
    Low, Open, Close, TotalVolume, PeriodVolume, NumTrades (-> ``volume`` is IQFeed's
    TotalVolume). Daily/weekly/monthly: date, High, Low, Open, Close, PeriodVolume,
    OpenInterest (-> ``volume`` is PeriodVolume), stamped at midnight Eastern.
    Rows carry no symbol, so the caller passes the one it asked for.
    """
    parts = line.split(",")
    request_id, marker, data = _split_lookup(parts)
    if marker == "!ENDMSG!":
        return LookupLine(request_id, [], end=True)
    if marker == "E":
        return LookupLine(request_id, [parse_error(["E", *data], line, request_id)])
    try:
        if kind == "ticks":
            event: Event = _tick_row(data, symbol, request_id, line)
        elif kind == "bars":
            event = _bar_row(data, symbol, request_id, line)
        else:
            event = _daily_row(data, symbol, request_id, line)
    except (ValueError, IndexError) as exc:
        raise ProtocolError(f"bad lookup row ({exc})", line) from None
    return LookupLine(request_id, [event])


def _tick_row(data: list[str], symbol: str, request_id: str, line: str) -> HistoryTick:
    if len(data) < 10:
        raise ProtocolError(f"tick row needs 10 fields, got {len(data)}", line)
    price = float(data[1])
    if price - price != 0.0:
        raise ValueError("non-finite price")
    return HistoryTick(
        symbol=symbol,
        ts_ns=_iso_datetime_ns(data[0]),
        price=price,
        size=_count(data[2]),
        total_volume=_count(data[3]),
        bid=_optional_float(data[4]),
        ask=_optional_float(data[5]),
        tick_id=_count(data[6]),
        basis=data[7],
        market_center=_optional_count(data[8], INT32_MAX),
        conditions=split_conditions(data[9]),
        request_id=request_id,
    )


def _bar_row(data: list[str], symbol: str, request_id: str, line: str) -> HistoryBar:
    if len(data) < 8:
        raise ProtocolError(f"bar row needs 8 fields, got {len(data)}", line)
    return HistoryBar(
        symbol=symbol,
        ts_ns=_iso_datetime_ns(data[0]),
        high=_finite(data[1]),
        low=_finite(data[2]),
        open=_finite(data[3]),
        close=_finite(data[4]),
        volume=_count(data[5]),
        period_volume=_count(data[6]),
        trades=_optional_count(data[7]),
        request_id=request_id,
    )


def _daily_row(data: list[str], symbol: str, request_id: str, line: str) -> HistoryBar:
    if len(data) < 7:
        raise ProtocolError(f"daily row needs 7 fields, got {len(data)}", line)
    volume = _count(data[5])
    return HistoryBar(
        symbol=symbol,
        ts_ns=eastern_to_ns(_iso_ordinal(data[0][:10]), 0),
        high=_finite(data[1]),
        low=_finite(data[2]),
        open=_finite(data[3]),
        close=_finite(data[4]),
        volume=volume,
        period_volume=volume,
        open_interest=_optional_count(data[6]),
        request_id=request_id,
    )


def _finite(text: str) -> float:
    value = _optional_float(text)
    if value is None:
        raise ValueError("empty price")
    return value
