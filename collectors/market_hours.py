"""US equity market hours (NYSE calendar): is the market open at an instant, and for how long.

Gap detection must not flag a silent symbol at 03:00 or on Thanksgiving, and the
dashboard shows which session is running; both ask these pure functions, which take
UTC epoch nanoseconds. The calendar is exchange_calendars' ``XNYS`` (holidays and early
closes), read once into a dict so a lookup costs microseconds, not a pandas query.

Sessions, US/Eastern: pre-market 04:00 to the open (09:30), regular open to close
(16:00, or 13:00 on early-close days), post-market close to 20:00. On early-close days
the post-market ends at 17:00 (as the exchanges' extended sessions do). Weekends and
holidays have no session at all.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

EASTERN: Final = ZoneInfo("America/New_York")
PRE_MARKET_OPEN: Final = time(4, 0)
POST_MARKET_CLOSE: Final = time(20, 0)
EARLY_CLOSE_POST_MARKET_CLOSE: Final = time(17, 0)
REGULAR_CLOSE: Final = time(16, 0)
_CALENDAR_FIRST_YEAR: Final = 2000
_CALENDAR_YEARS_AHEAD: Final = 2
_NS: Final = 1_000_000_000


class Session(str, enum.Enum):
    """Which part of the trading day an instant falls in."""

    CLOSED = "closed"
    PRE = "pre"
    REGULAR = "regular"
    POST = "post"


@dataclass(frozen=True, slots=True)
class TradingDay:
    """One NYSE trading day's session bounds, as UTC epoch ns (each end exclusive)."""

    day: date
    pre_open_ns: int
    open_ns: int
    close_ns: int
    post_close_ns: int
    early_close: bool


class OutsideCalendar(ValueError):
    """The date is outside the loaded calendar (2000 to two years ahead)."""


def _eastern_ns(day: date, at: time) -> int:
    return int(datetime.combine(day, at, EASTERN).timestamp()) * _NS


@lru_cache(maxsize=1)
def _calendar() -> tuple[date, date, dict[date, TradingDay]]:
    """Every trading day from 2000 to two years ahead, built once per process."""
    import exchange_calendars  # slow import (pandas); only paid on first use

    last_year = date.today().year + _CALENDAR_YEARS_AHEAD
    first, last = date(_CALENDAR_FIRST_YEAR, 1, 1), date(last_year, 12, 31)
    with warnings.catch_warnings():  # pandas deprecation noise from inside exchange_calendars
        warnings.simplefilter("ignore")
        calendar = exchange_calendars.get_calendar("XNYS", start=first.isoformat(), end=last.isoformat())
    days: dict[date, TradingDay] = {}
    for label, row in calendar.schedule.iterrows():
        day = label.date()
        open_ns = row["open"].value
        close_ns = row["close"].value
        early = datetime.fromtimestamp(close_ns // _NS, EASTERN).time() < REGULAR_CLOSE
        post_end = EARLY_CLOSE_POST_MARKET_CLOSE if early else POST_MARKET_CLOSE
        days[day] = TradingDay(day, _eastern_ns(day, PRE_MARKET_OPEN), open_ns, close_ns, _eastern_ns(day, post_end), early)
    return first, last, days


def load_calendar() -> None:
    """Build the calendar now. The first build takes about a second of pandas work holding the
    interpreter lock: a process with a hot path calls this before its feed starts, not from a rule."""
    _calendar()


def trading_day(day: date) -> TradingDay | None:
    """The sessions of ``day`` (an Eastern calendar date), or None on weekends and holidays."""
    first, last, days = _calendar()
    if not first <= day <= last:
        raise OutsideCalendar(f"{day} is outside the market calendar ({first} to {last})")
    return days.get(day)


def eastern_date(ts_ns: int) -> date:
    """The US/Eastern calendar date of an instant."""
    return datetime.fromtimestamp(ts_ns // _NS, EASTERN).date()


def session_at(ts_ns: int) -> Session:
    """The session running at ``ts_ns`` (UTC epoch ns)."""
    sessions = trading_day(eastern_date(ts_ns))
    if sessions is None or ts_ns < sessions.pre_open_ns or ts_ns >= sessions.post_close_ns:
        return Session.CLOSED
    if ts_ns < sessions.open_ns:
        return Session.PRE
    if ts_ns < sessions.close_ns:
        return Session.REGULAR
    return Session.POST


def session_start_ns(ts_ns: int) -> int | None:
    """When the session running at ``ts_ns`` began (the pre-market's 04:00, the open, or the close for
    the post-market); None when closed. Silence before that instant says nothing about a feed."""
    sessions = trading_day(eastern_date(ts_ns))
    session = session_at(ts_ns)
    if sessions is None or session is Session.CLOSED:
        return None
    return {Session.PRE: sessions.pre_open_ns, Session.REGULAR: sessions.open_ns, Session.POST: sessions.close_ns}[session]


def is_open(ts_ns: int, *, extended: bool = False) -> bool:
    """True during the regular session, or during any session when ``extended``."""
    session = session_at(ts_ns)
    return session is Session.REGULAR or (extended and session is not Session.CLOSED)


def open_overlap_ns(start_ns: int, end_ns: int, *, extended: bool = False) -> int:
    """How many ns of ``[start_ns, end_ns)`` the market was open: the part of an outage that matters."""
    if end_ns <= start_ns:
        return 0
    total = 0
    day = eastern_date(start_ns)
    last = eastern_date(end_ns)
    while day <= last:
        sessions = trading_day(day)
        if sessions is not None:
            begin = sessions.pre_open_ns if extended else sessions.open_ns
            finish = sessions.post_close_ns if extended else sessions.close_ns
            total += max(0, min(end_ns, finish) - max(start_ns, begin))
        day += timedelta(days=1)
    return total
