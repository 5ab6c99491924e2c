"""Server-side IQFeed line formatting and the simulator's time representation (pure).

Times inside the simulator are *Eastern wall-clock microseconds*: microseconds since
1970-01-01 00:00 as read on a US/Eastern clock (DST applied). IQFeed only ever shows
Eastern wall time, so keeping that one integer makes formatting a few divisions, makes
replayed files (which carry Eastern wall time) need no conversion, and makes daily and
interval bars plain integer arithmetic. Prices are integers in 1/10,000 units so that a
random walk never drifts off its tick grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
PRICE_SCALE = 10_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CRLF = "\r\n"


class EasternClock:
    """Wall clock in Eastern wall-clock microseconds; the UTC offset is cached per minute.

    DST changes on the hour, so a per-minute cache is exact while costing one
    ``zoneinfo`` lookup a minute instead of one per message. ``wall_ns`` (UTC epoch
    nanoseconds) is passed in so tests can stand anywhere in the year.
    """

    def __init__(self, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self._wall_ns = wall_ns
        self._offset_us = 0
        self._valid_until_us = -1

    def now(self) -> int:
        """Current Eastern wall-clock microseconds."""
        wall = self._wall_ns() // 1000
        if wall >= self._valid_until_us:
            moment = datetime.fromtimestamp(wall / US_PER_SECOND, EASTERN)
            offset = moment.utcoffset() or timedelta(0)
            self._offset_us = int(offset.total_seconds()) * US_PER_SECOND
            self._valid_until_us = (wall // 60_000_000 + 1) * 60_000_000
        return wall + self._offset_us


def day_of(local_us: int) -> date:
    """Calendar date of an Eastern wall-clock time."""
    return date.fromordinal(_EPOCH_ORDINAL + local_us // US_PER_DAY)


def day_start(day: date) -> int:
    """Eastern wall-clock microseconds at midnight starting ``day``."""
    return (day.toordinal() - _EPOCH_ORDINAL) * US_PER_DAY


# price()'s cache; the hot loops read it inline (``PRICE_TEXT.get(units) or price(units)``).
PRICE_TEXT: dict[int, str] = {}
_PRICE_CACHE_LIMIT = 500_000


def price(units: int) -> str:
    """IQFeed's 4-decimal price text (``1.5200``) of a price in 1/10,000 units.

    Cached: the stream formats the same few thousand prices over and over, and a dict
    hit costs a tenth of formatting. The cache is emptied when it grows past its limit.
    """
    try:
        return PRICE_TEXT[units]
    except KeyError:
        if len(PRICE_TEXT) >= _PRICE_CACHE_LIMIT:
            PRICE_TEXT.clear()
        whole, frac = divmod(units, PRICE_SCALE)
        text = PRICE_TEXT[units] = f"{whole}.{frac:04d}"
        return text


# ``000`` .. ``999``: the millisecond and microsecond digits of a time.
DIGITS3: tuple[str, ...] = tuple(f"{n:03d}" for n in range(1000))

# Sizes up to this many shares are turned into text by table lookup on the hot path.
SIZE_TEXT: tuple[str, ...] = tuple(str(n) for n in range(100_001))


def price_at(units: int, precision: int) -> str:
    """Price text with ``precision`` decimals (Level 2 prints the symbol's precision)."""
    if precision >= 4:
        return price(units)
    step = 10 ** (4 - precision)
    whole, frac = divmod(units // step, 10**precision)
    return f"{whole}.{frac:0{precision}d}" if precision else str(whole)


def parse_price(text: str) -> int:
    """1/10,000 units of a decimal price string; raises ValueError on junk."""
    return round(float(text) * PRICE_SCALE)


class TimeText:
    """Formats Eastern wall-clock microseconds, caching the per-second and per-day parts.

    Messages come in bursts within the same second and day, so caching the
    ``HH:MM:SS.`` prefix and the date text leaves one integer format per message.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._ms = -1
        self._ms_prefix = ""
        self._day = -1
        self._iso = ""
        self._compact = ""
        self._mdy = ""

    def _set_second(self, second: int) -> None:
        self._second = second
        h, rem = divmod(second % 86_400, 3600)
        m, s = divmod(rem, 60)
        self._prefix = f"{h:02d}:{m:02d}:{s:02d}"

    def _set_day(self, day_number: int) -> None:
        self._day = day_number
        d = date.fromordinal(_EPOCH_ORDINAL + day_number)
        self._iso = d.isoformat()
        self._compact = f"{d.year:04d}{d.month:02d}{d.day:02d}"
        self._mdy = f"{d.month:02d}/{d.day:02d}/{d.year:04d}"

    def hms(self, local_us: int) -> str:
        """``HH:MM:SS``."""
        second = local_us // US_PER_SECOND
        if second != self._second:
            self._set_second(second)
        return self._prefix

    def hms_us(self, local_us: int) -> str:
        """``HH:MM:SS.ffffff`` as in trade, bid and ask times.

        Once per trade on the stream, so the ``HH:MM:SS.fff`` part is kept per
        millisecond and only the last three digits are looked up.
        """
        ms = local_us // 1000
        if ms != self._ms:
            self._set_ms(ms)
        return self._ms_prefix + DIGITS3[local_us % 1000]

    def _set_ms(self, ms: int) -> None:
        self._ms = ms
        second, millis = divmod(ms, 1000)
        if second != self._second:
            self._set_second(second)
        self._ms_prefix = f"{self._prefix}.{DIGITS3[millis]}"

    def iso_date(self, local_us: int) -> str:
        """``YYYY-MM-DD`` as in Level 2 and lookup rows."""
        day_number = local_us // US_PER_DAY
        if day_number != self._day:
            self._set_day(day_number)
        return self._iso

    def compact_date(self, local_us: int) -> str:
        """``YYYYMMDD`` as in the ``T`` heartbeat."""
        day_number = local_us // US_PER_DAY
        if day_number != self._day:
            self._set_day(day_number)
        return self._compact

    def mdy_date(self, local_us: int) -> str:
        """``MM/DD/YYYY`` as in Level 1 date fields."""
        day_number = local_us // US_PER_DAY
        if day_number != self._day:
            self._set_day(day_number)
        return self._mdy

    def history_timestamp(self, local_us: int) -> str:
        """``YYYY-MM-DD HH:MM:SS.ffffff`` as in lookup tick rows."""
        return f"{self.iso_date(local_us)} {self.hms_us(local_us)}"

    def bar_timestamp(self, local_us: int) -> str:
        """``YYYY-MM-DD HH:MM:SS`` as in lookup interval-bar rows."""
        return f"{self.iso_date(local_us)} {self.hms(local_us)}"


def heartbeat(text: TimeText, local_us: int) -> str:
    """``T,YYYYMMDD HH:MM:SS`` line, Level 1's once-a-second heartbeat."""
    return f"T,{text.compact_date(local_us)} {text.hms(local_us)}{CRLF}"


def stats_time(local_us: int) -> str:
    """``Apr 01 6:48PM``: the admin STATS time format (hour without a leading zero)."""
    d = day_of(local_us)
    minute_of_day = (local_us % US_PER_DAY) // 60_000_000
    hour, minute = divmod(minute_of_day, 60)
    half = "AM" if hour < 12 else "PM"
    hour12 = hour % 12 or 12
    return f"{_MONTHS[d.month - 1]} {d.day:02d} {hour12}:{minute:02d}{half}"


def line(*fields: object, trailing_comma: bool = False) -> str:
    """One CRLF-terminated line of comma-joined fields (system and reply messages)."""
    return ",".join(str(f) for f in fields) + ("," if trailing_comma else "") + CRLF


def sanitize(text: str, limit: int = 60) -> str:
    """Client text made safe to echo inside one field of an error line."""
    cleaned = "".join(ch if 32 <= ord(ch) < 127 and ch != "," else " " for ch in text)
    return cleaned[:limit]


def parse_history_timestamp(text: str) -> int:
    """Eastern wall-clock microseconds of ``YYYY-MM-DD HH:MM:SS[.ffffff]``."""
    day_part, _, time_part = text.partition(" ")
    y, mo, d = (int(x) for x in day_part.split("-"))
    hms_part, _, frac = time_part.partition(".")
    h, mi, s = (int(x) for x in hms_part.split(":"))
    if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61):
        raise ValueError(f"bad time {text!r}")
    us = int(frac.ljust(6, "0")[:6]) if frac else 0
    return day_start(date(y, mo, d)) + ((h * 60 + mi) * 60 + s) * US_PER_SECOND + us


def parse_compact_datetime(text: str) -> int:
    """Eastern wall-clock microseconds of a lookup parameter ``YYYYMMDD HHMMSS``."""
    day_part, _, time_part = text.strip().partition(" ")
    if len(day_part) != 8 or not day_part.isdigit():
        raise ValueError(f"bad date {text!r}")
    start = day_start(date(int(day_part[:4]), int(day_part[4:6]), int(day_part[6:])))
    return start + parse_compact_time(time_part or "000000") * US_PER_SECOND


def parse_compact_date(text: str) -> date:
    """Date of a lookup parameter ``YYYYMMDD``."""
    text = text.strip()
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"bad date {text!r}")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def parse_compact_time(text: str) -> int:
    """Seconds after midnight of ``HHMMSS`` (filter times)."""
    text = text.strip()
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"bad time {text!r}")
    h, m, s = int(text[:2]), int(text[2:4]), int(text[4:])
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"bad time {text!r}")
    return (h * 60 + m) * 60 + s
